/**
 * Database housekeeping for the seed: create or drop the database, apply the service's own
 * migrations, set foreign keys aside during the bulk load and put them back exactly (same name,
 * same definition, validated against every row), and report sizes.
 */
import os from 'node:os';
import pg from 'pg';
import { PostgresExecutor } from '../../src/storage/sql/postgres.js';
import { migrate } from '../../src/storage/sql/migrate.js';

export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/**
 * node-postgres takes the user from the URL, else PGUSER, else USER; libpq (psql) falls back to
 * the OS user. A URL without a user (and no USER in the environment) gets the OS user here.
 */
export function withDefaultUser(url: string): string {
  const u = new URL(url);
  if (u.username !== '' || process.env.PGUSER || process.env.USER) return url;
  u.username = os.userInfo().username;
  return u.toString();
}

export function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (name === '') throw new Error('--database-url must name a database');
  return name;
}

/** The same server and credentials, database `postgres`. */
export function maintenanceUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/postgres';
  return u.toString();
}

export async function prepareDatabase(url: string, drop: boolean): Promise<{ created: boolean }> {
  const name = databaseName(url);
  const admin = new pg.Client({ connectionString: maintenanceUrl(url) });
  await admin.connect();
  try {
    if (drop) await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) {
      await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
      return { created: true };
    }
    return { created: false };
  } finally {
    await admin.end();
  }
}

export async function dropDatabase(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: maintenanceUrl(url) });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(databaseName(url))}`);
  } finally {
    await admin.end();
  }
}

/** The service's migrations, through its own executor: the schema is exactly the service's. */
export async function migrateDatabase(url: string): Promise<number[]> {
  const db = new PostgresExecutor({ connectionString: url, poolMax: 1 });
  try {
    const result = await migrate(db);
    return result.applied.map((m) => m.version);
  } finally {
    await db.close();
  }
}

export interface ForeignKey {
  table: string;
  name: string;
  definition: string;
}

export async function foreignKeys(client: pg.Client): Promise<ForeignKey[]> {
  const { rows } = await client.query<ForeignKey>(
    `SELECT c.conrelid::regclass::text AS table, c.conname AS name, pg_get_constraintdef(c.oid) AS definition
     FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
     WHERE c.contype = 'f' AND n.nspname = 'public' ORDER BY 1, 2`,
  );
  return rows;
}

export async function dropForeignKeys(client: pg.Client, fks: ForeignKey[]): Promise<void> {
  await client.query('BEGIN');
  for (const fk of fks) await client.query(`ALTER TABLE ${fk.table} DROP CONSTRAINT ${quoteIdent(fk.name)}`);
  await client.query('COMMIT');
}

/** Re-adds each foreign key as it was; ADD CONSTRAINT checks every existing row. */
export async function restoreForeignKeys(client: pg.Client, fks: ForeignKey[], log: (s: string) => void): Promise<void> {
  await client.query("SET work_mem = '256MB'");
  await client.query("SET maintenance_work_mem = '512MB'");
  for (const fk of fks) {
    const t0 = performance.now();
    await client.query(`ALTER TABLE ${fk.table} ADD CONSTRAINT ${quoteIdent(fk.name)} ${fk.definition}`);
    log(`  ${fk.table}.${fk.name} restored and validated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const now = await foreignKeys(client);
  const key = (f: ForeignKey) => `${f.table}|${f.name}|${f.definition}`;
  const missing = fks.filter((f) => !now.some((n) => key(n) === key(f)));
  if (missing.length > 0 || now.length !== fks.length) throw new Error(`foreign keys differ after restore: ${missing.map(key).join('; ')}`);
}

export const SEEDED_TABLES = [
  'clinics',
  'api_keys',
  'owners',
  'patients',
  'patient_weights',
  'encounters',
  'observations',
  'media',
  'record_versions',
  'idempotency_keys',
  'audit_chains',
  'audit_events',
  'diagnoses',
  'diagnosis_evidence',
  'diagnosis_provenance',
] as const;

export interface TableSize {
  rows: number;
  tableBytes: number;
  indexBytes: number;
  toastBytes: number;
  totalBytes: number;
}

export async function tableSizes(client: pg.Client, exactRows: boolean): Promise<Record<string, TableSize>> {
  const out: Record<string, TableSize> = {};
  for (const t of SEEDED_TABLES) {
    const [s] = (
      await client.query<{ heap: string; idx: string; total: string; toast: string; est: string }>(
        `SELECT pg_relation_size($1::regclass) AS heap, pg_indexes_size($1::regclass) AS idx, pg_total_relation_size($1::regclass) AS total,
                COALESCE((SELECT pg_total_relation_size(reltoastrelid) FROM pg_class WHERE oid = $1::regclass AND reltoastrelid <> 0), 0) AS toast,
                (SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass) AS est`,
        [t],
      )
    ).rows;
    const rows = exactRows ? Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`)).rows[0]!.n) : Math.max(0, Number(s!.est));
    out[t] = { rows, tableBytes: Number(s!.heap), indexBytes: Number(s!.idx), toastBytes: Number(s!.toast), totalBytes: Number(s!.total) };
  }
  return out;
}

export async function databaseSize(client: pg.Client): Promise<number> {
  return Number((await client.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n')).rows[0]!.n);
}

export const gib = (bytes: number): string => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
