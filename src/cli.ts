#!/usr/bin/env node
/** agenticpet serve | migrate | clinics create --name NAME | audit verify | audit public-key | backup ... */
import cluster from 'node:cluster';
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { bootstrap, buildRuntime, openExecutor, signingKeyFrom, VERSION, writerName } from './app.js';
import { AccessService, hashKey } from './clinical/access/access.js';
import { DomainError } from './clinical/errors.js';
import { ModelRegistryService } from './clinical/models/registry.js';
import { loadKnowledgeBase } from './knowledge/load.js';
import { modelsCommand, ModelsUsageError, MODELS_USAGE } from './models-cli.js';
import { RedisModelChangeBus } from './storage/redis/model-changes.js';
import { StoreLockedError } from './clinical/errors.js';
import { superviseWorkers } from './cluster.js';
import { buildModelServer } from './imaging/model-server.js';
import { Operations } from './clinical/operation.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './observability/logger.js';
import { listBackups, parseAge, pruneBackups } from './storage/backup/catalog.js';
import { createBackup } from './storage/backup/create.js';
import { BackupError } from './storage/backup/format.js';
import { restoreBackup, verifyBackup } from './storage/backup/restore.js';
import { openBackupTarget, type BackupTarget } from './storage/backup/targets.js';
import { keyFingerprint, parsePublicKeys, publicKeyPem, verifyCheckpoints } from './storage/checkpoints/checkpoint.js';
import { openCheckpointStore } from './storage/checkpoints/stores.js';
import { verifyAuditChains, type AnchoredHead } from './storage/sql/audit-chain.js';
import type { SqlExecutor } from './storage/sql/executor.js';
import { migrate } from './storage/sql/migrate.js';
import { PgliteExecutor } from './storage/sql/pglite.js';
import { PostgresExecutor } from './storage/sql/postgres.js';
import { SqlClinicalStore } from './storage/sql/store.js';

const USAGE = `AgenticPet ${VERSION}

Usage:
  agenticpet serve [--workers N]        run the HTTP API (npm start); N worker processes share the
                                        port (default: one per core with DATABASE_URL, 1 embedded)
  agenticpet model-server [--models DIR] [--port N] [--host H] [--threads N] [--timeout-ms N]
                                        serve every model under DIR (default MODELS_DIR) over the
                                        KServe v2 REST protocol (default 0.0.0.0:8080, 1 thread per
                                        run, 10 s budget); needs no database
  agenticpet migrate                    apply pending database migrations
  agenticpet clinics create --name NAME create a clinic and print its first admin API key (once)
  agenticpet audit verify [--checkpoints URL --public-key FILE]
                                        check the audit trail's hash chains, and with signed
                                        checkpoints (file://DIR or s3://bucket/prefix) that every
                                        chain reaches the heads they signed (FILE may hold several
                                        PEM public keys: the current one and those it replaced);
                                        exit 1 naming the first bad event or checkpoint
  agenticpet audit public-key           print the public key of AGENTICPET_AUDIT_SIGNING_KEY(_FILE)
  agenticpet backup create [--to URL] [--nice N]
                                        take a consistent, compressed backup of the database into
                                        file://DIR or s3://bucket/prefix (default
                                        AGENTICPET_BACKUP_URL); encrypted with AGENTICPET_BACKUP_KEY;
                                        runs at CPU niceness N (default 19, 0 = as started), and so
                                        does its database server process when that is on this host
  agenticpet models list|register|activate|canary|rollback|retire ...
                                        the image-model registry, as the admin key in
                                        AGENTICPET_API_KEY (agenticpet models help)
  agenticpet backup list [--from URL]   the backups there, oldest first
  agenticpet backup verify ID [--from URL]
                                        check every part of a backup (checksums, decryption, rows)
  agenticpet backup restore ID [--from URL] [--to-database URL]
                                        restore into an EMPTY database (postgres://... or file://DIR
                                        for an embedded one; default: the configured database),
                                        all or nothing, audit chains verified before it commits
  agenticpet backup prune [--from URL] [--keep N] [--older-than AGE]
                                        delete old backups: outside the newest N and/or older than
                                        AGE (30d, 12h); with both, only those that are both

Configuration comes from environment variables; see README.md.`;

class UsageError extends Error {}

/**
 * The registry as the admin key in AGENTICPET_API_KEY. A change reaches running instances through
 * Redis when REDIS_URL is set, else within AGENTICPET_MODEL_CACHE_TTL_MS (their cache's bound).
 */
async function models(config: Config, sub: string | undefined, args: string[]): Promise<number> {
  if (sub === undefined || sub === 'help') {
    console.log(MODELS_USAGE);
    return sub === undefined ? 2 : 0;
  }
  const key = process.env.AGENTICPET_API_KEY?.trim();
  if (key === undefined || key === '') throw new UsageError(`agenticpet models needs an admin API key in AGENTICPET_API_KEY\n${MODELS_USAGE}`);
  const bus = config.redisUrl === undefined ? undefined : new RedisModelChangeBus(config.redisUrl, config.redisKeyPrefix, () => undefined);
  try {
    return await withStore(config, async (_db, store) => {
      const principal = await store.findPrincipalByKeyHash(hashKey(key));
      if (principal === null) throw new UsageError('AGENTICPET_API_KEY is not a live API key of this database');
      const kb = loadKnowledgeBase(config.knowledgeDir);
      const service = new ModelRegistryService(new Operations(store), { findingCodes: new Set(kb.findings.keys()), bus, adminClinics: config.modelAdminClinics });
      const ctx = { principal, requestId: `cli-${process.pid}-${Date.now()}`, sourceIp: null };
      try {
        return await modelsCommand(service, ctx, sub, args);
      } catch (err) {
        if (err instanceof ModelsUsageError) throw new UsageError(err.message);
        if (err instanceof DomainError) {
          console.error(`agenticpet models ${sub}: ${err.message}`);
          return 1;
        }
        throw err;
      }
    });
  } finally {
    await bus?.close();
  }
}

async function withStore<T>(config: Config, fn: (db: SqlExecutor, store: SqlClinicalStore) => Promise<T>): Promise<T> {
  const db = await openExecutor(config);
  try {
    await migrate(db);
    return await fn(db, new SqlClinicalStore(db, writerName()));
  } finally {
    await db.close();
  }
}

/** --workers, else AGENTICPET_WORKERS, else one per core with PostgreSQL and one embedded. */
function workerCount(config: Config, args: string[]): number {
  const { values } = parseArgs({ args, options: { workers: { type: 'string' } }, strict: true });
  let workers = config.workers;
  if (values.workers !== undefined) {
    if (!/^\d+$/.test(values.workers) || Number(values.workers) < 1 || Number(values.workers) > 256) throw new UsageError('--workers takes a whole number from 1 to 256');
    workers = Number(values.workers);
  }
  if (config.databaseUrl === undefined) {
    if (workers !== undefined && workers > 1) {
      throw new UsageError(
        `The embedded database (PGlite) is owned by one process, so it serves with one worker; --workers ${workers} needs DATABASE_URL (PostgreSQL, which many processes share).`,
      );
    }
    return 1;
  }
  return workers ?? os.availableParallelism();
}

async function serve(config: Config, args: string[]): Promise<void> {
  const workers = workerCount(config, args);
  const logger = createLogger(config.logLevel);
  if (workers > 1 && cluster.isPrimary) {
    // Migrate and bootstrap once, before any worker starts.
    await withStore(config, (_db, store) => bootstrap(config, new AccessService(store, new Operations(store)), logger));
    superviseWorkers({ workers, logger });
    return;
  }
  const db = await openExecutor(config, logger);
  let runtime;
  try {
    runtime = await buildRuntime(config, db, logger);
    if (!cluster.isWorker) await bootstrap(config, runtime.access, logger);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  const rt = runtime;
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    closing = true;
    logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    const force = setTimeout(() => {
      logger.error('shutdown took longer than 25 s; exiting');
      process.exit(1);
    }, 25_000);
    force.unref();
    rt.close().then(
      async () => {
        // A cluster primary may have handed this worker a connection just before it learnt that
        // the server closed; that hand-off must still be answered ("not accepted"), so the
        // primary gives the connection to another worker instead of holding it forever.
        if (cluster.isWorker) await new Promise((resolve) => setTimeout(resolve, 1_000));
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  // A worker drains when the primary says so (SIGTERM); Ctrl-C reaches the whole process group,
  // and the primary coordinates that.
  if (cluster.isWorker) process.on('SIGINT', () => undefined);
  else process.once('SIGINT', () => shutdown('SIGINT'));
  await rt.app.listen({ port: config.port, host: config.host });
  logger.info({ storage: rt.store.kind, dataDir: config.dataDir, sessions: config.redisUrl === undefined ? 'in-process' : 'redis', worker: cluster.isWorker ? cluster.worker?.id : undefined }, 'AgenticPet is serving');
}

/** model-server: the models under --models behind KServe v2 (src/imaging/model-server.ts), until SIGTERM. */
async function modelServer(config: Config, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { models: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, threads: { type: 'string' }, 'timeout-ms': { type: 'string' } },
    strict: true,
  });
  const whole = (flag: string, raw: string | undefined, fallback: number, min: number, max: number) => {
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new UsageError(`--${flag} takes a whole number from ${min} to ${max}`);
    return Number(raw);
  };
  const port = whole('port', values.port, 8080, 0, 65535);
  const { app, models } = await buildModelServer({
    modelsDir: values.models ?? config.models.dir,
    intraOpThreads: whole('threads', values.threads, config.models.intraOpThreads, 1, 64),
    timeoutMs: whole('timeout-ms', values['timeout-ms'], 10_000, 1, 600_000),
    logger: { level: config.logLevel },
  });
  if (models.length === 0) app.log.warn({ modelsDir: values.models ?? config.models.dir }, 'no model found: /v2/health/ready answers 503');
  const stop = (signal: string) => {
    app.log.info({ signal }, 'model server stopping');
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  await app.listen({ port, host: values.host ?? '0.0.0.0' });
  app.log.info({ models: models.map((m) => `${m.name}@${m.version}`) }, 'model server is serving');
}

/** audit verify [--checkpoints URL --public-key FILE] | audit public-key */
async function audit(config: Config, sub: string | undefined, args: string[]): Promise<number> {
  if (sub === 'public-key') {
    const key = config.auditCheckpoints?.signingKey;
    if (key === undefined) throw new UsageError('audit public-key needs AGENTICPET_AUDIT_CHECKPOINT_URL and AGENTICPET_AUDIT_SIGNING_KEY (or _FILE)');
    process.stdout.write(publicKeyPem(signingKeyFrom(key)));
    return 0;
  }
  if (sub !== 'verify') throw new UsageError('Usage: agenticpet audit verify [--checkpoints URL --public-key FILE] | agenticpet audit public-key');
  const { values } = parseArgs({ args, options: { checkpoints: { type: 'string' }, 'public-key': { type: 'string' } }, strict: true });
  const url = values.checkpoints ?? config.auditCheckpoints?.url;
  const keyFile = values['public-key'] ?? config.auditPublicKeyFile;
  if ((url === undefined) !== (keyFile === undefined)) {
    throw new UsageError('audit verify takes the checkpoints (--checkpoints URL or AGENTICPET_AUDIT_CHECKPOINT_URL) together with the public key that signed them (--public-key FILE or AGENTICPET_AUDIT_PUBLIC_KEY_FILE)');
  }
  let anchors: Map<string, AnchoredHead> | undefined;
  if (url !== undefined && keyFile !== undefined) {
    let publicKeys;
    try {
      publicKeys = parsePublicKeys(fs.readFileSync(keyFile, 'utf8'));
    } catch (err) {
      throw new UsageError(`--public-key ${keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let store;
    try {
      store = openCheckpointStore(url, { s3Endpoint: config.auditCheckpoints?.s3Endpoint ?? (config.mediaStore.kind === 's3' ? config.mediaStore.endpoint : undefined) });
    } catch (err) {
      throw new UsageError(`--checkpoints ${url} ${(err as Error).message}`);
    }
    const checked = verifyCheckpoints(await store.list().finally(() => store.close?.()), publicKeys);
    for (const w of checked.warnings) console.error(`warning: ${w}`);
    if (!checked.ok) {
      console.error(`Audit checkpoints BROKEN: ${checked.failure!.checkpoint} ${checked.failure!.reason}.`);
      return 1;
    }
    if (checked.checkpoints === 0) console.error(`warning: no checkpoints in ${url}: the chains are checked only against themselves`);
    anchors = checked.anchors;
    const byKey = publicKeys.length === 1 ? '' : ` (${publicKeys.map((k, i) => `key ${keyFingerprint(k)}: ${checked.signedBy[i]}`).join(', ')})`;
    console.log(`Checkpoints valid: ${checked.checkpoints} from ${checked.writers} writers${byKey}, anchoring ${anchors.size} chains.`);
  }
  const result = await withStore(config, (db) => verifyAuditChains(db, anchors));
  if (result.ok) {
    console.log(`Audit trail intact: ${result.events} events in ${result.chains} chains.`);
    if (anchors !== undefined) console.log(`${result.anchoredChains} chains match their signed checkpoint; ${result.unanchoredEvents} events are past the last checkpoint (not yet anchored).`);
    return 0;
  }
  const f = result.failure!;
  console.error(`Audit trail BROKEN at chain ${f.chainId}, seq ${f.seq}${f.eventId === null ? '' : `, event ${f.eventId}`}: ${f.reason}.`);
  console.error(`(${result.events} events before it verified.)`);
  return 1;
}

const BACKUP_USAGE = 'Usage: agenticpet backup create [--to URL] [--nice N] | list [--from URL] | verify ID [--from URL] | restore ID [--from URL] [--to-database URL] | prune [--from URL] [--keep N] [--older-than AGE]';

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** --to-database: a PostgreSQL URL, or file://DIR for an embedded database in DIR. */
async function openTargetDatabase(url: string): Promise<SqlExecutor> {
  if (/^postgres(ql)?:\/\//.test(url)) return new PostgresExecutor({ connectionString: url, poolMax: 2 });
  if (url.startsWith('file://') && url.length > 'file://'.length) return PgliteExecutor.open({ dir: url.slice('file://'.length), groupCommitMax: 1 });
  throw new UsageError('--to-database takes postgres://... (PostgreSQL) or file://DIR (an embedded database in DIR)');
}

/**
 * A backup yields the CPU to the service it runs beside: measured on the 2-core bench host
 * (docs/backup.md), a backup at normal priority beside 300 diagnoses/s took their p99 from
 * ~90 ms to seconds with thousands of timeouts.
 */
const BACKUP_NICE = 19;

/** Lowers this process's priority; returns the list the server's outcome is added to. */
function yieldCpu(nice: number): string[] {
  os.setPriority(Math.max(os.getPriority(), nice));
  return ['self'];
}

/**
 * Lowers the PostgreSQL server process that reads the snapshot, when the database is on this
 * host (a pid on another host names nothing here, or the wrong process): needs the right to
 * renice it (root, or the postgres user).
 */
function lowerServer(config: Config, pid: number, nice: number): string {
  const url = config.databaseUrl === undefined ? undefined : new URL(config.databaseUrl);
  const host = url?.hostname.replace(/^\[|\]$/g, '') ?? '';
  const socket = url?.searchParams.get('host') ?? '';
  const local = ['127.0.0.1', 'localhost', '::1'].includes(host) || socket.startsWith('/') || (host === '' && socket === '');
  if (!local) return 'the database server is on another host: its priority is its own';
  try {
    os.setPriority(pid, Math.max(os.getPriority(pid), nice));
    return `its database server process ${pid} too`;
  } catch (err) {
    return `its database server process ${pid} could not be lowered (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
}

async function backup(config: Config, sub: string | undefined, args: string[]): Promise<number> {
  if (sub === undefined || !['create', 'list', 'verify', 'restore', 'prune'].includes(sub)) throw new UsageError(BACKUP_USAGE);
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: sub === 'verify' || sub === 'restore',
      strict: true,
      options: { to: { type: 'string' }, nice: { type: 'string' }, from: { type: 'string' }, 'to-database': { type: 'string' }, keep: { type: 'string' }, 'older-than': { type: 'string' } },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${BACKUP_USAGE}`);
  }
  const { values, positionals } = parsed;
  const allowed: Record<string, string[]> = { create: ['to', 'nice'], list: ['from'], verify: ['from'], restore: ['from', 'to-database'], prune: ['from', 'keep', 'older-than'] };
  const stray = Object.keys(values).find((k) => !allowed[sub]!.includes(k));
  if (stray !== undefined) throw new UsageError(`backup ${sub} does not take --${stray}\n${BACKUP_USAGE}`);
  const url = (sub === 'create' ? values.to : values.from) ?? config.backup.url;
  if (url === undefined) throw new UsageError(`backup ${sub} needs ${sub === 'create' ? '--to' : '--from'} URL (file://DIR or s3://bucket/prefix) or AGENTICPET_BACKUP_URL`);
  const id = positionals[0];
  if ((sub === 'verify' || sub === 'restore') && (id === undefined || positionals.length > 1)) throw new UsageError(`backup ${sub} takes one backup id (see \`agenticpet backup list\`)`);
  const key = config.backup.key;
  let target: BackupTarget | undefined;
  try {
    target = openBackupTarget(url, { s3Endpoint: config.backup.s3Endpoint });
    switch (sub) {
      case 'create': {
        const nice = values.nice === undefined ? BACKUP_NICE : Number(values.nice);
        if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new UsageError(`--nice takes a whole number from 0 to 19, not ${values.nice}`);
        const lowered = nice === 0 ? [] : yieldCpu(nice);
        const started = performance.now();
        const db = await openExecutor(config);
        const m = await createBackup(db, target, { key, agenticpetVersion: VERSION, onServerPid: lowered.length === 0 ? undefined : (pid) => lowered.push(lowerServer(config, pid, nice)) }).finally(() => db.close());
        if (lowered.length > 0) console.error(`backup create: ran at niceness ${nice}; ${lowered.slice(1).join('') || 'the database server is not on this host: its priority is its own'}`);
        const parts = m.tables.flatMap((t) => t.parts);
        console.log(`Backup ${m.id} written to ${target.url}: ${m.tables.reduce((n, t) => n + t.rows, 0)} rows in ${m.tables.length} tables, ${parts.length} parts, ${mib(parts.reduce((n, p) => n + p.bytes, 0))}${m.encryption === null ? '' : `, encrypted (key ${m.encryption.keyFingerprint})`}, schema version ${m.schemaVersion}, ${m.auditChains.length} audit chains, in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
        return 0;
      }
      case 'list': {
        const all = await listBackups(target);
        if (all.length === 0) console.log(`No backups in ${target.url}.`);
        for (const b of all) {
          const m = b.manifest;
          if (m === null) console.log(`${b.id}  INCOMPLETE (${b.problem})`);
          else {
            const rows = m.tables.reduce((n, t) => n + t.rows, 0);
            const diagnoses = m.tables.find((t) => t.name === 'diagnoses')?.rows ?? 0;
            console.log(`${b.id}  ${m.createdAt}  ${m.source.kind}  schema ${m.schemaVersion}  ${rows} rows (${diagnoses} diagnoses)  ${mib(m.tables.flatMap((t) => t.parts).reduce((n, p) => n + p.bytes, 0))}${m.encryption === null ? '' : '  encrypted'}`);
          }
        }
        return 0;
      }
      case 'verify': {
        const r = await verifyBackup(target, id!, key);
        console.log(`Backup ${id} is intact: ${r.parts} parts, ${r.rows} rows, ${mib(r.bytes)}, every checksum matches${r.manifest.encryption === null ? '' : ' and every part decrypts'}.`);
        return 0;
      }
      case 'restore': {
        const started = performance.now();
        const db = values['to-database'] === undefined ? await openExecutor(config) : await openTargetDatabase(values['to-database']);
        const r = await restoreBackup(target, id!, db, key).finally(() => db.close());
        console.log(`Restored backup ${id}: ${r.rows} rows in ${r.manifest.tables.length} tables; counts match; audit trail intact (${r.auditEvents} events in ${r.manifest.auditChains.length} chains); schema version ${r.schemaVersion}; in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
        return 0;
      }
      case 'prune': {
        const keep = values.keep;
        if (keep !== undefined && !/^\d+$/.test(keep)) throw new UsageError('--keep takes a whole number');
        const r = await pruneBackups(target, { keep: keep === undefined ? undefined : Number(keep), olderThanMs: values['older-than'] === undefined ? undefined : parseAge(values['older-than']) });
        console.log(r.deleted.length === 0 ? `Nothing to delete; ${r.kept.length} backups kept.` : `Deleted ${r.deleted.join(', ')}; ${r.kept.length} backups kept.`);
        return 0;
      }
    }
    return 2;
  } catch (err) {
    if (err instanceof BackupError) {
      console.error(`backup ${sub}: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    target?.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, sub, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const config = loadConfig();
  switch (command) {
    case 'serve':
      await serve(config, [sub, ...rest].filter((a): a is string => a !== undefined));
      return -1; // keeps running
    case 'model-server':
      await modelServer(config, [sub, ...rest].filter((a): a is string => a !== undefined));
      return -1; // keeps running
    case 'migrate': {
      const db = await openExecutor(config);
      try {
        const result = await migrate(db);
        console.log(result.applied.length === 0 ? `Database is up to date (version ${result.current}).` : `Applied migrations ${result.applied.map((m) => `${m.version} (${m.name})`).join(', ')}; now at version ${result.current}.`);
      } finally {
        await db.close();
      }
      return 0;
    }
    case 'clinics': {
      if (sub !== 'create') throw new UsageError('Usage: agenticpet clinics create --name NAME');
      const { values } = parseArgs({ args: rest, options: { name: { type: 'string' } }, strict: true });
      const name = values.name?.trim();
      if (name === undefined || name === '' || name.length > 200) throw new UsageError('clinics create needs --name NAME (1 to 200 characters)');
      const created = await withStore(config, (_db, store) => new AccessService(store, new Operations(store)).createClinic(name));
      console.log(`Created clinic "${name}" (${created.clinicId}).`);
      console.log(`Its admin API key, shown this once (store it now):\n${created.key}`);
      return 0;
    }
    case 'audit':
      return audit(config, sub, rest);
    case 'backup':
      return backup(config, sub, rest);
    case 'models':
      return models(config, sub, rest);
    default:
      throw new UsageError(`Unknown command "${command}".\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof StoreLockedError || err instanceof UsageError) {
      console.error(err.message);
      process.exitCode = err instanceof UsageError ? 2 : 3;
      return;
    }
    console.error(err instanceof Error ? `agenticpet: ${err.message}` : err);
    process.exitCode = 1;
  },
);
