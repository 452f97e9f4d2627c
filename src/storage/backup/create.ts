/**
 * Taking a backup: every table read in one REPEATABLE READ, READ ONLY transaction, so all of it
 * is one consistent snapshot (as pg_dump takes) while the service keeps writing; PostgreSQL and
 * the embedded PGlite run the same SQL. Rows are fetched through a cursor and written in parts of
 * bounded size, each compressed off the event loop and stored while the next is read, so memory
 * stays at about two parts whatever the size of the database.
 */
import type { SqlExecutor, SqlTx } from '../sql/executor.js';
import { BackupError, FORMAT, FORMAT_VERSION, keyFingerprint, manifestText, newBackupId, sealPart, sha256, type Manifest, type PartEntry, type TableEntry } from './format.js';
import { assertSeesEveryClinic, dataTables, ident, schemaVersion, sequences } from './schema.js';
import type { BackupTarget } from './targets.js';

export interface CreateOptions {
  /** AES-256-GCM key; unset: parts are only compressed. */
  key?: Buffer;
  agenticpetVersion: string;
  /** Uncompressed bytes of rows per part (default 8 MiB). */
  partBytes?: number;
  /** Rows per FETCH (default 1000). */
  fetchRows?: number;
  now?: () => Date;
  /** Told the process id of the PostgreSQL server process that reads the snapshot (to lower its priority). */
  onServerPid?: (pid: number) => void;
}

const CURSOR = 'agenticpet_backup_rows';

/** Stores parts one behind the reading: at most one part is being compressed and written meanwhile. */
class PartWriter {
  private inFlight: Promise<void> = Promise.resolve();
  private failure: unknown = null;

  constructor(
    private readonly target: BackupTarget,
    private readonly id: string,
    private readonly key: Buffer | undefined,
  ) {}

  async write(name: string, text: string, rows: number, into: PartEntry[]): Promise<void> {
    await this.drain();
    this.inFlight = (async () => {
      const sealed = await sealPart(text, this.key, `${this.id}/${name}`);
      await this.target.put(this.id, name, sealed);
      into.push({ name, rows, bytes: sealed.length, sha256: sha256(sealed) });
    })().catch((err: unknown) => {
      this.failure ??= err;
    });
  }

  async drain(): Promise<void> {
    await this.inFlight;
    if (this.failure !== null) throw this.failure;
  }
}

async function dumpTable(tx: SqlTx, table: { name: string; orderBy: string }, writer: PartWriter, opts: { encrypted: boolean; partBytes: number; fetchRows: number }): Promise<TableEntry> {
  const entry: TableEntry = { name: table.name, rows: 0, parts: [] };
  await tx.exec(`DECLARE ${CURSOR} NO SCROLL CURSOR FOR SELECT row_to_json(t)::text AS j FROM ${ident(table.name)} t ORDER BY ${table.orderBy}`);
  let lines: string[] = [];
  let size = 0;
  let part = 0;
  const flush = async () => {
    part++;
    const name = `${table.name}.${String(part).padStart(5, '0')}.ndjson.gz${opts.encrypted ? '.enc' : ''}`;
    await writer.write(name, `${lines.join('\n')}\n`, lines.length, entry.parts);
    lines = [];
    size = 0;
  };
  for (;;) {
    const rows = await tx.query<{ j: string }>(`FETCH ${opts.fetchRows} FROM ${CURSOR}`);
    for (const r of rows) {
      lines.push(r.j);
      size += r.j.length + 1;
      entry.rows++;
    }
    if (size >= opts.partBytes) await flush();
    if (rows.length < opts.fetchRows) break;
  }
  if (lines.length > 0) await flush();
  await tx.exec(`CLOSE ${CURSOR}`);
  return entry;
}

/** Takes a backup of `db` into `target`; the manifest is written last, once every part is stored. */
export async function createBackup(db: SqlExecutor, target: BackupTarget, opts: CreateOptions): Promise<Manifest> {
  const now = opts.now ?? (() => new Date());
  const id = newBackupId(now());
  const writer = new PartWriter(target, id, opts.key);
  try {
    const manifest = await db.transaction(async (tx) => {
      // The first statement of the transaction, as SET TRANSACTION must be.
      await tx.exec('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      await assertSeesEveryClinic(tx, 'backup');
      const version = await schemaVersion(tx);
      if (version === null) throw new BackupError('the database has never been migrated: there is nothing to back up');
      const [server] = await tx.query<{ v: string }>('SELECT version() AS v');
      if (opts.onServerPid !== undefined && db.kind === 'postgres') {
        const [backend] = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        opts.onServerPid(backend!.pid);
      }
      const heads = await tx.query<{ chain_id: string; head_seq: string | number; head_hash: string }>('SELECT chain_id, head_seq, head_hash FROM audit_chains ORDER BY chain_id');
      const seqs = [];
      for (const name of await sequences(tx)) {
        const [s] = await tx.query<{ last_value: string; is_called: boolean }>(`SELECT last_value::text AS last_value, is_called FROM ${ident(name)}`);
        seqs.push({ name, lastValue: s!.last_value, isCalled: s!.is_called });
      }
      const tables: TableEntry[] = [];
      for (const table of await dataTables(tx)) {
        tables.push(await dumpTable(tx, table, writer, { encrypted: opts.key !== undefined, partBytes: opts.partBytes ?? 8 * 1024 * 1024, fetchRows: opts.fetchRows ?? 1000 }));
      }
      await writer.drain();
      for (const t of tables) t.parts.sort((a, b) => a.name.localeCompare(b.name));
      const m: Manifest = {
        format: FORMAT,
        formatVersion: FORMAT_VERSION,
        id,
        createdAt: now().toISOString(),
        agenticpetVersion: opts.agenticpetVersion,
        source: { kind: db.kind, serverVersion: server!.v },
        schemaVersion: version,
        encryption: opts.key === undefined ? null : { algorithm: 'AES-256-GCM', keyFingerprint: keyFingerprint(opts.key) },
        tables,
        auditChains: heads.map((h) => ({ chainId: h.chain_id, seq: Number(h.head_seq), hash: h.head_hash })),
        sequences: seqs,
      };
      return m;
    });
    await target.put(id, 'manifest.json', manifestText(manifest, opts.key));
    return manifest;
  } catch (err) {
    // No manifest was written, so nothing lists this as a backup; its parts go too.
    await writer.drain().catch(() => undefined);
    await target.remove(id).catch(() => undefined);
    throw err;
  }
}
