/**
 * npm run build && npx tsx bench/soak.ts [--minutes 10] [--rate 1667] [--mode postgres|embedded] [--workers N]
 *
 * A soak: POST /v1/diagnoses at a constant offered rate (open loop, latency from each request's
 * scheduled send time, every body a different case) for --minutes, measured minute by minute:
 * achieved rate, p50/p99/max, errors, and the resident memory of the server's processes (the
 * primary and its workers) at the end of each minute. Memory must stay flat and errors at 0; a
 * rate the service cannot sustain shows as a p99 that grows and requests left unanswered.
 * Starts and stops the service itself (as bench/run.ts does); loopback only, bounded in time.
 * Writes bench/results/bench-soak-<mode>-<time>.json.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadVignettes, scenarioSpec } from './lib/fixtures.js';
import type { Job, Measured } from './lib/jobs.js';
import { LoadGenerator } from './lib/loadgen.js';
import { seedFor } from './lib/prng.js';
import { gitCommit, machine, writeJson } from './lib/report.js';
import { BenchService, DEFAULT_PG_ADMIN_URL, type Mode } from './lib/service.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: flags } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1667' },
    mode: { type: 'string', default: 'postgres' },
    workers: { type: 'string' },
    pool: { type: 'string', default: '256' },
    'pg-url': { type: 'string', default: DEFAULT_PG_ADMIN_URL },
    'redis-url': { type: 'string', default: process.env.AGENTICPET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const minutes = Number(flags.minutes);
const rate = Number(flags.rate);
const mode = flags.mode as Mode;
if (!Number.isInteger(minutes) || minutes < 1 || minutes > 120) throw new Error('--minutes must be an integer from 1 to 120');
if (!(rate > 0)) throw new Error('--rate must be a positive number');
if (mode !== 'postgres' && mode !== 'embedded') throw new Error('--mode must be postgres or embedded');

/** Resident memory (MiB) of a process and its children (the cluster's workers), from ps. */
function rssMiB(pid: number): number {
  const out = execFileSync('ps', ['-eo', 'pid=,ppid=,rss='], { encoding: 'utf8' });
  let kib = 0;
  for (const line of out.trim().split('\n')) {
    const [p, pp, rss] = line.trim().split(/\s+/).map(Number);
    if (p === pid || pp === pid) kib += rss ?? 0;
  }
  return Math.round((kib / 1024) * 10) / 10;
}

const svc = new BenchService({ root, mode, workers: flags.workers === undefined ? undefined : Number(flags.workers), pgAdminUrl: flags['pg-url']!, redisUrl: flags['redis-url']!, existingDatabaseUrl: undefined, existingApiKey: undefined });
let loadgen: LoadGenerator | undefined;
const stop = async () => {
  loadgen?.stop();
  await svc.close();
};
process.once('SIGINT', () => void stop().then(() => process.exit(130)));

try {
  const startedAt = new Date();
  await svc.start();
  loadgen = await LoadGenerator.start();
  const spec = scenarioSpec('diagnoses', loadVignettes(root), []);
  const job = (durationSec: number, load: Job['load'], i: number): Job => ({
    origin: svc.origin,
    apiKey: svc.apiKey,
    scenario: spec,
    load,
    durationSec,
    seed: seedFor(i + 1, spec.name),
    connections: 16,
    rate,
    poolConnections: Number(flags.pool),
    graceSec: 2,
  });
  await loadgen.run(job(5, 'saturation', 0)); // warm-up: JIT, pools, prepared statements
  const rows: Array<{ minute: number; achievedRps: number; p50: number; p99: number; max: number; errors: number; rssMiB: number; measured: Measured }> = [];
  const rss0 = rssMiB(svc.pid!);
  console.log(`soak: ${mode}, POST /v1/diagnoses at ${rate}/s for ${minutes} min; server RSS after warm-up ${rss0} MiB`);
  console.log('| minute | achieved req/s | p50 ms | p99 ms | max ms | errors | server RSS MiB |\n|---:|---:|---:|---:|---:|---:|---:|');
  for (let m = 1; m <= minutes; m++) {
    // One minute is one open-loop run of 58 s plus its 2 s grace, so minutes follow back to back.
    const measured = await loadgen.run(job(58, 'constant', m));
    const row = { minute: m, achievedRps: measured.achievedRps, p50: measured.latencyMs.p50, p99: measured.latencyMs.p99, max: measured.latencyMs.max, errors: measured.errors.total, rssMiB: rssMiB(svc.pid!), measured };
    rows.push(row);
    console.log(`| ${m} | ${row.achievedRps} | ${row.p50} | ${row.p99} | ${row.max} | ${row.errors} | ${row.rssMiB} |`);
  }
  const file = writeJson(root, `soak-${mode}`, startedAt, { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), gitCommit: gitCommit(root), machine: machine(), flags: { minutes, rate, mode, workers: flags.workers ?? null }, server: svc.server, rssAfterWarmupMiB: rss0, minutes: rows });
  console.log(`\nwritten ${path.relative(root, file)}`);
} finally {
  await stop();
}
