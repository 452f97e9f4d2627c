/**
 * The ports the clinical domain depends on. Storage adapters implement them; the domain never
 * sees SQL, a driver or a file path.
 */
import type { Role } from '../contract/schemas.js';

export type ResourceType = 'owner' | 'patient' | 'encounter' | 'observation' | 'media';

export interface Principal {
  keyId: string;
  clinicId: string;
  role: Role;
}

/** Who is asking, for whom, from where: everything an audit event needs besides the action. */
export interface RequestContext {
  principal: Principal;
  requestId: string;
  sourceIp: string | null;
}

export interface StoredRecord<C> {
  id: string;
  version: number;
  deleted: boolean;
  createdAt: Date;
  updatedAt: Date;
  content: C;
}

export interface StoredVersion<C> {
  version: number;
  deleted: boolean;
  recordedAt: Date;
  recordedBy: string | null;
  content: C;
}

export interface WeightEntry {
  weightKg: number;
  recordedAt: Date;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export type AuditAction = 'create' | 'read' | 'update' | 'delete' | 'search' | 'revoke';

export interface AuditEntry {
  action: AuditAction;
  entityType: string;
  entityId: string | null;
  outcome: string;
  detail?: Record<string, string | number | boolean | null>;
}

export interface StoredAuditEvent {
  id: string;
  chainId: string;
  seq: number;
  occurredAt: Date;
  principalId: string | null;
  role: string | null;
  action: string;
  entityType: string;
  entityId: string | null;
  outcome: string;
  requestId: string | null;
  sourceIp: string | null;
}

export interface AuditFilter {
  entityType?: string;
  entityId?: string;
  from?: Date;
  to?: Date;
  limit: number;
  cursor?: string;
}

export interface PatientFilter {
  namePrefix?: string;
  species?: string;
  ownerId?: string;
  limit: number;
  cursor?: string;
}

export interface StoredResponse {
  status: number;
  body: unknown;
  /** The body already serialised (the text the database also stores): sent as it is. */
  bodyJson?: string;
  etag?: string;
  location?: string;
}

export interface StoredApiKey {
  id: string;
  name: string;
  role: Role;
  keyPrefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface EvidenceLink {
  conclusionType: 'triage' | 'differential' | 'plan';
  conclusionCode: string;
  evidenceKind: string;
  evidenceRef: string;
  finding: string | null;
  detail: Record<string, unknown>;
  weight: number | null;
}

export interface DiagnosisRecord {
  id: string;
  patientId: string | null;
  encounterId: string | null;
  consultationId: string | null;
  species: string;
  triageLevel: string;
  topCondition: string | null;
  kbVersion: string;
  input: unknown;
  report: unknown;
  /** The report as JSON text, when the caller already has it: stored as it is. */
  reportJson?: string;
  createdAt: Date;
}

export interface ProvenanceRecord {
  agents: Record<string, string>;
  kbVersion: string;
  chainDigest: string;
  chain: unknown;
  requestId: string;
  sessionId: string | null;
  recordedAt: Date;
  /** The model versions the imaging agent ran (absent: none, as for every diagnosis before them). */
  models?: ModelRef[];
}

/** One ACID transaction confined (by the database itself) to the caller's clinic. */
export interface ClinicalTx {
  insertRecord(type: ResourceType, id: string, content: object, at: Date): Promise<StoredRecord<unknown>>;
  /** Writes the next version if the current one is still expectedVersion; null when it is not. */
  updateRecord(type: ResourceType, id: string, expectedVersion: number, content: object, deleted: boolean, at: Date): Promise<StoredRecord<unknown> | null>;
  getRecord(type: ResourceType, id: string, opts?: { forUpdate?: boolean }): Promise<StoredRecord<unknown> | null>;
  history(type: ResourceType, id: string): Promise<StoredVersion<unknown>[]>;
  listPatients(filter: PatientFilter): Promise<Page<StoredRecord<unknown>>>;
  listChildren(type: 'encounter' | 'observation', parentId: string, limit: number, cursor?: string): Promise<Page<StoredRecord<unknown>>>;
  addWeight(patientId: string, weightKg: number, at: Date): Promise<void>;
  /** Weight history per patient, oldest first. */
  weights(patientIds: string[]): Promise<Map<string, WeightEntry[]>>;

  insertApiKey(key: { id: string; name: string; role: Role; keyHash: Buffer; keyPrefix: string; createdBy: string | null }): Promise<StoredApiKey>;
  revokeApiKey(id: string): Promise<StoredApiKey | null>;

  audit(entry: AuditEntry): Promise<void>;
  listAudit(filter: AuditFilter): Promise<Page<StoredAuditEvent>>;

  /**
   * The report, its provenance and the evidence links stored beside the report (those it does not
   * carry itself); with `audit`, that event too, all in one statement.
   */
  insertDiagnosis(d: DiagnosisRecord, evidence: EvidenceLink[], provenance: ProvenanceRecord, audit?: AuditEntry): Promise<void>;
  getDiagnosis(id: string): Promise<DiagnosisRecord | null>;
  listDiagnoses(patientId: string, limit: number, cursor?: string): Promise<Page<DiagnosisRecord>>;
  /**
   * The provenance and the stored evidence links: with besideReport, those written beside the
   * report (the rest derive from it); otherwise every link, as diagnoses before migration 4 kept them.
   */
  diagnosisTrace(id: string): Promise<{ evidence: EvidenceLink[]; besideReport: boolean; provenance: ProvenanceRecord } | null>;

  /** The global model registry (models are not per clinic; who may change them is the service's rule). */
  readonly models: ModelRegistryTx;

  findIdempotent(key: string): Promise<{ requestHash: string; response: StoredResponse } | null>;
  saveIdempotent(key: string, requestHash: string, response: StoredResponse): Promise<void>;
}

export interface AuditVerification {
  ok: boolean;
  chains: number;
  events: number;
  /** The first event that failed, and why. */
  failure?: { chainId: string; seq: number; eventId: string | null; reason: string };
}

export interface ClinicalStore {
  readonly kind: 'postgres' | 'pglite';
  /**
   * One transaction in the caller's clinic. `writesOnly`: fn only writes diagnoses (no read, no
   * other write), so the store may send its writes in one statement with other transactions'.
   */
  inClinic<T>(ctx: RequestContext, fn: (tx: ClinicalTx) => Promise<T>, opts?: { writesOnly?: boolean }): Promise<T>;
  findPrincipalByKeyHash(keyHash: Buffer): Promise<Principal | null>;
  /** The live (not revoked) keys among these hashes, by hex hash: one query for many. */
  findPrincipalsByKeyHashes(keyHashes: Buffer[]): Promise<Map<string, Principal>>;
  /** Whether a clinic with this id exists (clinics are never deleted). */
  clinicExists(clinicId: string): Promise<boolean>;
  /** Creates a clinic with its first admin key; with ifNoClinics, only when none exists yet. */
  createClinic(name: string, adminKey: { id: string; keyHash: Buffer; keyPrefix: string }, opts?: { ifNoClinics?: boolean }): Promise<{ clinicId: string } | null>;
  verifyAudit(): Promise<AuditVerification>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface BlobStore {
  /** Stores bytes under their sha256 (hex); storing the same bytes twice is a no-op. */
  put(clinicId: string, sha256: string, bytes: Buffer): Promise<void>;
  get(clinicId: string, sha256: string): Promise<Buffer | null>;
  /** Releases connections (S3 client sockets); optional. */
  close?(): void;
}

/** What an image decoder measured on a decoded image: the inputs of image-quality.ts. */
export interface ImageMeasures {
  /** Standard deviation of the luminance (0-255) of the greyscale analysis copy. */
  luminanceStdDev: number;
  /** Variance of the 4-neighbour Laplacian of the same copy (a sharpness measure). */
  laplacianVariance: number;
  /** Size of the analysis copy: the image scaled down to fit a square of the decoder's side. */
  analysedWidth: number;
  analysedHeight: number;
}

/** A decoded image: its displayed size (after EXIF orientation) and its measures. */
export interface DecodedImage {
  width: number;
  height: number;
  measures: ImageMeasures;
}

/**
 * Decodes an image's pixels (PNG, JPEG) and measures them, off the event loop. Refusals are
 * values, not exceptions: `undecodable` (corrupt, truncated, not an image) and `too-large`
 * (over the decoder's pixel or side bound, refused before its pixels are decoded).
 */
export interface ImageDecoder {
  decode(bytes: Buffer): Promise<DecodedImage | { refused: 'undecodable' | 'too-large'; detail: string }>;
  /** The model input tensor of one image (batch of 1), prepared as `spec` says; rejects with ModelRuntimeError 'bad-input'. */
  toTensor(bytes: Buffer, spec: ImageInputSpec): Promise<Tensor>;
}

/**
 * A tensor as the KServe v2 / Open Inference Protocol names one. Only FP32 is used here; `data`
 * is row-major (the layout the model card gives, e.g. NCHW).
 */
export interface Tensor {
  name: string;
  shape: number[];
  datatype: 'FP32';
  data: Float32Array;
}

/** Which model artefact to run: the registry's name and version, and the artefact's SHA-256 (hex). */
export interface ModelRef {
  name: string;
  version: string;
  sha256: string;
}

/**
 * Runs a model on tensors: in process (ONNX Runtime) or remote (a KServe v2 server over HTTP).
 * Failures are exceptions (ModelUnavailable, a timeout): the caller degrades the answer.
 */
export interface ModelRuntime {
  readonly kind: 'onnx' | 'kserve-v2';
  infer(model: ModelRef, inputs: Tensor[], opts: { timeoutMs: number }): Promise<Tensor[]>;
  close(): Promise<void>;
}

/** How a model wants its image: the part of a model card the decoder needs. */
export interface ImageInputSpec {
  /** Input tensor name. */
  name: string;
  width: number;
  height: number;
  channels: 1 | 3;
  layout: 'NCHW' | 'NHWC';
  /** Per channel, applied to values scaled to 0..1: (v - mean) / std. */
  mean: number[];
  std: number[];
  /** The largest N the model takes in one call (images are batched up to it); absent: 1. */
  maxBatch?: number;
}

/**
 * Turns an image's bytes into the one-image tensor a model's input spec asks for: decoded,
 * oriented, resized to width x height, scaled to 0..1 and normalised per channel; shape
 * [1, C, H, W] for NCHW, [1, H, W, C] for NHWC. Refusals (undecodable bytes) are exceptions.
 * The sharp decoder implements it beside ImageDecoder.
 */
export interface ImagePreprocessor {
  toTensor(bytes: Buffer, spec: ImageInputSpec): Promise<Tensor>;
}

/** How a model's output tensor turns into one probability per label. */
export interface ModelOutputSpec {
  /** Output tensor name; absent: the first output. */
  name?: string;
  /** What the output holds: probabilities already, or logits to pass through softmax or sigmoid. */
  activation: 'none' | 'softmax' | 'sigmoid';
}

/**
 * One output label of a model and what it means here: the knowledge-base finding it reports
 * (null: a label that is not a clinical finding, such as "radiograph"; it is reported as what the
 * image was read as), the probability from which it counts, and the weight (0..1) of its evidence.
 */
export interface ModelLabel {
  label: string;
  finding: string | null;
  threshold: number;
  weight: number;
}

export type ModelStatus = 'registered' | 'active' | 'canary' | 'retired';

/** A model version in the registry (global: the same models serve every clinic). */
export interface RegisteredModel extends ModelRef {
  id: string;
  input: ImageInputSpec;
  output: ModelOutputSpec;
  labels: ModelLabel[];
  status: ModelStatus;
  /** Share (0..1) of diagnoses that use this version instead of the active one, when canary. */
  canaryShare: number;
  /** When this version last became active (what a rollback goes back to), else null. */
  activatedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export type NewModel = Omit<RegisteredModel, 'status' | 'canaryShare' | 'activatedAt' | 'createdAt' | 'updatedAt'>;

/** The registry's table, inside a clinical transaction (so each change and its audit event commit together). */
export interface ModelRegistryTx {
  /** Null when (name, version) is already registered. */
  insertModel(m: NewModel, at: Date): Promise<RegisteredModel | null>;
  getModel(name: string, version: string, opts?: { forUpdate?: boolean }): Promise<RegisteredModel | null>;
  /** Every version, of one name or all, by name then creation. */
  listModels(name?: string, opts?: { forUpdate?: boolean }): Promise<RegisteredModel[]>;
  setStatus(id: string, status: ModelStatus, canaryShare: number, at: Date, opts?: { activated?: boolean }): Promise<RegisteredModel>;
}

/** The versions diagnoses may use (active and canary), read without a clinic: what the in-process cache holds. */
export interface ModelCatalog {
  servingModels(): Promise<RegisteredModel[]>;
}

/** Tells every instance the registry changed, so each drops its cached serving set at once. */
export interface ModelChangeBus {
  publish(): Promise<void>;
  onChange(listener: () => void): void;
}
