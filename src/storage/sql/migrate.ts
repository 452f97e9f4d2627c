import { createHash } from 'node:crypto';
import type { SqlExecutor } from './executor.js';
import records from './migrations/0001_records.js';
import diagnoses from './migrations/0002_diagnoses.js';
import appRoleMembership from './migrations/0003_app_role_membership.js';
import compactEvidence from './migrations/0004_compact_evidence.js';
import models from './migrations/0005_models.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Forward-only, in order. Never edit a migration that has shipped: add the next one. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'records', sql: records },
  { version: 2, name: 'diagnoses', sql: diagnoses },
  { version: 3, name: 'app role membership', sql: appRoleMembership },
  { version: 4, name: 'compact evidence', sql: compactEvidence },
  { version: 5, name: 'model registry', sql: models },
];

// Any fixed 64-bit number shared by every instance; it names the migration lock.
const MIGRATION_LOCK_KEY = 7_240_611_902_311;

function checksum(sql: string): string {
  return createHash('sha256').update(sql).digest('hex');
}

export interface MigrationResult {
  applied: Migration[];
  current: number;
}

/**
 * Applies pending migrations in one transaction under a transaction-scoped advisory lock, so
 * instances starting together apply each migration exactly once and the others wait, then see
 * it applied. A shipped migration whose text changed is refused.
 */
export async function migrate(db: Pick<SqlExecutor, 'transaction'>, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationResult> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = await tx.query<{ version: number; checksum: string }>('SELECT version, checksum FROM schema_migrations ORDER BY version');
    const doneByVersion = new Map(done.map((row) => [row.version, row.checksum]));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = done.filter((row) => !known.has(row.version));
    if (unknown.length > 0) {
      throw new Error(`The database has migration ${unknown[0]!.version}, which this build does not know: it was migrated by a newer AgenticPet`);
    }
    const applied: Migration[] = [];
    for (const migration of migrations) {
      const sum = checksum(migration.sql);
      const existing = doneByVersion.get(migration.version);
      if (existing !== undefined) {
        if (existing !== sum) throw new Error(`Migration ${migration.version} (${migration.name}) was changed after it was applied`);
        continue;
      }
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [migration.version, migration.name, sum]);
      applied.push(migration);
    }
    return { applied, current: migrations.at(-1)?.version ?? 0 };
  });
}
