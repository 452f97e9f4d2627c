/**
 * The shape of the knowledge base as the engine reads it. Files may carry more fields (notes,
 * bases, sources); these schemas check what the agents depend on, and load.ts checks every
 * cross-reference, so a broken file fails at start with the file and path named.
 */
import { Type, type Static } from '@sinclair/typebox';

const Certainty = Type.Union([Type.Literal('cited'), Type.Literal('estimate')]);
const Sourced = { certainty: Certainty, source: Type.Optional(Type.String()), basis: Type.Optional(Type.String()) };
const Species = Type.Union([Type.Literal('dog'), Type.Literal('cat')]);
export type KbSpecies = Static<typeof Species>;
const Urgency = Type.Union([Type.Literal('emergency'), Type.Literal('urgent'), Type.Literal('routine'), Type.Literal('self-care')]);
export type Urgency = Static<typeof Urgency>;

const Versioned = { version: Type.String({ pattern: '^\\d+\\.\\d+\\.\\d+$' }) };

export const SourcesFile = Type.Object({ ...Versioned, sources: Type.Array(Type.Object({ id: Type.String({ minLength: 1 }), citation: Type.String({ minLength: 1 }) })) });

export const Finding = Type.Object({
  code: Type.String({ pattern: '^[a-z0-9_]+$' }),
  name: Type.String({ minLength: 1 }),
  category: Type.String(),
  synonyms: Type.Optional(Type.Array(Type.String())),
  layTerms: Type.Optional(Type.Array(Type.String())),
  misspellings: Type.Optional(Type.Array(Type.String())),
  /** P(finding | condition) for a condition that does not list it, where the engine default (0.02) is wrong for it. */
  unlistedLikelihood: Type.Optional(Type.Object({ value: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }), ...Sourced })),
  /** Phrases that say the finding is absent ("eating fine" for inappetence). */
  absentTerms: Type.Optional(Type.Array(Type.String())),
  durationSensitive: Type.Optional(Type.Boolean()),
});
export type Finding = Static<typeof Finding>;
export const FindingsFile = Type.Object({ ...Versioned, findings: Type.Array(Finding, { minItems: 1 }) });

const Factor = Type.Number({ minimum: 0 });
export const Condition = Type.Object({
  code: Type.String({ pattern: '^[a-z0-9_]+$' }),
  name: Type.String({ minLength: 1 }),
  species: Species,
  category: Type.String(),
  urgency: Urgency,
  prior: Type.Object({ value: Type.Number({ exclusiveMinimum: 0, maximum: 1 }), ...Sourced }),
  findings: Type.Array(Type.Object({ code: Type.String(), likelihood: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }), ...Sourced }), { minItems: 1 }),
  signalment: Type.Optional(
    Type.Object({
      breeds: Type.Optional(Type.Array(Type.Object({ breed: Type.String(), factor: Factor, ...Sourced }))),
      age: Type.Optional(Type.Array(Type.Object({ minYears: Type.Optional(Type.Number()), maxYears: Type.Optional(Type.Number()), factor: Factor, ...Sourced }))),
      sex: Type.Optional(Type.Array(Type.Object({ sex: Type.String(), neutered: Type.Optional(Type.Boolean()), factor: Factor, ...Sourced }))),
    }),
  ),
  nextTests: Type.Array(Type.String()),
  /**
   * Vital-sign deviations this condition is known to cause at rest (a hyperthyroid cat's sinus
   * tachycardia): when the condition leads the differential and nothing else points to an
   * emergency, triage reads a value up to `limit` in that direction as explained by it.
   */
  explainsVitals: Type.Optional(Type.Array(Type.Object({ parameter: Type.String(), direction: Type.Union([Type.Literal('high'), Type.Literal('low')]), limit: Type.Number(), ...Sourced }))),
});
export type Condition = Static<typeof Condition>;
export const ConditionsFile = Type.Object({ ...Versioned, species: Species, conditions: Type.Array(Condition, { minItems: 1 }) });

const UnitFamilySchema = Type.Union([Type.Literal('mass'), Type.Literal('substance'), Type.Literal('equivalents'), Type.Literal('catalytic'), Type.Literal('number'), Type.Literal('fraction'), Type.Literal('time'), Type.Literal('ratio'), Type.Literal('grade')]);
const Interval = Type.Object({ low: Type.Union([Type.Number(), Type.Null()]), high: Type.Union([Type.Number(), Type.Null()]), ...Sourced });
export const Analyte = Type.Object({
  analyte: Type.String({ pattern: '^[a-z0-9_]+$' }),
  name: Type.String(),
  unitUS: Type.String(),
  unitSI: Type.String(),
  siFactor: Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Null()]),
  dog: Type.Optional(Interval),
  cat: Type.Optional(Interval),
  derivedFindings: Type.Optional(Type.Object({ low: Type.Optional(Type.String()), high: Type.Optional(Type.String()) })),
  bands: Type.Optional(Type.Array(Type.Object({ min: Type.Number(), max: Type.Number(), finding: Type.String() }))),
  scale: Type.Optional(Type.Record(Type.String(), Type.Number())),
  /**
   * Semi-quantitative strips that print a concentration per colour block: for each unit, the
   * concentration of each grade's block (a grade of `scale`). A reading maps to the highest grade
   * whose block it reaches; 0 is negative.
   */
  pads: Type.Optional(Type.Array(Type.Object({ unit: Type.String(), grades: Type.Record(Type.String(), Type.Number({ exclusiveMinimum: 0 })), ...Sourced }))),
  /** Other names laboratories send for the analyte (vocabulary, like findings' synonyms). */
  aliases: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  /** LOINC codes read as this analyte; unitFamily is what the code's property implies (Mass/volume -> mass ...). */
  loinc: Type.Optional(Type.Array(Type.Object({ code: Type.String({ pattern: '^\\d{1,7}-\\d$' }), name: Type.String(), unitFamily: UnitFamilySchema, ...Sourced }))),
  /** Words some strips print instead of a grade (small, moderate, large), each onto a grade of `scale`. */
  gradeWords: Type.Optional(Type.Object({ words: Type.Record(Type.String(), Type.String()), ...Sourced })),
  /** g/mol: lets a mass concentration convert when neither unitUS nor unitSI is one (magnesium in mg/dL). */
  molarMass: Type.Optional(Type.Object({ value: Type.Number({ exclusiveMinimum: 0 }), ...Sourced })),
  /** The analyte reported as another substance (urea for urea nitrogen): its names, and mass of it x massFactor = mass of this analyte. */
  massForms: Type.Optional(Type.Array(Type.Object({ names: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), massFactor: Type.Number({ exclusiveMinimum: 0 }), ...Sourced }))),
});
export type Analyte = Static<typeof Analyte>;
export const LabsFile = Type.Object({ ...Versioned, analytes: Type.Array(Analyte, { minItems: 1 }) });

export const Toxin = Type.Object({
  code: Type.String(),
  name: Type.String(),
  speciesAffected: Type.Array(Type.String()),
  exposureFinding: Type.Optional(Type.String()),
  toxicDoses: Type.Array(Type.Object({ species: Type.String(), value: Type.Union([Type.Number(), Type.Null()]), unit: Type.String(), description: Type.String(), ...Sourced })),
});
export type Toxin = Static<typeof Toxin>;
export const ToxinsFile = Type.Object({ ...Versioned, toxins: Type.Array(Toxin) });

const Dose = Type.Object({
  species: Type.String(),
  route: Type.String(),
  unit: Type.String(),
  minMgPerKg: Type.Optional(Type.Number()),
  maxMgPerKg: Type.Optional(Type.Number()),
  minPerKg: Type.Optional(Type.Number()),
  maxPerKg: Type.Optional(Type.Number()),
  minMgPerAnimal: Type.Optional(Type.Number()),
  maxMgPerAnimal: Type.Optional(Type.Number()),
  frequency: Type.String(),
  indication: Type.String(),
  ...Sourced,
});
export type Dose = Static<typeof Dose>;
export const Contraindication = Type.Object({
  species: Type.Optional(Type.String()),
  finding: Type.Optional(Type.String()),
  condition: Type.Optional(Type.String()),
  concurrentDrugClass: Type.Optional(Type.String()),
  conditionText: Type.Optional(Type.String()),
  reason: Type.String(),
  severity: Type.Union([Type.Literal('block'), Type.Literal('warn')]),
  ...Sourced,
});
export type Contraindication = Static<typeof Contraindication>;
export const Drug = Type.Object({ code: Type.String(), name: Type.String(), class: Type.String(), doses: Type.Array(Dose), contraindications: Type.Array(Contraindication) });
export type Drug = Static<typeof Drug>;
export const DrugsFile = Type.Object({ ...Versioned, drugs: Type.Array(Drug) });

const VitalRange = Type.Object({ low: Type.Union([Type.Number(), Type.Null()]), high: Type.Union([Type.Number(), Type.Null()]), ...Sourced });
export const VitalParameter = Type.Object({
  code: Type.Union([Type.Literal('temperatureC'), Type.Literal('heartRate'), Type.Literal('respiratoryRate'), Type.Literal('crtSeconds')]),
  name: Type.String(),
  unit: Type.String(),
  dog: VitalRange,
  cat: VitalRange,
  derivedFindings: Type.Optional(Type.Object({ low: Type.Optional(Type.String()), high: Type.Optional(Type.String()) })),
  critical: Type.Optional(
    Type.Object({
      dog: Type.Optional(Type.Object({ low: Type.Optional(Type.Number()), high: Type.Optional(Type.Number()), ...Sourced })),
      cat: Type.Optional(Type.Object({ low: Type.Optional(Type.Number()), high: Type.Optional(Type.Number()), ...Sourced })),
    }),
  ),
});
export type VitalParameter = Static<typeof VitalParameter>;
export const VitalsFile = Type.Object({
  ...Versioned,
  parameters: Type.Array(VitalParameter),
  mucousMembranes: Type.Array(Type.Object({ value: Type.String(), findings: Type.Array(Type.String()), critical: Type.Boolean(), ...Sourced })),
  // species: the flag applies to these species only (lily and permethrin exposure are feline emergencies); omitted = both.
  /**
   * `mimics`: findings of a benign event owners describe in the red flag's words (a reverse
   * sneeze "like she can't breathe", movements in sleep "is this a seizure?"). When one is present
   * and the red-flag finding was only compared or asked about (hedged), the flag is not raised.
   */
  redFlagFindings: Type.Array(Type.Object({ code: Type.String(), reason: Type.String(), species: Type.Optional(Type.Array(Species)), mimics: Type.Optional(Type.Array(Type.Object({ finding: Type.String(), ...Sourced }))), ...Sourced })),
});
export type VitalsFile = Static<typeof VitalsFile>;

export const TreatmentsFile = Type.Object({
  ...Versioned,
  treatments: Type.Array(
    Type.Object({
      condition: Type.String(),
      species: Species,
      options: Type.Array(Type.Object({ drug: Type.String(), role: Type.String(), line: Type.String(), ...Sourced })),
      nonDrug: Type.Optional(Type.Array(Type.String())),
    }),
  ),
});
export type TreatmentsFile = Static<typeof TreatmentsFile>;
