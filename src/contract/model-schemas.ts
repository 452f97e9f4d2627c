/** Payloads of the model registry (issue 13 §3): validation, types and OpenAPI from one definition. */
import { Type, type Static } from '@sinclair/typebox';

const Strict = { additionalProperties: false } as const;

export const ModelName = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$', minLength: 1, maxLength: 64, description: 'Model name (lower case, digits, . _ -)' });
export const ModelVersion = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$', minLength: 1, maxLength: 64, description: 'Version of the artefact (e.g. 1.0.0)' });
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$', minLength: 64, maxLength: 64, description: 'SHA-256 (hex) of the model artefact (model.onnx)' });
const Unit = Type.Number({ minimum: 0, maximum: 1 });

export const ModelInputSpec = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: 'Input tensor name' }),
    width: Type.Integer({ minimum: 1, maximum: 4096 }),
    height: Type.Integer({ minimum: 1, maximum: 4096 }),
    channels: Type.Union([Type.Literal(1), Type.Literal(3)]),
    layout: Type.Union([Type.Literal('NCHW'), Type.Literal('NHWC')]),
    mean: Type.Array(Type.Number(), { minItems: 1, maxItems: 3, description: 'Per channel, on values scaled to 0..1' }),
    std: Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, maxItems: 3 }),
    maxBatch: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'Largest N the model takes in one call (absent: 1)' })),
  },
  Strict,
);

export const ModelOutput = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Output tensor name (absent: the first output)' })),
    activation: Type.Union([Type.Literal('none'), Type.Literal('softmax'), Type.Literal('sigmoid')], { description: 'none: the output is probabilities; else what turns its logits into them' }),
  },
  Strict,
);

export const ModelLabelSpec = Type.Object(
  {
    label: Type.String({ minLength: 1, maxLength: 100 }),
    finding: Type.Union([Type.String({ pattern: '^[a-z0-9_]{1,64}$', minLength: 1, maxLength: 64 }), Type.Null()], {
      description: 'The knowledge-base finding this label reports (422 when the knowledge base has none by that code), or null for a label that is not a clinical finding (what kind of image it is)',
    }),
    threshold: Type.Number({ minimum: 0, maximum: 1, description: 'Probability from which the label counts' }),
    weight: Type.Number({ minimum: 0, maximum: 1, description: "Share of the finding's evidence that counts in the differential (times the probability); ignored when finding is null" }),
  },
  Strict,
);

export const ModelInput = Type.Object(
  {
    name: ModelName,
    version: ModelVersion,
    sha256: Sha256,
    input: ModelInputSpec,
    output: ModelOutput,
    labels: Type.Array(ModelLabelSpec, { minItems: 1, maxItems: 1000, description: 'In the order of the output tensor' }),
  },
  { ...Strict, description: 'Registers a model version; it serves no diagnosis until activated or put in canary' },
);
export type ModelInput = Static<typeof ModelInput>;

export const ModelStatus = Type.Union([Type.Literal('registered'), Type.Literal('active'), Type.Literal('canary'), Type.Literal('retired')]);

export const Model = Type.Object({
  id: Type.String({ format: 'uuid' }),
  ...ModelInput.properties,
  status: ModelStatus,
  canaryShare: Unit,
  activatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
export type Model = Static<typeof Model>;

export const ModelList = Type.Object({ items: Type.Array(Model) });
export const ModelParams = Type.Object({ name: ModelName }, Strict);
export const ModelVersionParams = Type.Object({ name: ModelName, version: ModelVersion }, Strict);
export const CanaryInput = Type.Object({ share: Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Share of diagnoses that use this version instead of the active one' }) }, Strict);
export type CanaryInput = Static<typeof CanaryInput>;
export const ModelQuery = Type.Object({ name: Type.Optional(ModelName) }, Strict);
