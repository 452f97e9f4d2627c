import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Role } from './contract/schemas.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** Unset: embedded PGlite under dataDir. */
  databaseUrl: string | undefined;
  /** Unset: in-process session tier. */
  redisUrl: string | undefined;
  bootstrapKey: string | undefined;
  logLevel: LogLevel;
  /** Largest accepted media upload, bytes. */
  mediaMaxBytes: number;
  /** Where media bytes go: an S3 bucket, or files under <dataDir>/blobs when unset. */
  mediaStore: MediaStoreConfig;
  /** Largest accepted JSON body, bytes. */
  bodyMaxBytes: number;
  /** Time a client has to send a whole request (headers and body), ms; slower ones are cut off. */
  httpRequestTimeoutMs: number;
  /** PostgreSQL pool size per process. */
  dbPoolMax: number;
  /** Consultation sessions expire after this long without use. */
  sessionTtlSeconds: number;
  redisKeyPrefix: string;
  /** Knowledge base directory; unset uses the bundled data/knowledge. */
  knowledgeDir: string | undefined;
  /** Time budget per agent, milliseconds. */
  agentBudgetMs: number;
  /** Time budget of the imaging agent (every model on every image of one diagnosis), milliseconds. */
  imagingBudgetMs: number;
  /**
   * Bytes of prepared model-input tensors (decoded, resized, normalised images) each process keeps
   * in its LRU cache (AGENTICPET_IMAGE_TENSOR_CACHE_MB); 0 keeps none.
   */
  imageTensorCacheBytes: number;
  /** How long the registry's serving set is cached in process at most (changes also invalidate it at once). */
  modelCacheTtlMs: number;
  /** Clinics whose admins may change the (shared) model registry; undefined: any clinic's admin. */
  modelAdminClinics: ReadonlySet<string> | undefined;
  /** Optional LLM for the narrative (OpenAI-compatible); off unless the base URL and model are set. */
  llm: { baseUrl: string; model: string; apiKey: string | undefined; timeoutMs: number } | undefined;
  /** prometheus: GET /metrics only; emf: also CloudWatch EMF lines on stdout. */
  metricsSink: MetricsSink;
  /** How often the EMF sink writes, seconds. */
  metricsEmfIntervalSeconds: number;
  /** OTLP/HTTP base URL for traces (OTEL_EXPORTER_OTLP_ENDPOINT); unset: tracing off. */
  otelEndpoint: string | undefined;
  /** service.name of the exported spans. */
  otelServiceName: string;
  /** Clinic transactions that may share one COMMIT (1: group commit off). */
  groupCommitMax: number;
  /** Clinic transactions that may wait for a database connection; more are answered 503. */
  dbQueueMax: number;
  /** Event-loop delay above which API requests are answered 503 (0: never). */
  maxEventLoopDelayMs: number;
  /** How long a looked-up API key is trusted in process: the bound on revocation taking effect. */
  keyCacheTtlMs: number;
  /** HTTP worker processes; undefined: one per core with PostgreSQL, one when embedded. */
  workers: number | undefined;
  /** Signed audit checkpoints (AGENTICPET_AUDIT_CHECKPOINT_URL); undefined: not written. */
  auditCheckpoints: AuditCheckpointConfig | undefined;
  /** PEM Ed25519 public key file that `audit verify` checks checkpoints with. */
  auditPublicKeyFile: string | undefined;
  /** `agenticpet backup`: the default target, the encryption key, the S3 endpoint (tests, MinIO). */
  backup: { url: string | undefined; key: Buffer | undefined; s3Endpoint: string | undefined };
  /** Requests per minute per API key and per clinic (all its keys); 0 switches a budget off. */
  rateLimits: { keyPerMinute: number; clinicPerMinute: number };
  /** Browser origins allowed to call the API (CORS); empty: no CORS headers at all. */
  corsOrigins: string[];
  /** OIDC bearer tokens (JWTs) besides API keys; undefined (AGENTICPET_OIDC_ISSUER unset): off. */
  oidc: OidcConfig | undefined;
  /** Image models (#13): where the artefacts are, and whether they run here or on a model server. */
  models: ModelsConfig;
}

export interface ModelsConfig {
  /** MODELS_DIR: holds <name>/<version>/model.onnx (+ card.json); default the repo's models/. */
  dir: string;
  /** MODEL_SERVER_URL: a KServe v2 server; set, models run there (kserve-v2), unset, in process (onnx). */
  serverUrl: string | undefined;
  /** MODEL_INTRA_OP_THREADS: ONNX Runtime threads per run in process (default 1: one worker per core already). */
  intraOpThreads: number;
}

/** The repo's models/ (from src/ or dist/, one level below the root). */
export const DEFAULT_MODELS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../models');

const ROLES: readonly Role[] = ['admin', 'vet', 'staff', 'readonly'];
/** Asymmetric only: with a shared-secret (HS*) algorithm the public key set would sign tokens. */
export const OIDC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export type OidcAlgorithm = (typeof OIDC_ALGORITHMS)[number];

export interface OidcConfig {
  /** The exact `iss` every token must carry. */
  issuer: string;
  /** Accepted `aud` values (or `client_id`, for tokens without `aud` such as Cognito access tokens). */
  audiences: string[];
  jwksUrl: string;
  algorithms: OidcAlgorithm[];
  /** Tolerance on exp, nbf and iat. */
  clockSkewSeconds: number;
  /** Accepted `token_use` values (Cognito's id | access); undefined: the claim is not checked. */
  tokenUse: Array<'id' | 'access'> | undefined;
  clinicClaim: string;
  roleClaim: string;
  groupsClaim: string;
  /** Group name -> role, for tokens that carry groups instead of a role claim. */
  groupRoles: Map<string, Role>;
  /** After a fetch, unknown key ids do not refetch the key set for this long (bounds refetch floods). */
  jwksCooldownSeconds: number;
  /** A fetched key set is used for at most this long; removed keys stop working within it. */
  jwksMaxAgeSeconds: number;
  jwksTimeoutMs: number;
}

export interface AuditCheckpointConfig {
  /** file://DIR or s3://bucket/prefix. */
  url: string;
  /**
   * The signing key's text and the variable it came from (parsed where it is used, so the
   * message names the variable); undefined: `serve` refuses, `audit verify` does not need it.
   */
  signingKey: { variable: string; text: string } | undefined;
  intervalSeconds: number;
  s3Endpoint: string | undefined;
  requestTimeoutMs: number;
}

export type MediaStoreConfig =
  | { kind: 'fs' }
  | {
      kind: 's3';
      bucket: string;
      /** SSE-KMS key for new objects; unset: the bucket's default encryption. */
      kmsKeyId: string | undefined;
      /** S3-compatible endpoint (path-style); unset: AWS S3 in AWS_REGION. */
      endpoint: string | undefined;
      requestTimeoutMs: number;
    };

export type MetricsSink = 'prometheus' | 'emf';
const METRICS_SINKS: readonly MetricsSink[] = ['prometheus', 'emf'];

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`Invalid configuration: ${variable} ${message}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

export const SENTINEL_SCHEME = 'redis+sentinel:';

/** A REDIS_URL that names Redis Sentinel: the sentinels to ask and the monitored primary. */
export interface SentinelTarget {
  sentinels: Array<{ host: string; port: number }>;
  /** The primary's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  name: string;
  db: number | undefined;
  /** The data nodes' credentials (requirepass / ACL). */
  username: string | undefined;
  password: string | undefined;
  /** The sentinels' own password, when they have one. */
  sentinelPassword: string | undefined;
}

/**
 * redis+sentinel://[user:password@]host:port[,host:port…]/name[/db][?sentinelPassword=…]; throws
 * ConfigError (naming REDIS_URL, never echoing it: it may hold a password) when malformed.
 */
export function parseSentinelUrl(url: string): SentinelTarget {
  const fail = (why: string) => new ConfigError('REDIS_URL', why);
  // new URL() takes one host only, so the host list is split off by hand.
  const m = /^redis\+sentinel:\/\/(?:([^@/]*)@)?([^/?#]+)(\/[^?#]*)?(\?[^#]*)?$/.exec(url);
  if (m === null) throw fail('must be redis+sentinel://[user:password@]host:port[,host:port…]/primary-name[/db]');
  const [, userinfo, hostList, pathPart, query] = m;
  const sentinels = hostList!.split(',').map((hostPort) => {
    const hp = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(hostPort);
    const port = Number(hp?.[2] ?? 26379);
    if (hp === null || port < 1 || port > 65535) throw fail(`has a sentinel address that is not host:port: ${hostPort}`);
    return { host: hp[1]!.replace(/^\[|\]$/g, ''), port };
  });
  const segments = (pathPart ?? '').split('/').filter((s) => s !== '');
  if (segments[0] === undefined || segments.length > 2) throw fail('must name the monitored primary as its path: redis+sentinel://host:port,…/primary-name[/db]');
  const db = segments[1] === undefined ? undefined : Number(segments[1]);
  if (db !== undefined && !(Number.isInteger(db) && db >= 0)) throw fail(`has a database number that is not a non-negative integer: ${segments[1]}`);
  const [user, ...secret] = (userinfo ?? '').split(':');
  const params = new URLSearchParams(query ?? '');
  for (const key of params.keys()) if (key !== 'sentinelPassword') throw fail(`has an unknown parameter ${key} (only sentinelPassword is understood)`);
  return {
    sentinels,
    name: decodeURIComponent(segments[0]),
    db,
    username: user === undefined || user === '' ? undefined : decodeURIComponent(user),
    password: secret.length === 0 ? undefined : decodeURIComponent(secret.join(':')),
    sentinelPassword: params.get('sentinelPassword') ?? undefined,
  };
}

function optional(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
}

/** Reads and validates configuration; throws ConfigError naming the offending variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const databaseUrl = optional(env, 'DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'must be a postgres:// or postgresql:// URL');
  }
  const redisUrl = optional(env, 'REDIS_URL');
  if (redisUrl !== undefined && redisUrl.startsWith(SENTINEL_SCHEME)) parseSentinelUrl(redisUrl);
  else if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('REDIS_URL', 'must be a redis://, rediss:// or redis+sentinel:// URL');
  }
  const bootstrapKey = optional(env, 'AGENTICPET_BOOTSTRAP_KEY');
  if (bootstrapKey !== undefined && bootstrapKey.length < 24) {
    throw new ConfigError('AGENTICPET_BOOTSTRAP_KEY', 'must be at least 24 characters long');
  }
  const logLevel = (optional(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const llmBaseUrl = optional(env, 'AGENTICPET_LLM_BASE_URL');
  const llmModel = optional(env, 'AGENTICPET_LLM_MODEL');
  if (llmBaseUrl !== undefined && !/^https?:\/\//.test(llmBaseUrl)) throw new ConfigError('AGENTICPET_LLM_BASE_URL', 'must be an http:// or https:// URL');
  if ((llmBaseUrl === undefined) !== (llmModel === undefined)) {
    throw new ConfigError(llmBaseUrl === undefined ? 'AGENTICPET_LLM_BASE_URL' : 'AGENTICPET_LLM_MODEL', 'must be set together with the other LLM setting (AGENTICPET_LLM_BASE_URL and AGENTICPET_LLM_MODEL)');
  }
  const metricsSink = (optional(env, 'METRICS_SINK') ?? 'prometheus').toLowerCase();
  if (!METRICS_SINKS.includes(metricsSink as MetricsSink)) {
    throw new ConfigError('METRICS_SINK', `must be one of ${METRICS_SINKS.join(', ')}, got "${metricsSink}"`);
  }
  const redisKeyPrefix = optional(env, 'REDIS_KEY_PREFIX') ?? 'ap';
  if (!/^[A-Za-z0-9_.-]{1,32}$/.test(redisKeyPrefix)) throw new ConfigError('REDIS_KEY_PREFIX', 'must be 1 to 32 letters, digits, dots, dashes or underscores');
  const otelEndpoint = optional(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  // Not echoed in the message: the URL may carry credentials. /v1/traces is appended to it.
  if (otelEndpoint !== undefined && (!/^https?:\/\/[^/?#\s]+[^?#\s]*$/.test(otelEndpoint) || !URL.canParse(otelEndpoint))) {
    throw new ConfigError('OTEL_EXPORTER_OTLP_ENDPOINT', 'must be an http:// or https:// URL without a query or fragment (the OTLP/HTTP base URL)');
  }
  const mediaBucket = optional(env, 'AGENTICPET_MEDIA_BUCKET');
  // S3 bucket naming rules: 3-63 lower-case letters, digits, dots and hyphens.
  if (mediaBucket !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(mediaBucket)) {
    throw new ConfigError('AGENTICPET_MEDIA_BUCKET', 'must be an S3 bucket name (3 to 63 lower-case letters, digits, dots or hyphens)');
  }
  const s3Endpoint = optional(env, 'AGENTICPET_S3_ENDPOINT');
  if (s3Endpoint !== undefined && (!/^https?:\/\//.test(s3Endpoint) || !URL.canParse(s3Endpoint))) {
    throw new ConfigError('AGENTICPET_S3_ENDPOINT', 'must be an http:// or https:// URL');
  }
  const checkpointUrl = optional(env, 'AGENTICPET_AUDIT_CHECKPOINT_URL');
  if (checkpointUrl !== undefined && !/^(file:\/\/.+|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?)$/.test(checkpointUrl)) {
    throw new ConfigError('AGENTICPET_AUDIT_CHECKPOINT_URL', 'must be file://DIR (a directory) or s3://bucket/prefix');
  }
  const backupUrl = optional(env, 'AGENTICPET_BACKUP_URL');
  if (backupUrl !== undefined && !/^(file:\/\/.+|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?)$/.test(backupUrl)) {
    throw new ConfigError('AGENTICPET_BACKUP_URL', 'must be file://DIR (a directory) or s3://bucket/prefix');
  }
  const backupKeyText = optional(env, 'AGENTICPET_BACKUP_KEY');
  let backupKey: Buffer | undefined;
  if (backupKeyText !== undefined) {
    try {
      backupKey = parseBackupKey(backupKeyText);
    } catch (err) {
      throw new ConfigError('AGENTICPET_BACKUP_KEY', (err as Error).message);
    }
  }
  if (mediaBucket === undefined) {
    for (const name of ['AGENTICPET_S3_ENDPOINT', 'AGENTICPET_MEDIA_KMS_KEY_ID']) {
      // The endpoint serves the checkpoint and backup buckets too.
      if (name === 'AGENTICPET_S3_ENDPOINT' && (checkpointUrl?.startsWith('s3://') || backupUrl?.startsWith('s3://'))) continue;
      if (optional(env, name) !== undefined) throw new ConfigError(name, 'is set but AGENTICPET_MEDIA_BUCKET is not (media would silently go to local disk)');
    }
  }
  const mediaStore: MediaStoreConfig =
    mediaBucket === undefined
      ? { kind: 'fs' }
      : {
          kind: 's3',
          bucket: mediaBucket,
          kmsKeyId: optional(env, 'AGENTICPET_MEDIA_KMS_KEY_ID'),
          endpoint: s3Endpoint,
          requestTimeoutMs: integer(env, 'AGENTICPET_S3_TIMEOUT_MS', 5000, 100, 120_000),
        };
  const auditCheckpoints: AuditCheckpointConfig | undefined =
    checkpointUrl === undefined
      ? undefined
      : {
          url: checkpointUrl,
          signingKey: signingKeyText(env),
          intervalSeconds: integer(env, 'AGENTICPET_AUDIT_CHECKPOINT_SECONDS', 60, 1, 3600),
          s3Endpoint: s3Endpoint,
          requestTimeoutMs: integer(env, 'AGENTICPET_S3_TIMEOUT_MS', 5000, 100, 120_000),
        };
  const modelServerUrl = optional(env, 'MODEL_SERVER_URL');
  // Not echoed: the URL may carry credentials.
  if (modelServerUrl !== undefined && (!/^https?:\/\/[^/?#\s]+[^?#\s]*$/.test(modelServerUrl) || !URL.canParse(modelServerUrl))) {
    throw new ConfigError('MODEL_SERVER_URL', 'must be an http:// or https:// base URL without a query or fragment (the KServe v2 server; /v2/... is appended)');
  }
  const otelServiceName = optional(env, 'OTEL_SERVICE_NAME') ?? 'agenticpet';
  if (otelServiceName.length > 255) throw new ConfigError('OTEL_SERVICE_NAME', 'must be at most 255 characters long');
  return {
    sessionTtlSeconds: integer(env, 'AGENTICPET_SESSION_TTL_SECONDS', 1800, 1, 7 * 24 * 3600),
    redisKeyPrefix,
    knowledgeDir: optional(env, 'AGENTICPET_KNOWLEDGE_DIR'),
    agentBudgetMs: integer(env, 'AGENTICPET_AGENT_BUDGET_MS', 250, 1, 60_000),
    imagingBudgetMs: integer(env, 'AGENTICPET_IMAGING_BUDGET_MS', 300, 1, 60_000),
    // 64 MiB per process holds ~1,300 images at the image-kind model's 64 x 64 x 3 (48 KiB each),
    // ~100 at a 224 x 224 x 3 input (588 KiB): 6 % of the smallest API task's 1 GiB (infra/lib/config.ts).
    imageTensorCacheBytes: integer(env, 'AGENTICPET_IMAGE_TENSOR_CACHE_MB', 64, 0, 16_384) * 1024 * 1024,
    modelCacheTtlMs: integer(env, 'AGENTICPET_MODEL_CACHE_TTL_MS', 30_000, 0, 3_600_000),
    modelAdminClinics: modelAdminClinics(env),
    llm:
      llmBaseUrl === undefined || llmModel === undefined
        ? undefined
        : { baseUrl: llmBaseUrl, model: llmModel, apiKey: optional(env, 'AGENTICPET_LLM_API_KEY'), timeoutMs: integer(env, 'AGENTICPET_LLM_TIMEOUT_MS', 2000, 50, 60_000) },
    port: integer(env, 'PORT', 3000, 0, 65535),
    host: optional(env, 'HOST') ?? '0.0.0.0',
    dataDir: path.resolve(optional(env, 'AGENTICPET_DATA_DIR') ?? './data'),
    databaseUrl,
    redisUrl,
    bootstrapKey,
    logLevel: logLevel as LogLevel,
    mediaMaxBytes: integer(env, 'AGENTICPET_MEDIA_MAX_BYTES', 10 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    mediaStore,
    bodyMaxBytes: integer(env, 'AGENTICPET_BODY_MAX_BYTES', 256 * 1024, 1024, 64 * 1024 * 1024),
    httpRequestTimeoutMs: integer(env, 'AGENTICPET_HTTP_REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000),
    dbPoolMax: integer(env, 'DATABASE_POOL_MAX', 3, 1, 1000),
    metricsSink: metricsSink as MetricsSink,
    metricsEmfIntervalSeconds: integer(env, 'METRICS_EMF_INTERVAL_SECONDS', 60, 1, 3600),
    otelEndpoint,
    otelServiceName,
    groupCommitMax: integer(env, 'AGENTICPET_GROUP_COMMIT_MAX', 32, 1, 64),
    dbQueueMax: integer(env, 'AGENTICPET_DB_QUEUE_MAX', 2000, 1, 1_000_000),
    maxEventLoopDelayMs: integer(env, 'AGENTICPET_MAX_EVENT_LOOP_DELAY_MS', 500, 0, 60_000),
    keyCacheTtlMs: integer(env, 'AGENTICPET_KEY_CACHE_TTL_MS', 5000, 0, 5000),
    workers: optional(env, 'AGENTICPET_WORKERS') === undefined ? undefined : integer(env, 'AGENTICPET_WORKERS', 1, 1, 256),
    auditCheckpoints,
    auditPublicKeyFile: optional(env, 'AGENTICPET_AUDIT_PUBLIC_KEY_FILE'),
    backup: { url: backupUrl, key: backupKey, s3Endpoint },
    // Production defaults: 50 requests/s per key and 200/s per clinic, each over a minute.
    rateLimits: {
      keyPerMinute: integer(env, 'AGENTICPET_RATE_LIMIT_KEY_PER_MIN', 3000, 0, 1_000_000_000),
      clinicPerMinute: integer(env, 'AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN', 12_000, 0, 1_000_000_000),
    },
    corsOrigins: corsOrigins(env),
    oidc: oidcConfig(env, bootstrapKey),
    models: {
      dir: path.resolve(optional(env, 'MODELS_DIR') ?? DEFAULT_MODELS_DIR),
      serverUrl: modelServerUrl,
      intraOpThreads: integer(env, 'MODEL_INTRA_OP_THREADS', 1, 1, 64),
    },
  };
}

function list(env: NodeJS.ProcessEnv, name: string): string[] | undefined {
  const raw = optional(env, name);
  return raw === undefined ? undefined : raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** http only to this machine (a local identity provider, tests); anywhere else a key set must come over TLS. */
function isTrustedJwksUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname));
}

function oidcConfig(env: NodeJS.ProcessEnv, bootstrapKey: string | undefined): OidcConfig | undefined {
  const issuer = optional(env, 'AGENTICPET_OIDC_ISSUER');
  if (issuer === undefined) {
    for (const name of ['AGENTICPET_OIDC_AUDIENCE', 'AGENTICPET_OIDC_JWKS_URL']) {
      if (optional(env, name) !== undefined) throw new ConfigError(name, 'is set but AGENTICPET_OIDC_ISSUER is not (bearer tokens would be refused)');
    }
    return undefined;
  }
  if (!/^https?:\/\//.test(issuer) || !URL.canParse(issuer)) throw new ConfigError('AGENTICPET_OIDC_ISSUER', 'must be the issuer URL tokens carry as "iss"');
  const audiences = list(env, 'AGENTICPET_OIDC_AUDIENCE') ?? [];
  // Without an audience, any token the issuer signs for any other application would be accepted.
  if (audiences.length === 0) throw new ConfigError('AGENTICPET_OIDC_AUDIENCE', 'must be set with AGENTICPET_OIDC_ISSUER (the client id(s) tokens are issued for)');
  const jwksUrl = optional(env, 'AGENTICPET_OIDC_JWKS_URL') ?? `${issuer.replace(/\/+$/, '')}/.well-known/jwks.json`;
  if (!URL.canParse(jwksUrl) || !isTrustedJwksUrl(new URL(jwksUrl))) {
    throw new ConfigError('AGENTICPET_OIDC_JWKS_URL', 'must be an https:// URL (http:// only on localhost); by default the issuer + /.well-known/jwks.json');
  }
  const algorithms = list(env, 'AGENTICPET_OIDC_ALGORITHMS') ?? ['RS256', 'PS256', 'ES256', 'EdDSA'];
  const refused = algorithms.find((a) => !(OIDC_ALGORITHMS as readonly string[]).includes(a));
  if (refused !== undefined || algorithms.length === 0) {
    throw new ConfigError('AGENTICPET_OIDC_ALGORITHMS', `must list asymmetric JWS algorithms among ${OIDC_ALGORITHMS.join(', ')}${refused === undefined ? '' : `, got "${refused}"`}`);
  }
  const tokenUse = list(env, 'AGENTICPET_OIDC_TOKEN_USE');
  if (tokenUse !== undefined && (tokenUse.length === 0 || tokenUse.some((u) => u !== 'id' && u !== 'access'))) {
    throw new ConfigError('AGENTICPET_OIDC_TOKEN_USE', 'must be id, access or id,access');
  }
  const groupRoles = new Map<string, Role>();
  for (const pair of list(env, 'AGENTICPET_OIDC_GROUP_ROLES') ?? ROLES.map((r) => `${r}=${r}`)) {
    const [group, role, ...rest] = pair.split('=').map((s) => s.trim());
    if (group === undefined || group === '' || rest.length > 0 || !ROLES.includes(role as Role)) {
      throw new ConfigError('AGENTICPET_OIDC_GROUP_ROLES', `must be group=role pairs separated by commas, the role one of ${ROLES.join(', ')}; got "${pair}"`);
    }
    groupRoles.set(group, role as Role);
  }
  // A bootstrap key shaped like a JWT would be sent to the token verifier and never match.
  if (bootstrapKey !== undefined && /^[\w-]+\.[\w-]+\.[\w-]*$/.test(bootstrapKey)) {
    throw new ConfigError('AGENTICPET_BOOTSTRAP_KEY', 'must not look like a JWT (three dot-separated parts) when AGENTICPET_OIDC_ISSUER is set');
  }
  return {
    issuer,
    audiences,
    jwksUrl,
    algorithms: algorithms as OidcAlgorithm[],
    clockSkewSeconds: integer(env, 'AGENTICPET_OIDC_CLOCK_SKEW_SECONDS', 60, 0, 600),
    tokenUse: tokenUse as Array<'id' | 'access'> | undefined,
    clinicClaim: optional(env, 'AGENTICPET_OIDC_CLINIC_CLAIM') ?? 'custom:clinic_id',
    roleClaim: optional(env, 'AGENTICPET_OIDC_ROLE_CLAIM') ?? 'custom:role',
    groupsClaim: optional(env, 'AGENTICPET_OIDC_GROUPS_CLAIM') ?? 'cognito:groups',
    groupRoles,
    jwksCooldownSeconds: integer(env, 'AGENTICPET_OIDC_JWKS_COOLDOWN_SECONDS', 30, 0, 3600),
    jwksMaxAgeSeconds: integer(env, 'AGENTICPET_OIDC_JWKS_MAX_AGE_SECONDS', 600, 1, 86_400),
    jwksTimeoutMs: integer(env, 'AGENTICPET_OIDC_JWKS_TIMEOUT_MS', 5000, 100, 60_000),
  };
}

/**
 * AGENTICPET_CORS_ORIGINS: comma-separated origins, each exactly as a browser sends it in Origin
 * (scheme://host[:port], no path, no trailing slash). No "*": the allow-list is the point.
 */
function modelAdminClinics(env: NodeJS.ProcessEnv): ReadonlySet<string> | undefined {
  const raw = optional(env, 'AGENTICPET_MODEL_ADMIN_CLINICS');
  if (raw === undefined) return undefined;
  const ids = raw.split(',').map((id) => id.trim().toLowerCase());
  const bad = ids.find((id) => !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id));
  if (bad !== undefined) throw new ConfigError('AGENTICPET_MODEL_ADMIN_CLINICS', `must be comma-separated clinic ids (uuids), got "${bad}"`);
  return new Set(ids);
}

function corsOrigins(env: NodeJS.ProcessEnv): string[] {
  const raw = optional(env, 'AGENTICPET_CORS_ORIGINS');
  if (raw === undefined) return [];
  return raw.split(',').map((o) => {
    const origin = o.trim();
    const parsed = URL.canParse(origin) ? new URL(origin) : undefined;
    if (parsed === undefined || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError('AGENTICPET_CORS_ORIGINS', `must be comma-separated origins like https://app.example.com (scheme, host and optional port; lower case, no path or trailing slash), got "${origin}"`);
    }
    return origin;
  });
}

/** AGENTICPET_BACKUP_KEY (AES-256-GCM for backups): 32 bytes as 64 hex digits or base64. */
export function parseBackupKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : /^[A-Za-z0-9+/_-]{43}=?$/.test(t) ? Buffer.from(t, 'base64') : null;
  if (key === null || key.length !== 32) throw new Error('must be 32 bytes, as 64 hex digits or base64 (openssl rand -base64 32)');
  return key;
}

/** AGENTICPET_AUDIT_SIGNING_KEY (the key itself), or AGENTICPET_AUDIT_SIGNING_KEY_FILE (a file holding it). */
function signingKeyText(env: NodeJS.ProcessEnv): AuditCheckpointConfig['signingKey'] {
  const inline = optional(env, 'AGENTICPET_AUDIT_SIGNING_KEY');
  const file = optional(env, 'AGENTICPET_AUDIT_SIGNING_KEY_FILE');
  if (inline !== undefined && file !== undefined) throw new ConfigError('AGENTICPET_AUDIT_SIGNING_KEY_FILE', 'is set together with AGENTICPET_AUDIT_SIGNING_KEY: set one');
  if (inline !== undefined) return { variable: 'AGENTICPET_AUDIT_SIGNING_KEY', text: inline };
  if (file === undefined) return undefined;
  try {
    return { variable: 'AGENTICPET_AUDIT_SIGNING_KEY_FILE', text: fs.readFileSync(file, 'utf8') };
  } catch (err) {
    throw new ConfigError('AGENTICPET_AUDIT_SIGNING_KEY_FILE', `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
