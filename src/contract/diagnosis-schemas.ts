/** Payloads of diagnoses and consultations: validation, types and OpenAPI from one definition. */
import { Type, type Static } from '@sinclair/typebox';
import { Id, Sex, SpeciesCode } from './schemas.js';

const Strict = { additionalProperties: false } as const;

export const MucousMembranes = Type.Union(['pink', 'pale', 'white', 'injected', 'cyanotic', 'icteric', 'brick-red'].map((v) => Type.Literal(v)));

export const Vitals = Type.Object(
  {
    temperatureC: Type.Optional(Type.Number({ minimum: 20, maximum: 46 })),
    heartRate: Type.Optional(Type.Number({ minimum: 0, maximum: 500 })),
    respiratoryRate: Type.Optional(Type.Number({ minimum: 0, maximum: 300 })),
    mucousMembranes: Type.Optional(MucousMembranes),
    crtSeconds: Type.Optional(Type.Number({ minimum: 0, maximum: 20 })),
    weightKg: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 2000 })),
  },
  Strict,
);

export const LabValue = Type.Object(
  {
    analyte: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9 _.+()/,:%-]{0,39}$',
      description: 'The analyte: a knowledge-base key (glucose, creatinine, usg), a name laboratories use (ALT, SGPT, HCT, K+, "Total bilirubin"), or a LOINC code (2160-0). An unknown one is kept and reported as not interpreted; a LOINC-shaped code with a wrong check digit is a 422 naming labs[i].analyte',
    }),
    value: Type.Union([Type.Number(), Type.String({ minLength: 1, maxLength: 20 })], { description: 'Number, or a string holding one (with its unit or a detection-limit sign: "1.012", "5.4 mmol/L", "<0.5"), or a dipstick grade ("2+", "++", "trace", "neg", "small") or the concentration its strip prints (500 with unit mg/dL, or "500 mg/dL")' }),
    unit: Type.Optional(Type.String({ maxLength: 20, description: 'A UCUM code (mg/dL, umol/L, 10*3/uL, [IU]/L, meq/L) or the form instruments print (µmol/l, x10^9/L, K/uL, mEq/L), in any unit convertible to the analyte\'s US or SI unit; omit (or leave empty) for unitless values such as usg and for dipstick grades. A value that cannot be read, or a unit that cannot be converted, is a 422 whose field names labs[i].value or labs[i].unit' })),
  },
  Strict,
);

const FindingCode = Type.String({ pattern: '^[a-z0-9_]{1,64}$' });

export const CaseFields = {
  complaint: Type.Optional(Type.String({ maxLength: 5000, description: "The owner's complaint in free text; never logged" })),
  signs: Type.Optional(Type.Array(FindingCode, { maxItems: 100, description: 'Finding codes observed present' })),
  absentSigns: Type.Optional(Type.Array(FindingCode, { maxItems: 100, description: 'Finding codes checked and absent' })),
  vitals: Type.Optional(Vitals),
  labs: Type.Optional(Type.Array(LabValue, { maxItems: 200 })),
  mediaIds: Type.Optional(Type.Array(Id, { maxItems: 50 })),
  treatments: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9_]{1,64}$' }), { maxItems: 20, description: 'Drug codes under consideration; the plan checks them for safety' })),
};

export const InlinePatient = Type.Object(
  {
    species: SpeciesCode,
    breed: Type.Optional(Type.String({ maxLength: 120 })),
    ageYears: Type.Optional(Type.Number({ minimum: 0, maximum: 80 })),
    sex: Type.Optional(Sex),
    neutered: Type.Optional(Type.Boolean()),
    weightKg: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 2000 })),
  },
  Strict,
);

export const DiagnosisRequest = Type.Object(
  {
    patientId: Type.Optional(Id),
    patient: Type.Optional(InlinePatient),
    encounterId: Type.Optional(Id),
    consultationId: Type.Optional(Type.String({ pattern: '^cs_[A-Za-z0-9_-]{22}$' })),
    ...CaseFields,
  },
  { ...Strict, description: 'Give patientId or an inline patient. With encounterId, its observations join the case.' },
);
export type DiagnosisRequest = Static<typeof DiagnosisRequest>;

export const ConsultationRequest = Type.Object({ patientId: Type.Optional(Id), patient: Type.Optional(InlinePatient), encounterId: Type.Optional(Id) }, Strict);
export type ConsultationRequest = Static<typeof ConsultationRequest>;
export const ConsultationInputs = Type.Object(CaseFields, { ...Strict, minProperties: 1 });
export type ConsultationInputs = Static<typeof ConsultationInputs>;
export const ConsultationParams = Type.Object({ id: Type.String({ pattern: '^cs_[A-Za-z0-9_-]{22}$' }) }, Strict);

const Json = Type.Unknown();
const ModelRef = Type.Object({ name: Type.String(), version: Type.String(), sha256: Type.String() });
const EvidenceItem = Type.Object(
  {
    finding: Type.String({ description: "A finding's code (its source is the entry of `findings` with that code), or a signalment item: `age`, `sex`, `breed:<name>`" }),
    present: Type.Boolean(),
    weight: Type.Number({ description: 'Natural log of the likelihood ratio this item contributed: > 0 supports, < 0 argues against' }),
    source: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'Signalment items only (and every item of reports written before differential agent 1.1.0)' })),
  },
  { additionalProperties: true },
);
export const Diagnosis = Type.Object({
  id: Id,
  createdAt: Type.String({ format: 'date-time' }),
  patientId: Type.Union([Id, Type.Null()]),
  encounterId: Type.Union([Id, Type.Null()]),
  consultationId: Type.Union([Type.String(), Type.Null()]),
  species: Type.String(),
  triage: Type.Object({ level: Type.String(), reasons: Type.Array(Json) }),
  differentials: Type.Array(
    Type.Object({ code: Type.String(), name: Type.String(), urgency: Type.String(), probability: Type.Number(), evidence: Type.Array(EvidenceItem) }),
  ),
  findings: Type.Array(Json),
  labs: Type.Array(Json),
  plan: Type.Union([Json, Type.Null()]),
  narrative: Type.Union([Type.Object({ text: Type.String(), generator: Type.String() }), Type.Null()]),
  warnings: Type.Array(Type.String()),
  provenance: Type.Object({
    knowledgeBaseVersion: Type.String(),
    agents: Type.Record(Type.String(), Type.String()),
    chainDigest: Type.String(),
    requestId: Type.String(),
    sessionStore: Type.String(),
    models: Type.Optional(Type.Array(ModelRef, { description: 'The exact model versions the imaging agent used' })),
  }),
  imaging: Type.Optional(
    Type.Object(
      {
        agentVersion: Type.String(),
        readings: Type.Array(
          Type.Object({
            mediaId: Id,
            model: ModelRef,
            labels: Type.Array(Type.Object({ label: Type.String(), probability: Type.Number() })),
            readAs: Type.Array(Type.String(), { description: 'Labels that are not clinical findings (what kind of image it is) and reached their threshold' }),
            findings: Type.Array(Type.String(), { description: 'Finding codes this reading reported present (their evidence is in `findings`, source kind media)' }),
          }),
        ),
      },
      { description: 'What the registry’s image models read on the attached images; only on a diagnosis where one ran' },
    ),
  ),
});
export type Diagnosis = Static<typeof Diagnosis>;
