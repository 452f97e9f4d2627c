/**
 * One schema per payload: each definition validates requests (unknown fields rejected),
 * gives the TypeScript type, and documents the API in OpenAPI.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { SPECIES_CODES } from '../clinical/species.js';
import { STORABLE_RANGE } from './formats.js';

const Strict = { additionalProperties: false } as const;

export const Id = Type.String({ format: 'uuid', description: 'Record id (UUIDv7)' });
export const IdParams = Type.Object({ id: Id }, Strict);
export type IdParams = Static<typeof IdParams>;

const Text = (maxLength: number, extra: object = {}) => Type.String({ minLength: 1, maxLength, ...extra });
// The formats are checked with the storable range of ./formats.ts (registered in http/server.ts).
const DateTime = Type.String({ format: 'date-time', description: `RFC 3339 date-time, ${STORABLE_RANGE}` });
const IsoDate = Type.String({ format: 'date', description: `YYYY-MM-DD, ${STORABLE_RANGE}` });
const Cursor = Type.String({ maxLength: 200, pattern: '^[A-Za-z0-9_-]+$', description: 'Opaque cursor from nextCursor' });
const Limit = (max: number, fallback: number) => Type.Integer({ minimum: 1, maximum: max, default: fallback });

const RecordMeta = {
  id: Id,
  version: Type.Integer({ minimum: 1 }),
  createdAt: DateTime,
  updatedAt: DateTime,
  deleted: Type.Boolean(),
};

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    requestId: Type.Optional(Type.String()),
  },
  { additionalProperties: true, $id: 'Problem', description: 'RFC 9457 problem details' },
);

export const ListOf = <T extends TSchema>(item: T) => Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Cursor, Type.Null()]) });

// --- owners -------------------------------------------------------------------------------

export const OwnerInput = Type.Object(
  {
    name: Text(200),
    email: Type.Optional(Type.String({ format: 'email', maxLength: 254 })),
    phone: Type.Optional(Type.String({ minLength: 3, maxLength: 40, pattern: '^[0-9+()./ -]+$' })),
    address: Type.Optional(Text(500)),
  },
  Strict,
);
export type OwnerInput = Static<typeof OwnerInput>;
export const Owner = Type.Object({ resourceType: Type.Literal('Owner'), ...RecordMeta, ...OwnerInput.properties });
export type Owner = Static<typeof Owner>;

// --- patients -----------------------------------------------------------------------------

export const SpeciesCode = Type.Union(
  SPECIES_CODES.map((code) => Type.Literal(code)),
  { description: 'Species code; each maps to a SNOMED CT concept where one is published' },
);
export const Sex = Type.Union([Type.Literal('male'), Type.Literal('female'), Type.Literal('unknown')]);
const WeightKg = Type.Number({ exclusiveMinimum: 0, maximum: 2000 });
const AgeYears = Type.Number({ minimum: 0, maximum: 80 });

export const PatientInput = Type.Object(
  {
    name: Text(120),
    species: SpeciesCode,
    breed: Type.Optional(Text(120)),
    sex: Sex,
    neutered: Type.Boolean(),
    birthDate: Type.Optional(IsoDate),
    ageYears: Type.Optional(AgeYears),
    weightKg: Type.Optional(WeightKg),
    ownerId: Id,
  },
  { ...Strict, description: 'Give birthDate, or ageYears when the exact date is unknown (not both)' },
);
export type PatientInput = Static<typeof PatientInput>;

export const PatientPatch = Type.Partial(PatientInput, { ...Strict, minProperties: 1 });
export type PatientPatch = Static<typeof PatientPatch>;

export const Coding = Type.Object({ system: Type.String(), code: Type.String(), display: Type.String() });

export const Patient = Type.Object({
  resourceType: Type.Literal('Patient'),
  ...RecordMeta,
  name: Type.String(),
  species: SpeciesCode,
  speciesCoding: Type.Union([Coding, Type.Null()]),
  breed: Type.Union([Type.String(), Type.Null()]),
  sex: Sex,
  neutered: Type.Boolean(),
  birthDate: Type.Union([IsoDate, Type.Null()]),
  birthDateEstimated: Type.Boolean(),
  ageYears: Type.Union([Type.Number(), Type.Null()]),
  weightKg: Type.Union([Type.Number(), Type.Null()]),
  weightHistory: Type.Array(Type.Object({ weightKg: Type.Number(), recordedAt: DateTime })),
  ownerId: Id,
});
export type Patient = Static<typeof Patient>;

export const PatientQuery = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 120, description: 'Case-insensitive name prefix' })),
    species: Type.Optional(SpeciesCode),
    ownerId: Type.Optional(Id),
    limit: Limit(200, 50),
    cursor: Type.Optional(Cursor),
  },
  Strict,
);
export type PatientQuery = Static<typeof PatientQuery>;

export const RecordVersion = Type.Object({
  version: Type.Integer(),
  deleted: Type.Boolean(),
  recordedAt: DateTime,
  recordedBy: Type.Union([Id, Type.Null()]),
  content: Type.Record(Type.String(), Type.Unknown()),
});
export type RecordVersion = Static<typeof RecordVersion>;

// --- encounters and observations ----------------------------------------------------------

export const EncounterStatus = Type.Union([Type.Literal('planned'), Type.Literal('in-progress'), Type.Literal('finished'), Type.Literal('cancelled')]);
export const EncounterInput = Type.Object(
  {
    type: Type.Optional(Type.Union([Type.Literal('consultation'), Type.Literal('emergency'), Type.Literal('follow-up'), Type.Literal('vaccination'), Type.Literal('surgery'), Type.Literal('other')])),
    status: Type.Optional(EncounterStatus),
    reason: Type.Optional(Text(4000, { description: 'Free text; never logged' })),
    startedAt: Type.Optional(DateTime),
    endedAt: Type.Optional(DateTime),
  },
  Strict,
);
export type EncounterInput = Static<typeof EncounterInput>;
export const Encounter = Type.Object({
  resourceType: Type.Literal('Encounter'),
  ...RecordMeta,
  patientId: Id,
  type: Type.String(),
  status: EncounterStatus,
  reason: Type.Union([Type.String(), Type.Null()]),
  startedAt: DateTime,
  endedAt: Type.Union([DateTime, Type.Null()]),
});
export type Encounter = Static<typeof Encounter>;

export const ObservationCategory = Type.Union([Type.Literal('vital-sign'), Type.Literal('laboratory'), Type.Literal('clinical-sign'), Type.Literal('note')]);
export const ObservationInput = Type.Object(
  {
    category: ObservationCategory,
    code: Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{0,63}$', description: 'e.g. temperature, heart_rate, glucose, vomiting, note' }),
    display: Type.Optional(Text(200)),
    value: Type.Union([Type.Number(), Type.Boolean(), Text(10000)], { description: 'Number for measurements, boolean for present/absent signs, text for notes' }),
    unit: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    effectiveAt: Type.Optional(DateTime),
  },
  Strict,
);
export type ObservationInput = Static<typeof ObservationInput>;
export const Observation = Type.Object({
  resourceType: Type.Literal('Observation'),
  ...RecordMeta,
  encounterId: Id,
  patientId: Id,
  category: ObservationCategory,
  code: Type.String(),
  display: Type.Union([Type.String(), Type.Null()]),
  value: Type.Union([Type.Number(), Type.Boolean(), Type.String()]),
  unit: Type.Union([Type.String(), Type.Null()]),
  effectiveAt: DateTime,
});
export type Observation = Static<typeof Observation>;

export const PageQuery = Type.Object({ limit: Limit(200, 50), cursor: Type.Optional(Cursor) }, Strict);
export type PageQuery = Static<typeof PageQuery>;

// --- media --------------------------------------------------------------------------------

export const MEDIA_TYPES = ['image/jpeg', 'image/png', 'application/pdf'] as const;
export type MediaType = (typeof MEDIA_TYPES)[number];
export const MediaQuery = Type.Object(
  {
    patientId: Type.Optional(Id),
    encounterId: Type.Optional(Id),
    description: Type.Optional(Text(500)),
  },
  Strict,
);
export type MediaQuery = Static<typeof MediaQuery>;
export const ImageQualityReason = Type.Object(
  {
    code: Type.Union([Type.Literal('too-small'), Type.Literal('blank'), Type.Literal('blurred')]),
    detail: Type.String({ description: 'The measure and the threshold it missed, e.g. "Laplacian variance 1.57 < 5"' }),
  },
  { description: 'Why an image was flagged unusable' },
);
export type ImageQualityReason = Static<typeof ImageQualityReason>;
export const ImageInfo = Type.Object(
  {
    width: Type.Integer({ minimum: 1, description: 'Pixels, after EXIF orientation' }),
    height: Type.Integer({ minimum: 1 }),
    quality: Type.Object({
      usable: Type.Boolean({ description: 'False when too small, blank or blurred: the image is kept, and a diagnosis citing it says why it was not used' }),
      reasons: Type.Array(ImageQualityReason),
      measures: Type.Object({
        luminanceStdDev: Type.Number({ description: 'Standard deviation of luminance (0-255) of a greyscale copy fitted in 512 x 512' }),
        laplacianVariance: Type.Number({ description: 'Variance of the Laplacian of the same copy (sharpness)' }),
        analysedWidth: Type.Integer(),
        analysedHeight: Type.Integer(),
      }),
      thresholds: Type.Object(
        { minSidePx: Type.Number(), minLuminanceStdDev: Type.Number(), minLaplacianVariance: Type.Number() },
        { description: 'The thresholds applied (engineering choices, not clinical facts)' },
      ),
    }),
  },
  { description: 'The decoded image and its quality checks' },
);
export type ImageInfo = Static<typeof ImageInfo>;
export const Media = Type.Object({
  resourceType: Type.Literal('Media'),
  ...RecordMeta,
  contentType: Type.Union(MEDIA_TYPES.map((t) => Type.Literal(t))),
  sizeBytes: Type.Integer(),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  patientId: Type.Union([Id, Type.Null()]),
  encounterId: Type.Union([Id, Type.Null()]),
  description: Type.Union([Type.String(), Type.Null()]),
  image: Type.Union([ImageInfo, Type.Null()], { description: 'Null for a PDF, and for an image stored before images were decoded at upload' }),
});
export type Media = Static<typeof Media>;

// --- API keys and audit -------------------------------------------------------------------

export const Role = Type.Union([Type.Literal('admin'), Type.Literal('vet'), Type.Literal('staff'), Type.Literal('readonly')]);
export type Role = Static<typeof Role>;
export const ApiKeyInput = Type.Object({ name: Text(100), role: Role }, Strict);
export type ApiKeyInput = Static<typeof ApiKeyInput>;
export const ApiKey = Type.Object({
  id: Id,
  name: Type.String(),
  role: Role,
  keyPrefix: Type.String(),
  createdAt: DateTime,
  revokedAt: Type.Union([DateTime, Type.Null()]),
});
export type ApiKey = Static<typeof ApiKey>;
export const CreatedApiKey = Type.Object({
  ...ApiKey.properties,
  key: Type.Optional(Type.String({ description: 'The secret, shown in the first response only (absent on an idempotent replay); store it now' })),
});
export type CreatedApiKey = Static<typeof CreatedApiKey>;

export const AuditQuery = Type.Object(
  {
    entityType: Type.Optional(Type.String({ pattern: '^[a-z_]{1,40}$' })),
    entityId: Type.Optional(Id),
    from: Type.Optional(DateTime),
    to: Type.Optional(DateTime),
    limit: Limit(500, 100),
    cursor: Type.Optional(Cursor),
  },
  Strict,
);
export type AuditQuery = Static<typeof AuditQuery>;
export const AuditEvent = Type.Object({
  id: Id,
  occurredAt: DateTime,
  principalId: Type.Union([Id, Type.Null()]),
  role: Type.Union([Type.String(), Type.Null()]),
  action: Type.String(),
  entityType: Type.String(),
  entityId: Type.Union([Id, Type.Null()]),
  outcome: Type.String(),
  requestId: Type.Union([Type.String(), Type.Null()]),
  sourceIp: Type.Union([Type.String(), Type.Null()]),
  chainId: Id,
  seq: Type.Integer(),
});
export type AuditEvent = Static<typeof AuditEvent>;
