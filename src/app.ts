/**
 * Composition root: the only place (with cli.ts) that knows which adapters are in use.
 * DATABASE_URL set: PostgreSQL; unset: embedded PGlite under the data directory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { AccessService } from './clinical/access.js';
import { EncountersService } from './clinical/encounters.js';
import { MediaService } from './clinical/media.js';
import { Operations } from './clinical/operation.js';
import type { ClinicalStore } from './clinical/ports.js';
import { RecordsService } from './clinical/records.js';
import type { Config } from './config.js';
import { buildHttpApp, type App } from './http/server.js';
import { FsBlobStore } from './storage/blobs/fs.js';
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
      onPoolError: (err) => logger?.warn({ err: { message: err.message } }, 'idle PostgreSQL connection failed'),
    });
  }
  return PgliteExecutor.open({ dir: path.join(config.dataDir, 'pglite') });
}

export function writerName(): string {
  return `${os.hostname()}:${process.pid}`;
}

export interface Runtime {
  app: App;
  store: ClinicalStore;
  access: AccessService;
  close(): Promise<void>;
}

/** Builds the whole service on an open executor: migrations, bootstrap, services, HTTP. */
export async function buildRuntime(config: Config, db: SqlExecutor, logger: Logger): Promise<Runtime> {
  const result = await migrate(db);
  if (result.applied.length > 0) logger.info({ applied: result.applied.map((m) => m.version) }, 'database migrated');
  const store = new SqlClinicalStore(db, writerName());
  const ops = new Operations(store);
  const access = new AccessService(store, ops);
  const blobs = new FsBlobStore(path.join(config.dataDir, 'blobs'));
  const app = await buildHttpApp(
    {
      records: new RecordsService(ops),
      encounters: new EncountersService(ops),
      media: new MediaService(ops, blobs),
      access,
      ping: () => store.ping(),
      storageKind: store.kind,
    },
    { logger, bodyMaxBytes: config.bodyMaxBytes, mediaMaxBytes: config.mediaMaxBytes, version: VERSION },
  );
  return {
    app,
    store,
    access,
    close: async () => {
      await app.close();
      await app.drained(20_000);
      await store.close();
    },
  };
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
