/**
 * npm run build && npx tsx bench/backup-under-load.ts --database-url URL --api-key KEY [--rate 300] [--window 10] [--nice N]
 *
 * What a running backup costs the service: POST /v1/diagnoses at a constant offered rate (open
 * loop, every body a different case) against a seeded PostgreSQL database (bench/seed.ts), in
 * back-to-back windows of --window seconds: two windows before, then `agenticpet backup create`
 * (the built CLI, into a temporary directory; --nice is passed to it, default its own) started at the beginning of the third window and
 * windows measured until it has finished, then two windows after. Prints each window (achieved
 * rate, p50/p99/max, errors, whether the backup was running throughout) and p99 and the rate during
 * the backup beside those before and after. The backup's own time and size are printed too.
 * Starts and stops the service itself; loopback only, bounded (at most 60 windows); the backup
 * directory is removed at the end. Writes bench/results/bench-backup-under-load-<time>.json.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadVignettes, scenarioSpec } from './lib/fixtures.js';
import type { Job, Measured } from './lib/jobs.js';
import { LoadGenerator } from './lib/loadgen.js';
import { seedFor } from './lib/prng.js';
import { gitCommit, machine, writeJson } from './lib/report.js';
import { BenchService } from './lib/service.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: flags } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    'api-key': { type: 'string' },
    rate: { type: 'string', default: '300' },
    window: { type: 'string', default: '10' },
    workers: { type: 'string' },
    nice: { type: 'string' },
    'redis-url': { type: 'string', default: process.env.AGENTICPET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const rate = Number(flags.rate);
const windowSec = Number(flags.window);
if (flags['database-url'] === undefined || flags['api-key'] === undefined) throw new Error('--database-url and --api-key are required (a database seeded by bench/seed.ts and one of its clinics\' keys)');
if (!(rate > 0) || !(windowSec >= 3)) throw new Error('--rate must be positive and --window at least 3 s');
const MAX_WINDOWS = 60;

const svc = new BenchService({ root, mode: 'postgres', workers: flags.workers === undefined ? undefined : Number(flags.workers), pgAdminUrl: flags['database-url'], redisUrl: flags['redis-url']!, existingDatabaseUrl: flags['database-url'], existingApiKey: flags['api-key'] });
const backupDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-backup-load-'));
let loadgen: LoadGenerator | undefined;

interface Backup {
  done: Promise<{ code: number | null; seconds: number; output: string }>;
  running: () => boolean;
}

function startBackup(): Backup {
  const t0 = performance.now();
  let running = true;
  const child = spawn(process.execPath, [path.join(root, 'dist/cli.js'), 'backup', 'create', '--to', `file://${backupDir}`, ...(flags.nice === undefined ? [] : ['--nice', flags.nice])], {
    env: { ...process.env, DATABASE_URL: flags['database-url'], LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const done = new Promise<{ code: number | null; seconds: number; output: string }>((resolve) =>
    child.once('exit', (code) => {
      running = false;
      resolve({ code, seconds: (performance.now() - t0) / 1000, output });
    }),
  );
  return { done, running: () => running };
}

const dirBytes = (dir: string): number => fs.readdirSync(dir, { recursive: true, withFileTypes: true }).reduce((n, e) => (e.isFile() ? n + fs.statSync(path.join(e.parentPath, e.name)).size : n), 0);

try {
  const startedAt = new Date();
  await svc.start();
  loadgen = await LoadGenerator.start();
  const spec = scenarioSpec('diagnoses', loadVignettes(root), []);
  const job = (durationSec: number, load: Job['load'], i: number): Job => ({ origin: svc.origin, apiKey: svc.apiKey, scenario: spec, load, durationSec, seed: seedFor(i + 1, spec.name), connections: 16, rate, poolConnections: 256, graceSec: 2 });
  await loadgen.run(job(5, 'saturation', 0)); // warm-up: JIT, pools, prepared statements
  console.log(`backup under load: POST /v1/diagnoses at ${rate}/s in ${windowSec} s windows, database ${new URL(flags['database-url']).pathname.slice(1)}`);
  console.log('| window | phase | achieved req/s | p50 ms | p99 ms | max ms | errors |\n|---:|---|---:|---:|---:|---:|---:|');
  // "backup": the backup ran from the window's start to its end; "ending": it ended within it (in no summary).
  type Phase = 'before' | 'backup' | 'ending' | 'after';
  const rows: Array<{ window: number; phase: Phase; measured: Measured }> = [];
  let backup: Backup | undefined;
  let afterLeft = 2;
  for (let w = 1; w <= MAX_WINDOWS && afterLeft > 0; w++) {
    if (w === 3) backup = startBackup();
    const runningAtStart = backup?.running() ?? false;
    const measured = await loadgen.run(job(windowSec, 'constant', w));
    const phase: Phase = backup === undefined ? 'before' : !runningAtStart ? 'after' : backup.running() ? 'backup' : 'ending';
    if (phase === 'after') afterLeft--;
    rows.push({ window: w, phase, measured });
    console.log(`| ${w} | ${phase} | ${measured.achievedRps} | ${measured.latencyMs.p50} | ${measured.latencyMs.p99} | ${measured.latencyMs.max} | ${measured.errors.total} |`);
  }
  if (backup?.running()) throw new Error(`the backup was still running after ${MAX_WINDOWS} windows`);
  const result = await backup!.done;
  if (result.code !== 0) throw new Error(`backup create exited with ${result.code}:\n${result.output}`);
  const summary = (p: Phase) => {
    const rs = rows.filter((r) => r.phase === p);
    const mean = (f: (m: Measured) => number) => Math.round((rs.reduce((n, r) => n + f(r.measured), 0) / Math.max(1, rs.length)) * 10) / 10;
    return { windows: rs.length, achievedRps: mean((m) => m.achievedRps), p50: mean((m) => m.latencyMs.p50), worstP99: Math.max(0, ...rs.map((r) => r.measured.latencyMs.p99)), errors: rs.reduce((n, r) => n + r.measured.errors.total, 0) };
  };
  const out = { before: summary('before'), backup: summary('backup'), after: summary('after') };
  const size = dirBytes(backupDir);
  console.log(`\nbackup create: ${result.seconds.toFixed(1)} s, ${(size / 2 ** 20).toFixed(1)} MiB`);
  for (const line of result.output.trim().split("\n")) console.log(`  (cli) ${line}`);
  for (const [k, s] of Object.entries(out)) console.log(`${k.padEnd(7)} ${s.windows} windows: ${s.achievedRps} req/s, mean p50 ${s.p50} ms, worst window p99 ${s.worstP99} ms, ${s.errors} errors`);
  const file = writeJson(root, 'backup-under-load', startedAt, { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), gitCommit: gitCommit(root), machine: machine(), flags: { rate, windowSec, workers: flags.workers ?? null }, server: svc.server, backup: { seconds: result.seconds, bytes: size }, summary: out, windows: rows });
  console.log(`written ${path.relative(root, file)}`);
} finally {
  loadgen?.stop();
  await svc.close();
  fs.rmSync(backupDir, { recursive: true, force: true });
}
