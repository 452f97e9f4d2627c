/**
 * Checking and restoring a backup. A restore goes into an empty database only, checks the
 * SHA-256 of every part before it writes anything, then in ONE transaction applies the
 * migrations up to the backup's schema version, loads every table (PostgreSQL itself turns each
 * row's JSON back into its columns, json_populate_recordset, so values come back exactly),
 * checks the row counts and walks the audit chains to the heads the manifest recorded, and only
 * then migrates on to this build's version and commits. Any failure rolls all of it back: the
 * database is left as it was found.
 */
import { verifyAuditChains, type AnchoredHead } from '../sql/audit-chain.js';
import type { SqlExecutor, SqlTx } from '../sql/executor.js';
import { MIGRATIONS, migrate } from '../sql/migrate.js';
import { BackupError, openPart, parseManifest, sha256, type Manifest, type PartEntry } from './format.js';
import { assertSeesEveryClinic, dataTables, ident, schemaVersion } from './schema.js';
import type { BackupTarget } from './targets.js';

export async function readManifest(target: BackupTarget, id: string, key: Buffer | undefined): Promise<Manifest> {
  const text = (await target.get(id, 'manifest.json')).toString('utf8');
  return parseManifest(text, id, key);
}

async function fetchPart(target: BackupTarget, m: Manifest, part: PartEntry): Promise<Buffer> {
  const data = await target.get(m.id, part.name);
  if (data.length !== part.bytes || sha256(data) !== part.sha256) {
    throw new BackupError(`backup ${m.id}: part ${part.name} does not match its SHA-256 in the manifest (${data.length} bytes, expected ${part.bytes}): the backup is damaged or was altered`);
  }
  return data;
}

function rowsOf(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

export interface VerifyResult {
  parts: number;
  rows: number;
  bytes: number;
}

/**
 * Reads every part: its checksum, that it decrypts (GCM tag) and decompresses, and that it holds
 * the rows the manifest says, each a JSON object. Needs no database.
 */
export async function verifyBackup(target: BackupTarget, id: string, key: Buffer | undefined): Promise<VerifyResult & { manifest: Manifest }> {
  const m = await readManifest(target, id, key);
  const partKey = m.encryption === null ? undefined : key;
  const result = { parts: 0, rows: 0, bytes: 0 };
  for (const table of m.tables) {
    let rows = 0;
    for (const part of table.parts) {
      const lines = rowsOf(await openPart(await fetchPart(target, m, part), partKey, `${m.id}/${part.name}`));
      if (lines.length !== part.rows) throw new BackupError(`backup ${m.id}: part ${part.name} holds ${lines.length} rows, the manifest says ${part.rows}`);
      for (const line of lines) {
        if (!line.startsWith('{')) throw new BackupError(`backup ${m.id}: part ${part.name} holds a line that is not a row`);
        JSON.parse(line);
      }
      rows += lines.length;
      result.parts++;
      result.bytes += part.bytes;
    }
    if (rows !== table.rows) throw new BackupError(`backup ${m.id}: table ${table.name} has ${rows} rows in its parts, the manifest says ${table.rows}`);
    result.rows += rows;
  }
  return { ...result, manifest: m };
}

async function nonEmptyTable(db: Pick<SqlTx, 'query'>, tables: readonly string[]): Promise<string | null> {
  for (const name of tables) {
    const [exists] = await db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [ident(name)]);
    if (exists?.t == null) continue;
    const [row] = await db.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${ident(name)}) AS any`);
    if (row?.any === true) return name;
  }
  return null;
}

/** Runs migrations inside an open transaction (migrate() opens its own otherwise). */
function inTransaction(tx: SqlTx): Pick<SqlExecutor, 'transaction'> {
  return { transaction: <T>(fn: (t: SqlTx) => Promise<T>) => fn(tx) };
}

export interface RestoreResult {
  manifest: Manifest;
  rows: number;
  auditEvents: number;
  /** The schema version after the restore (this build's latest). */
  schemaVersion: number;
}

/** Rows per INSERT at most, and bytes of JSON: one statement's parameter stays a few MiB. */
const BATCH_ROWS = 2000;
const BATCH_BYTES = 4 * 1024 * 1024;

async function insertRows(tx: SqlTx, table: string, lines: readonly string[]): Promise<void> {
  const t = ident(table);
  let start = 0;
  while (start < lines.length) {
    let end = start;
    let size = 0;
    while (end < lines.length && end - start < BATCH_ROWS && (end === start || size + lines[end]!.length < BATCH_BYTES)) size += lines[end++]!.length + 1;
    await tx.query(`INSERT INTO ${t} SELECT * FROM json_populate_recordset(NULL::${t}, $1::json)`, [`[${lines.slice(start, end).join(',')}]`]);
    start = end;
  }
}

export async function restoreBackup(target: BackupTarget, id: string, db: SqlExecutor, key: Buffer | undefined): Promise<RestoreResult> {
  const m = await readManifest(target, id, key);
  const partKey = m.encryption === null ? undefined : key;
  const latest = MIGRATIONS.at(-1)!.version;
  if (m.schemaVersion > latest) throw new BackupError(`backup ${id} has schema version ${m.schemaVersion}; this build knows up to ${latest}: restore it with a newer AgenticPet`);

  // Before anything is written: every part is there and intact.
  for (const table of m.tables) for (const part of table.parts) await fetchPart(target, m, part);

  const tableNames = m.tables.map((t) => t.name);
  const refuseIfNotEmpty = async (q: Pick<SqlTx, 'query'>) => {
    await assertSeesEveryClinic(q, 'restore');
    const version = await schemaVersion(q);
    if (version !== null && version > m.schemaVersion) {
      throw new BackupError(`the target database is at schema version ${version}, newer than the backup's ${m.schemaVersion}: restore into a new, empty database`);
    }
    const full = await nonEmptyTable(q, tableNames);
    if (full !== null) throw new BackupError(`the target database is not empty (table ${full} has rows): restore goes into an empty database only, so nothing is overwritten or mixed`);
  };
  await refuseIfNotEmpty(db);

  return db.transaction(async (tx) => {
    // Again inside the transaction, in case something wrote meanwhile.
    await refuseIfNotEmpty(tx);
    await migrate(inTransaction(tx), MIGRATIONS.filter((mig) => mig.version <= m.schemaVersion));
    const targetTables = new Set((await dataTables(tx)).map((t) => t.name));
    const missing = tableNames.filter((n) => !targetTables.has(n));
    if (missing.length > 0) throw new BackupError(`the backup has table ${missing[0]} which schema version ${m.schemaVersion} of this build does not create`);
    let rows = 0;
    for (const table of m.tables) {
      for (const part of table.parts) {
        // Read again (a part could have changed since the first check) and opened whole, so a
        // failed GCM tag stops the restore before a row of this part is written.
        const lines = rowsOf(await openPart(await fetchPart(target, m, part), partKey, `${m.id}/${part.name}`));
        if (lines.length !== part.rows) throw new BackupError(`backup ${id}: part ${part.name} holds ${lines.length} rows, the manifest says ${part.rows}`);
        await insertRows(tx, table.name, lines);
        rows += lines.length;
      }
      const [count] = await tx.query<{ n: string | number }>(`SELECT count(*) AS n FROM ${ident(table.name)}`);
      if (Number(count!.n) !== table.rows) throw new BackupError(`restore of backup ${id}: table ${table.name} has ${count!.n} rows after loading, the manifest says ${table.rows}`);
    }
    for (const s of m.sequences) {
      await tx.query('SELECT setval($1::regclass, $2::bigint, $3)', [ident(s.name), s.lastValue, s.isCalled]);
    }
    const anchors = new Map<string, AnchoredHead>(m.auditChains.map((h) => [h.chainId, { seq: h.seq, hash: h.hash, checkpoint: `backup ${id}'s manifest` }]));
    const audit = await verifyAuditChains(tx, anchors);
    if (!audit.ok) {
      const f = audit.failure!;
      throw new BackupError(`restore of backup ${id}: the audit trail does not verify at chain ${f.chainId}, seq ${f.seq}${f.eventId === null ? '' : `, event ${f.eventId}`}: ${f.reason}`);
    }
    if (audit.chains !== m.auditChains.length) throw new BackupError(`restore of backup ${id}: ${audit.chains} audit chains after loading, the manifest recorded ${m.auditChains.length}`);
    const migrated = await migrate(inTransaction(tx));
    return { manifest: m, rows, auditEvents: audit.events, schemaVersion: migrated.current };
  });
}
