/**
 * nice -n 10 npx tsx bench/backup.ts [--diagnoses 10000] [--clinics 20] [--pg-url postgres://postgres@127.0.0.1:5432/postgres] [--keep-db] [--postgres-only]
 *
 * Time and size of `agenticpet backup` (src/storage/backup/) at a given volume: seeds a fresh
 * PostgreSQL database with bench/seed.ts (real diagnoses, their provenance and a valid audit
 * trail), then times, each on its own:
 *   1. backup create from PostgreSQL into a directory (and with AES-256-GCM),
 *   2. backup verify (every part read, decrypted, decompressed and counted),
 *   3. restore into a new PostgreSQL database and into a new embedded (PGlite) directory,
 *   4. backup create from that embedded database.
 * Every restore runs the checks it always runs (checksums first; counts and the audit chain walk
 * before commit). Prints a table and writes bench/results/backup-<timestamp>.json. The seeded and
 * restored databases and the backup directory are removed at the end (--keep-db keeps the seed).
 * --postgres-only runs steps 1 (gzip only) and 3 into PostgreSQL only, from the plain backup: what a
 * PostgreSQL deployment does, at volumes where the embedded steps would take hours.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createBackup } from '../src/storage/backup/create.js';
import type { Manifest } from '../src/storage/backup/format.js';
import { restoreBackup, verifyBackup } from '../src/storage/backup/restore.js';
import { FsBackupTarget } from '../src/storage/backup/targets.js';
import type { SqlExecutor } from '../src/storage/sql/executor.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    diagnoses: { type: 'string', default: '10000' },
    clinics: { type: 'string', default: '20' },
    'pg-url': { type: 'string', default: process.env.AGENTICPET_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    'keep-db': { type: 'boolean', default: false },
    'postgres-only': { type: 'boolean', default: false },
  },
});
const nDiagnoses = Number(args.diagnoses);
const nClinics = Number(args.clinics);
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const suffix = randomBytes(3).toString('hex');
const dbUrl = (name: string) => {
  const u = new URL(args['pg-url']!);
  u.pathname = `/${name}`;
  return u.toString();
};
const names = { seed: `agenticpet_bench_backup_${suffix}`, restored: `agenticpet_bench_restore_${suffix}`, restored2: `agenticpet_bench_restore2_${suffix}` };
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-bench-backup-'));
const mib = (b: number) => b / 1024 / 1024;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: args['pg-url'] });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function seed(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/seed.ts'), '--database-url', dbUrl(names.seed), '--clinics', String(nClinics), '--diagnoses', String(nDiagnoses), '--patients-per-clinic', '50', '--days', '60', '--no-vacuum'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`bench/seed.ts exited with ${code}`))));
  });
}

interface Timed<T> {
  value: T;
  seconds: number;
}
type Restored = Awaited<ReturnType<typeof restoreBackup>>;

async function timed<T>(label: string, fn: () => Promise<T>): Promise<Timed<T>> {
  const t = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t) / 1000;
  console.log(`${label}: ${seconds.toFixed(2)} s`);
  return { value, seconds };
}

const sizeOf = (m: Manifest) => m.tables.flatMap((t) => t.parts).reduce((n, p) => n + p.bytes, 0);
const rowsOf = (m: Manifest) => m.tables.reduce((n, t) => n + t.rows, 0);

const results: Record<string, unknown> = { diagnoses: nDiagnoses, clinics: nClinics, startedAt: new Date().toISOString(), cpus: os.availableParallelism(), loadAverageAtStart: os.loadavg(), node: process.version };
const opened: SqlExecutor[] = [];
try {
  await seed();
  const source = new PostgresExecutor({ connectionString: dbUrl(names.seed), poolMax: 2 });
  opened.push(source);
  const [size] = await source.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes');
  results.sourceDatabaseMiB = mib(Number(size!.bytes));
  const target = new FsBackupTarget(path.join(work, 'backups'));
  const key = randomBytes(32);

  const plain = await timed('backup create (PostgreSQL, gzip)', () => createBackup(source, target, { agenticpetVersion: 'bench' }));
  const pgOnly = args['postgres-only']!;
  const sealed = pgOnly ? null : await timed('backup create (PostgreSQL, gzip + AES-256-GCM)', () => createBackup(source, target, { agenticpetVersion: 'bench', key }));
  const verified = sealed === null ? null : await timed('backup verify (encrypted)', () => verifyBackup(target, sealed.value.id, key));
  await admin(`CREATE DATABASE ${names.restored}`);
  const intoPg = new PostgresExecutor({ connectionString: dbUrl(names.restored), poolMax: 2 });
  opened.push(intoPg);
  const restoredPg =
    sealed === null
      ? await timed('restore into PostgreSQL', () => restoreBackup(target, plain.value.id, intoPg, undefined))
      : await timed('restore into PostgreSQL (encrypted backup)', () => restoreBackup(target, sealed.value.id, intoPg, key));
  let embedded: { restoredPglite: Timed<Restored>; fromPglite: Timed<Manifest>; restoredPg2: Timed<Restored> } | null = null;
  if (!pgOnly) {
    const embeddedDir = path.join(work, 'pglite');
    const intoPglite = await PgliteExecutor.open({ dir: embeddedDir, groupCommitMax: 1 });
    opened.push(intoPglite);
    const restoredPglite = await timed('restore into embedded PGlite', () => restoreBackup(target, plain.value.id, intoPglite, undefined));
    const fromPglite = await timed('backup create (embedded PGlite, gzip)', () => createBackup(intoPglite, target, { agenticpetVersion: 'bench' }));
    await admin(`CREATE DATABASE ${names.restored2}`);
    const intoPg2 = new PostgresExecutor({ connectionString: dbUrl(names.restored2), poolMax: 2 });
    opened.push(intoPg2);
    const restoredPg2 = await timed('restore embedded backup into PostgreSQL', () => restoreBackup(target, fromPglite.value.id, intoPg2, undefined));
    embedded = { restoredPglite, fromPglite, restoredPg2 };
  }

  const diagnosesIn = (m: Manifest) => m.tables.find((t) => t.name === 'diagnoses')!.rows;
  results.rows = rowsOf(plain.value);
  results.auditEvents = restoredPg.value.auditEvents;
  results.steps = {
    createPostgres: { seconds: plain.seconds, backupMiB: mib(sizeOf(plain.value)), parts: plain.value.tables.flatMap((t) => t.parts).length },
    ...(sealed && verified ? { createPostgresEncrypted: { seconds: sealed.seconds, backupMiB: mib(sizeOf(sealed.value)) }, verifyEncrypted: { seconds: verified.seconds } } : {}),
    restoreIntoPostgres: { seconds: restoredPg.seconds, rows: restoredPg.value.rows, encrypted: sealed !== null },
    ...(embedded
      ? {
          restoreIntoPglite: { seconds: embedded.restoredPglite.seconds, rows: embedded.restoredPglite.value.rows },
          createPglite: { seconds: embedded.fromPglite.seconds, backupMiB: mib(sizeOf(embedded.fromPglite.value)) },
          restorePgliteBackupIntoPostgres: { seconds: embedded.restoredPg2.seconds, rows: embedded.restoredPg2.value.rows },
        }
      : {}),
  };
  console.log(`\n${nDiagnoses} diagnoses (${diagnosesIn(plain.value)} in the backup), ${results.rows} rows in all, ${restoredPg.value.auditEvents} audit events; source database ${(results.sourceDatabaseMiB as number).toFixed(1)} MiB`);
  console.log(`backup size: ${mib(sizeOf(plain.value)).toFixed(1)} MiB (gzip)${sealed ? `, ${mib(sizeOf(sealed.value)).toFixed(1)} MiB (gzip + AES-256-GCM)` : ''}${embedded ? `, ${mib(sizeOf(embedded.fromPglite.value)).toFixed(1)} MiB (from PGlite)` : ''}`);
  const file = path.join(root, 'bench/results', `backup-${stamp}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${path.relative(root, file)}`);
} finally {
  for (const db of opened.reverse()) await db.close().catch(() => undefined);
  for (const name of [names.restored, names.restored2, ...(args['keep-db'] ? [] : [names.seed])]) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
  fs.rmSync(work, { recursive: true, force: true });
  // bench/seed.ts leaves its summary and the clinics' keys beside the results; they name a database that is gone.
  if (!args['keep-db']) for (const f of [`seed-${names.seed}.json`, `seed-${names.seed}-keys.json`]) fs.rmSync(path.join(root, 'bench/results', f), { force: true });
}
