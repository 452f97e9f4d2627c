/**
 * Composition root: the only place (with cli.ts) that knows which adapters are in use.
 * DATABASE_URL set: PostgreSQL; unset: embedded PGlite under the data directory.
 */
import type { KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { AgentRegistry } from './agents/orchestrator.js';
import { ConsultationsService } from './clinical/diagnoses/consultations.js';
import { DiagnosesService } from './clinical/diagnoses/diagnoses.js';
import { ImageTensorCache } from './clinical/diagnoses/image-tensor-cache.js';
import { SessionMetaCache } from './clinical/diagnoses/session-meta-cache.js';
import type { TrackedSessions } from './clinical/sessions.js';
import { AccessService, type RevocationBus } from './clinical/access/access.js';
import { LeasedRateCounterStore } from './clinical/access/rate-leases.js';
import { RateLimiter } from './clinical/access/rate-limits.js';
import { OidcVerifier } from './clinical/access/oidc.js';
import { EncountersService } from './clinical/records/encounters.js';
import { MediaService } from './clinical/records/media.js';
import { KServeModelRuntime } from './imaging/kserve-client.js';
import { OnnxModelRuntime } from './imaging/onnx-runtime.js';
import { SharpImageDecoder } from './imaging/sharp-decoder.js';
import { Operations } from './clinical/operation.js';
import type { BlobStore, ClinicalStore, ImagePreprocessor, ModelChangeBus, ModelRuntime } from './clinical/ports.js';
import { ModelRegistryService } from './clinical/models/registry.js';
import { ServingModels } from './clinical/models/serving.js';
import { RecordsService } from './clinical/records/records.js';
import { ConfigError, type Config } from './config.js';
import { buildHttpApp, type App } from './http/server.js';
import { loadKnowledgeBase } from './knowledge/load.js';
import { clusterRegistry } from './observability/cluster-metrics.js';
import { EmfSink } from './observability/emf.js';
import { createMetrics, type AppMetrics } from './observability/metrics.js';
import { agentStepSpans, startTracing } from './observability/tracing.js';
import { OpenAiCompatibleClient } from './llm/openai.js';
import { MemorySessionStore } from './storage/sessions/memory.js';
import { RedisSessionStore } from './storage/redis/sessions.js';
import { RedisRateCounterStore } from './storage/redis/rate-limits.js';
import { MemoryRateCounterStore } from './storage/rate-limits/memory.js';
import { ResilientSessionStore } from './storage/sessions/resilient.js';
import { FsBlobStore } from './storage/blobs/fs.js';
import { parseSigningKey } from './storage/checkpoints/checkpoint.js';
import { Checkpointer } from './storage/checkpoints/checkpointer.js';
import { openCheckpointStore } from './storage/checkpoints/stores.js';
import { S3BlobStore } from './storage/blobs/s3.js';
import { allBuses, ClusterRevocationBus, RedisRevocationBus } from './storage/redis/revocations.js';
import { allModelBuses, ClusterModelChangeBus, RedisModelChangeBus } from './storage/redis/model-changes.js';
import { SqlModelCatalog } from './storage/sql/models.js';
import type { SqlExecutor } from './storage/sql/executor.js';
import { migrate } from './storage/sql/migrate.js';
import { PgliteExecutor } from './storage/sql/pglite.js';
import { PostgresExecutor } from './storage/sql/postgres.js';
import { SqlClinicalStore } from './storage/sql/store.js';

export const VERSION = '0.1.0';

export async function openExecutor(config: Config, logger?: Logger): Promise<SqlExecutor> {
  if (config.databaseUrl !== undefined) {
    return new PostgresExecutor({
      connectionString: config.databaseUrl,
      poolMax: config.dbPoolMax,
      groupCommitMax: config.groupCommitMax,
      queueMax: config.dbQueueMax,
      onPoolError: (err) => logger?.warn({ err: { message: err.message } }, 'idle PostgreSQL connection failed'),
      // With a multi-host DATABASE_URL: at start, and after each failover the service followed.
      onPrimary: (host) => logger?.info({ host }, 'PostgreSQL primary found'),
    });
  }
  return PgliteExecutor.open({ dir: path.join(config.dataDir, 'pglite'), groupCommitMax: config.groupCommitMax, queueMax: config.dbQueueMax });
}

export function writerName(): string {
  return `${os.hostname()}:${process.pid}`;
}

export interface Runtime {
  app: App;
  store: ClinicalStore;
  access: AccessService;
  /** Writes the signed audit checkpoints; null without AGENTICPET_AUDIT_CHECKPOINT_URL. */
  checkpointer: Checkpointer | null;
  /** Runs the image models: in process (onnx), or on MODEL_SERVER_URL (kserve-v2). */
  modelRuntime: ModelRuntime;
  close(): Promise<void>;
}

/** MODEL_SERVER_URL set: the models run on that KServe v2 server; unset: in process from MODELS_DIR. */
export function openModelRuntime(config: Config): ModelRuntime {
  const m = config.models;
  return m.serverUrl !== undefined ? new KServeModelRuntime({ baseUrl: m.serverUrl }) : new OnnxModelRuntime({ modelsDir: m.dir, intraOpThreads: m.intraOpThreads });
}

/**
 * The session tier: Redis (with an in-process fallback when it is unreachable) when REDIS_URL
 * is set, in-process otherwise. Each request gets a view that tells whether it fell back.
 */
function openSessions(
  config: Config,
  logger: Logger,
  registry: Registry,
): { perRequest: () => TrackedSessions; kind: string; redis: RedisSessionStore['client'] | undefined; close(): Promise<void> } {
  const memory = new MemorySessionStore();
  if (config.redisUrl === undefined) {
    const view: TrackedSessions = {
      kind: 'memory',
      degraded: false,
      create: (meta, ttl, initial) => memory.create(meta, ttl, initial),
      get: (clinicId, id, ttl) => memory.get(clinicId, id, ttl),
      meta: (clinicId, id) => memory.meta(clinicId, id),
      write: (clinicId, id, batch, ttl) => memory.write(clinicId, id, batch, ttl),
      ping: () => memory.ping(),
      close: () => memory.close(),
    };
    return { perRequest: () => view, kind: 'memory', redis: undefined, close: () => memory.close() };
  }
  const redis = new RedisSessionStore(config.redisUrl, config.redisKeyPrefix, { onError: (err) => logger.debug({ err: { message: err.message } }, 'redis connection error') });
  const resilient = new ResilientSessionStore(redis, memory, {
    registry,
    onPrimaryError: (err, operation) => logger.warn({ operation, err: { message: (err as Error).message } }, 'session tier unreachable; using in-process state'),
  });
  return { perRequest: () => resilient.withTracking(), kind: 'redis', redis: redis.client, close: () => resilient.close() };
}

/**
 * The request budgets per API key and per clinic: counted in Redis when REDIS_URL is set, on the
 * session tier's connection (its fail-fast options suit a per-request call, and one more script
 * call on it needs no connection of its own), else in process.
 */
function openRateLimiter(config: Config, logger: Logger, metrics: AppMetrics, redis: RedisSessionStore['client'] | undefined): RateLimiter {
  // Shared counters are leased to a busy key several tokens at a time (rate-leases.ts): one Redis
  // round trip per lease instead of one per request; in process there is no round trip to save.
  const store = redis === undefined ? new MemoryRateCounterStore() : new LeasedRateCounterStore(new RedisRateCounterStore(redis, config.redisKeyPrefix));
  return new RateLimiter(store, {
    keyLimit: config.rateLimits.keyPerMinute,
    clinicLimit: config.rateLimits.clinicPerMinute,
    onUnavailable: (err) => logger.warn({ err: { message: (err as Error).message } }, 'rate-limit counters unreachable (Redis); admitting requests unchecked until it answers'),
    onRecovered: () => logger.info('rate-limit counters reachable again; budgets enforced'),
    onUnchecked: () => metrics.rateLimitUnchecked(),
    onRefused: (policy) => metrics.rateLimited(policy),
  });
}

export interface RuntimeOptions {
  /** Where EMF lines go with METRICS_SINK=emf (one document per call); stdout by default. */
  emfWrite?: (line: string) => void;
  /**
   * Replace the runtime that runs the registry's image models (default: ONNX in process, or the
   * KServe v2 server at MODEL_SERVER_URL) and the image preprocessor (default: the sharp decoder),
   * e.g. with test doubles. The runtime is closed with the app.
   */
  modelRuntime?: ModelRuntime;
  imagePreprocessor?: ImagePreprocessor;
}

/** Builds the whole service on an open executor: migrations, bootstrap, services, HTTP. */
export async function buildRuntime(config: Config, db: SqlExecutor, logger: Logger, opts: RuntimeOptions = {}): Promise<Runtime> {
  const kb = loadKnowledgeBase(config.knowledgeDir);
  const result = await migrate(db);
  if (result.applied.length > 0) logger.info({ applied: result.applied.map((m) => m.version) }, 'database migrated');
  const metrics = new Registry();
  const group = db.group;
  const observed = createMetrics(metrics, {
    poolStats: db instanceof PostgresExecutor ? () => db.stats() : undefined,
    queueStats: group === undefined ? undefined : () => ({ depth: group.depth, inFlight: group.inFlight }),
  });
  group?.observe((size) => observed.groupCommitBatch(size));
  const store = new SqlClinicalStore(db, writerName(), (hit) => observed.cache.cacheLookup('record_read', hit));
  const checkpointer = openCheckpointer(config, store, logger, observed);
  const ops = new Operations(store);
  const blobs = openBlobStore(config);
  const revocations = openRevocationBus(config, logger);
  // A verified token is trusted in process no longer than a looked-up key (the same bound).
  const tokens = config.oidc === undefined ? undefined : new OidcVerifier(config.oidc, store, { ttlMs: config.keyCacheTtlMs, metrics: observed.cache });
  const access = new AccessService(store, ops, { keyCacheTtlMs: config.keyCacheTtlMs, metrics: observed.cache, revocations: revocations.bus, tokens });
  const sessions = openSessions(config, logger, metrics);
  const rateLimiter = openRateLimiter(config, logger, observed, sessions.redis);
  const llm = config.llm === undefined ? null : new OpenAiCompatibleClient(config.llm.baseUrl, config.llm.model, config.llm.apiKey);
  const agents = new AgentRegistry(kb, llm, { default: config.agentBudgetMs, narrative: config.llm?.timeoutMs ?? config.agentBudgetMs }, agentStepSpans).warm();
  const modelChanges = openModelChangeBus(config, logger);
  const serving = new ServingModels(new SqlModelCatalog(db), config.modelCacheTtlMs, modelChanges.bus);
  const models = new ModelRegistryService(ops, { findingCodes: new Set(kb.findings.keys()), bus: modelChanges.bus, onChange: () => serving.invalidate(), adminClinics: config.modelAdminClinics });
  // The registry's models run in process (ONNX) or on a model server (MODEL_SERVER_URL); images
  // are decoded and normalised by the same sharp decoder that checks them at upload.
  const modelRuntime = opts.modelRuntime ?? openModelRuntime(config);
  const imageDecoder = new SharpImageDecoder();
  // Prepared images are cached per clinic, image and input spec (image-tensor-cache.ts).
  const tensors = new ImageTensorCache({ maxBytes: config.imageTensorCacheBytes, metrics: observed.cache });
  const imaging = { serving, runtime: modelRuntime, preprocessor: opts.imagePreprocessor ?? imageDecoder, blobs, tensors, budgetMs: config.imagingBudgetMs };
  const diagnoses = new DiagnosesService(ops, agents, sessions.perRequest, config.sessionTtlSeconds, observed.diagnoses, new SessionMetaCache({ metrics: observed.cache }), imaging);
  const app = await buildHttpApp(
    {
      diagnoses,
      consultations: new ConsultationsService(ops, diagnoses, sessions.perRequest),
      sessionStoreKind: sessions.kind,
      metrics,
      metricsView: clusterRegistry(metrics),
      requestMetrics: observed.http,
      records: new RecordsService(ops),
      encounters: new EncountersService(ops),
      media: new MediaService(ops, blobs, imageDecoder),
      access,
      models,
      rateLimiter,
      ping: () => store.ping(),
      storageKind: store.kind,
    },
    {
      logger,
      bodyMaxBytes: config.bodyMaxBytes,
      mediaMaxBytes: config.mediaMaxBytes,
      requestTimeoutMs: config.httpRequestTimeoutMs,
      version: VERSION,
      maxEventLoopDelayMs: config.maxEventLoopDelayMs,
      onOverload: (reason) => observed.overloaded(reason),
      corsOrigins: config.corsOrigins,
    },
  );
  const emf =
    config.metricsSink === 'emf'
      ? new EmfSink(metrics, { intervalSeconds: config.metricsEmfIntervalSeconds, write: opts.emfWrite, onError: (err) => logger.warn({ err: { message: (err as Error).message } }, 'EMF metrics flush failed') }).start()
      : null;
  // Off (nothing registered) unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
  const tracing = startTracing({
    serviceName: config.otelServiceName,
    version: VERSION,
    endpoint: config.otelEndpoint,
    onDiagnostic: (detail) => logger.warn({ detail }, 'tracing: OpenTelemetry reported a problem (spans may be lost)'),
  });
  return {
    app,
    store,
    access,
    checkpointer,
    modelRuntime,
    close: async () => {
      await app.close();
      await app.drained(20_000);
      // After the drain, so the final checkpoint signs every event this process committed.
      await checkpointer?.stop();
      // After the drain, so the last period's requests are in the final EMF flush.
      await emf?.stop();
      await store.close();
      await sessions.close();
      // Last: every request's spans have ended and go in the final export, and a collector
      // that does not answer (bounded wait, never a throw) cannot hold storage open.
      await tracing.shutdown();
      await revocations.close();
      await modelChanges.close();
      await modelRuntime.close();
      blobs.close?.();
    },
  };
}

/** The checkpoint signing key from the configured variable; a ConfigError names it. */
export function signingKeyFrom(signingKey: { variable: string; text: string }): KeyObject {
  try {
    return parseSigningKey(signingKey.text);
  } catch (err) {
    throw new ConfigError(signingKey.variable, (err as Error).message);
  }
}

/**
 * Signed audit checkpoints with AGENTICPET_AUDIT_CHECKPOINT_URL: every interval and at shutdown,
 * the heads this process committed, under a writer id of its own (each cluster worker has its own).
 */
export function openCheckpointer(config: Config, store: SqlClinicalStore, logger: Logger, metrics?: Pick<AppMetrics, 'auditCheckpoint'>): Checkpointer | null {
  const c = config.auditCheckpoints;
  if (c === undefined) return null;
  if (c.signingKey === undefined) {
    throw new ConfigError('AGENTICPET_AUDIT_SIGNING_KEY', 'or AGENTICPET_AUDIT_SIGNING_KEY_FILE must be set when AGENTICPET_AUDIT_CHECKPOINT_URL is (the key that signs the checkpoints)');
  }
  const checkpointStore = openCheckpointStore(c.url, { s3Endpoint: c.s3Endpoint, requestTimeoutMs: c.requestTimeoutMs });
  const checkpointer = new Checkpointer({
    store: checkpointStore,
    signingKey: signingKeyFrom(c.signingKey),
    heads: () => store.auditHeads(),
    onAnchored: (heads) => store.auditAnchored(heads),
    intervalSeconds: c.intervalSeconds,
    onWritten: (name) => {
      metrics?.auditCheckpoint('written');
      logger.debug({ checkpoint: name }, 'audit checkpoint written');
    },
    onError: (err, name) => {
      metrics?.auditCheckpoint('failed');
      logger.warn({ checkpoint: name, store: checkpointStore.url, err: { message: (err as Error).message } }, 'audit checkpoint not written; retrying at the next interval');
    },
  });
  logger.info({ store: checkpointStore.url, writer: checkpointer.writer, intervalSeconds: c.intervalSeconds }, 'signing audit checkpoints');
  return checkpointer.start();
}

/** Media bytes: S3 with AGENTICPET_MEDIA_BUCKET (shared by every task), else files under the data dir. */
function openBlobStore(config: Config): BlobStore {
  const m = config.mediaStore;
  if (m.kind === 'fs') return new FsBlobStore(path.join(config.dataDir, 'blobs'));
  return new S3BlobStore({ bucket: m.bucket, kmsKeyId: m.kmsKeyId, endpoint: m.endpoint, requestTimeoutMs: m.requestTimeoutMs });
}

/** Key revocations reach the other workers of this host (IPC) and, with Redis, other hosts. */
function openRevocationBus(config: Config, logger: Logger): { bus: RevocationBus; close(): Promise<void> } {
  const cluster = new ClusterRevocationBus();
  if (config.redisUrl === undefined) return { bus: cluster, close: async () => undefined };
  const redis = new RedisRevocationBus(config.redisUrl, config.redisKeyPrefix, (err) => logger.debug({ err: { message: err.message } }, 'redis (key revocations) connection error'));
  return { bus: allBuses([cluster, redis]), close: () => redis.close() };
}

/** Model-registry changes reach the other workers (IPC) and, with Redis, other hosts. */
function openModelChangeBus(config: Config, logger: Logger): { bus: ModelChangeBus; close(): Promise<void> } {
  const cluster = new ClusterModelChangeBus();
  if (config.redisUrl === undefined) return { bus: cluster, close: async () => undefined };
  const redis = new RedisModelChangeBus(config.redisUrl, config.redisKeyPrefix, (err) => logger.debug({ err: { message: err.message } }, 'redis (model registry changes) connection error'));
  return { bus: allModelBuses([cluster, redis]), close: () => redis.close() };
}

/**
 * First start: creates "Default clinic" with an admin key when no clinic exists. A generated
 * key goes to <data dir>/bootstrap-key (mode 0600); the log names the file, never the key.
 */
export async function bootstrap(config: Config, access: AccessService, logger: Logger): Promise<void> {
  const created = await access.bootstrap(config.bootstrapKey);
  if (created === null) return;
  if (config.bootstrapKey !== undefined) {
    logger.info({ clinicId: created.clinicId }, 'created "Default clinic" with the admin key from AGENTICPET_BOOTSTRAP_KEY');
    return;
  }
  fs.mkdirSync(config.dataDir, { recursive: true });
  const file = path.join(config.dataDir, 'bootstrap-key');
  fs.writeFileSync(file, `${created.key}\n`, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  logger.info({ clinicId: created.clinicId, keyFile: file }, 'created "Default clinic"; its admin API key is in the key file');
}
