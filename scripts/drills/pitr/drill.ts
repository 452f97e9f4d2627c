/**
 * The point-in-time recovery drill (issue 11 §2): a cluster of its own with WAL archived by
 * pgBackRest, a full base backup, the service writing set A, a noted time, set B, then a
 * restore to that time into a fresh data directory that must hold exactly set A.
 *
 * Set B is archived too before the restore, on purpose: recovery then has WAL past the target
 * and must stop at it. Were B's WAL missing, "none of B" would prove nothing.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { findPgBinDir, freePorts, LocalCluster, postgresOwnedDir, runAsPostgres } from './cluster.js';
import { PgBackRest, type BackupInfo } from './pgbackrest.js';
import { cliArgs, cliEnv, loadVignetteBodies, startService, writeDiagnoses, type CliEntry } from './service.js';
import { compareRecords, recordsOf } from './records.js';

export interface PitrOptions {
  root: string;
  entry: CliEntry;
  setA: number;
  setB: number;
  /** archive_timeout: the longest a committed transaction waits before its WAL segment is archived. */
  archiveTimeoutS: number;
  ports: [number, number];
  timeoutMs: number;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface PitrResult {
  pgVersion: string;
  pgbackrestVersion: string;
  backup: BackupInfo & { ms: number };
  target: string;
  rpo: { archiveTimeoutS: number; lagMs: number; walFile: string };
  /** archivedFirst: the first file the promoted cluster archived (its new timeline's history). */
  restore: { restoreMs: number; startMs: number; promoteMs: number; totalMs: number; stopLine: string | undefined; archivedFirst: string };
  archiveBytes: number;
  /** evidenceRows: evidence links of set A found in the restored database, each matched against the original. */
  setA: { written: number; found: number; missing: string[]; incomplete: string[]; evidenceRows: number };
  setB: { written: number; found: string[]; partial: string[] };
  otherDiagnoses: number;
  audit: { ok: boolean; output: string };
  totalMs: number;
  /** The temp dir the drill worked in (removed when it returns). */
  workDir: string;
  ok: boolean;
}

const DATABASE = 'agenticpet';

/** Undo steps, run newest first; each is idempotent so a late second unwind is harmless. */
class Cleanup {
  aborted = false;
  private readonly steps: Array<{ name: string; fn: () => Promise<unknown> }> = [];

  add(name: string, fn: () => Promise<unknown>): void {
    this.steps.push({ name, fn });
    this.check();
  }

  check(): void {
    if (this.aborted) throw new Error('drill aborted');
  }

  async unwind(log: (line: string) => void): Promise<void> {
    for (const step of [...this.steps].reverse()) await step.fn().catch((err: unknown) => log(`cleanup (${step.name}): ${(err as Error).message.split('\n')[0]}`));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until pg_stat_archiver has archived `walFile` (or a later segment); returns the archive time's lag after `since`. */
async function waitArchived(cluster: LocalCluster, walFile: string, since: string, timeoutMs: number, cleanup: Cleanup): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    cleanup.check();
    const [row] = await cluster.query<{ wal: string | null; lag_ms: number | null; failed: string; last_failed: string | null }>(
      `SELECT last_archived_wal AS wal, EXTRACT(EPOCH FROM last_archived_time - $1::timestamptz) * 1000 AS lag_ms,
              failed_count::text AS failed, last_failed_wal AS last_failed FROM pg_stat_archiver`,
      [since],
    );
    // Names of .backup and .history files start with a segment name too; the first 24 characters order them.
    if (row?.wal != null && row.wal.slice(0, 24) >= walFile) return Number(row.lag_ms);
    if (Date.now() > deadline) throw new Error(`WAL ${walFile} not archived after ${timeoutMs / 1000} s (last archived ${row?.wal}, ${row?.failed} failures, last failed ${row?.last_failed})`);
    await sleep(100);
  }
}

function runCli(opts: PitrOptions, args: string[], databaseUrl: string, dataDir: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliArgs(opts.root, opts.entry), ...args], { cwd: opts.root, env: cliEnv(databaseUrl, { AGENTICPET_DATA_DIR: dataDir }) });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: output.trim() });
    });
  });
}

async function drill(opts: PitrOptions, cleanup: Cleanup): Promise<PitrResult> {
  const started = performance.now();
  const log = opts.log;
  const binDir = findPgBinDir();
  if (binDir === undefined) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/<version>/bin');
  const pgVersion = path.basename(path.dirname(binDir));
  const pgbackrestVersion = (await runAsPostgres('pgbackrest', ['version'], { cwd: os.tmpdir(), timeoutMs: 10_000 })).stdout.trim();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-pitr-'));
  cleanup.add('temp dir', async () => fs.rmSync(work, { recursive: true, force: true }));
  postgresOwnedDir(work);
  const socketDir = path.join(work, 'sock');
  postgresOwnedDir(socketDir);
  const [pgPort, restoredPort, servicePort] = await freePorts(opts.ports[0], opts.ports[1], 3);

  const primary = new LocalCluster(binDir, path.join(work, 'pgdata'), pgPort!, socketDir, work);
  cleanup.add('primary cluster', () => primary.stop('immediate'));
  const backrest = new PgBackRest(work, primary);
  log(`PostgreSQL ${pgVersion} at 127.0.0.1:${pgPort}, work dir ${work}`);
  await primary.initdb();
  backrest.configure();
  primary.appendConf({
    listen_addresses: '127.0.0.1',
    port: pgPort!,
    unix_socket_directories: socketDir,
    wal_level: 'replica',
    archive_mode: 'on',
    archive_command: backrest.archiveCommand(),
    archive_timeout: opts.archiveTimeoutS,
    max_wal_senders: 3,
    shared_buffers: '64MB',
    log_line_prefix: '%m [%p] ',
  });
  await primary.start();
  // No separate `pgbackrest check`: the backup below fails unless its own WAL reaches the repository.
  await backrest.stanzaCreate();
  await primary.query(`CREATE DATABASE ${DATABASE}`);

  log('full base backup...');
  const backupStarted = performance.now();
  await backrest.backupFull();
  const backup = { ...(await backrest.latestBackup()), ms: performance.now() - backupStarted };
  log(`backup ${backup.label}: ${(backup.ms / 1000).toFixed(2)} s`);
  cleanup.check();

  // The schema is created after the backup, by the service's own migrations: replaying them is part of the restore.
  const service = await startService({ root: opts.root, entry: opts.entry, databaseUrl: primary.urlFor(DATABASE), port: servicePort!, dataDir: path.join(work, 'service') });
  cleanup.add('service', () => service.stop());
  const bodies = loadVignetteBodies(opts.root);

  const setA = await writeDiagnoses(service, bodies, opts.setA);
  log(`set A: ${setA.length} diagnoses acknowledged`);
  // The target is the server's clock (commit timestamps are), read after every A was acknowledged and before any B is sent.
  const [mark] = await primary.query<{ ts: string; wal: string }>(`SELECT clock_timestamp()::text AS ts, pg_walfile_name(pg_current_wal_lsn()) AS wal`);
  const target = mark!.ts;
  // No pg_switch_wal here: the lag measured is the one archive_timeout allows, i.e. this set-up's RPO.
  const lagMs = await waitArchived(primary, mark!.wal, target, opts.archiveTimeoutS * 3_000 + 30_000, cleanup);
  log(`target ${target}; its WAL ${mark!.wal} archived ${(lagMs / 1000).toFixed(2)} s later`);

  const setB = await writeDiagnoses(service, bodies, opts.setB);
  log(`set B: ${setB.length} diagnoses acknowledged`);
  cleanup.check();
  const original = await recordsOf(primary.urlFor(DATABASE), [...setA, ...setB]);
  const notWritten = [...setA, ...setB].filter((id) => !original.has(id));
  if (notWritten.length > 0) throw new Error(`acknowledged but not in the original database: ${notWritten.slice(0, 5).join(', ')}`);
  await service.stop();

  // Push the tail (set B) so recovery has WAL beyond the target, then lose the primary.
  const [sw] = await primary.query<{ wal: string }>(`SELECT pg_walfile_name(pg_switch_wal()) AS wal`);
  await waitArchived(primary, sw!.wal, target, 60_000, cleanup);
  await primary.stop('fast');
  const archiveBytes = backrest.archiveBytes();

  log(`restore to ${target} into a fresh data dir...`);
  const restored = new LocalCluster(binDir, path.join(work, 'restored'), restoredPort!, socketDir, work);
  cleanup.add('restored cluster', () => restored.stop('immediate'));
  const restoreStarted = performance.now();
  await backrest.restoreToTime(restored.dataDir, target);
  const restoreMs = performance.now() - restoreStarted;
  cleanup.check();
  // The promoted cluster archives its new timeline into the same stanza, from its own directory.
  restored.appendConf({ archive_command: backrest.archiveCommand(restored.dataDir) });
  await restored.start();
  const startMs = performance.now() - restoreStarted - restoreMs;
  // pg_ctl returns once hot standby accepts connections; recovery to the target and the promotion may still be running.
  const promoteDeadline = Date.now() + 120_000;
  while ((await restored.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]!.r) {
    cleanup.check();
    if (Date.now() > promoteDeadline) throw new Error('restored cluster still in recovery after 120 s');
    await sleep(50);
  }
  const totalMs = performance.now() - restoreStarted;
  // The promoted cluster must be protected too: the new timeline's history file is the first thing it archives.
  const archivingDeadline = Date.now() + 30_000;
  let archivedFirst: string | null = null;
  while (archivedFirst === null) {
    cleanup.check();
    const [row] = await restored.query<{ wal: string | null; failed: string }>('SELECT last_archived_wal AS wal, failed_count::text AS failed FROM pg_stat_archiver');
    if (row?.wal != null) archivedFirst = row.wal;
    else if (Date.now() > archivingDeadline) throw new Error(`the restored cluster archived nothing in 30 s (${row?.failed} failures)`);
    else await sleep(100);
  }
  const serverLog = fs.readFileSync(`${restored.dataDir}.log`, 'utf8');
  const stopLine = serverLog
    .split('\n')
    .find((l) => l.includes('recovery stopping'))
    ?.replace(/^.*?(LOG|FATAL):\s+/, '');
  log(`restored and promoted in ${(totalMs / 1000).toFixed(2)} s${stopLine === undefined ? '' : `: ${stopLine}`}`);

  const after = await recordsOf(restored.urlFor(DATABASE), [...setA, ...setB]);
  const a = compareRecords(setA, original, after);
  const bFound = setB.filter((id) => after.get(id)?.present === true);
  const bPartial = setB.filter((id) => after.has(id) && after.get(id)!.present === false);
  const otherDiagnoses = await countOthers(restored.urlFor(DATABASE), setA);

  cleanup.check();
  const audit = await runCli(opts, ['audit', 'verify'], restored.urlFor(DATABASE), path.join(work, 'cli'));
  const result: PitrResult = {
    pgVersion,
    pgbackrestVersion,
    backup,
    target,
    rpo: { archiveTimeoutS: opts.archiveTimeoutS, lagMs, walFile: mark!.wal },
    restore: { restoreMs, startMs, promoteMs: totalMs - restoreMs - startMs, totalMs, stopLine, archivedFirst },
    archiveBytes,
    setA: { written: setA.length, found: setA.length - a.missing.length, missing: a.missing, incomplete: a.incomplete, evidenceRows: setA.reduce((sum, id) => sum + (after.get(id)?.evidence ?? 0), 0) },
    setB: { written: setB.length, found: bFound, partial: bPartial },
    otherDiagnoses,
    audit: { ok: audit.code === 0, output: audit.output },
    totalMs: performance.now() - started,
    workDir: work,
    ok: false,
  };
  result.ok = a.missing.length === 0 && a.incomplete.length === 0 && bFound.length === 0 && bPartial.length === 0 && otherDiagnoses === 0 && result.audit.ok;
  return result;
}

/** Diagnoses in the database that are not in set A (there must be none). */
async function countOthers(url: string, setA: string[]): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM diagnoses WHERE NOT (id = ANY($1::uuid[]))', [setA]);
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

/**
 * Runs the drill within opts.timeoutMs (or until opts.signal aborts), and always takes down
 * what it set up: the service, both clusters (pg_ctl stop -m immediate) and the temp dir.
 */
export async function runPitrDrill(opts: PitrOptions): Promise<PitrResult> {
  const cleanup = new Cleanup();
  const body = drill(opts, cleanup);
  let bodyDone = false;
  const settled = body.then(
    () => void (bodyDone = true),
    () => void (bodyDone = true),
  );
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`PITR drill did not finish within ${opts.timeoutMs / 1000} s`)), opts.timeoutMs);
    onAbort = () => reject(new Error('PITR drill interrupted'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([body, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) opts.signal?.removeEventListener('abort', onAbort);
    cleanup.aborted = true;
    // Let a step in flight (a pg_ctl start, say) finish so what it starts is stopped too.
    await Promise.race([settled, sleep(20_000)]);
    await cleanup.unwind(opts.log);
    if (!bodyDone) void settled.then(() => cleanup.unwind(opts.log));
  }
}
