/**
 * npm run bench -- [--mode embedded|postgres|both] [--duration 10] [--rate 1667] [--connections 32]
 *                  [--scenarios healthz,diagnoses,patients,consultation] [--workers N]
 *                  [--database-url URL --api-key KEY]
 *
 * Starts the built service itself, warms it up, then measures each scenario twice: at
 * saturation (closed loop) and at a constant offered rate (open loop, latency from each
 * request's scheduled time). Prints a table and writes bench/results/bench-<mode>-<time>.json.
 * Loopback only; every measurement is bounded in time. See bench/README.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LABELS, SCENARIOS, activateModel, loadVignettes, prepareImage, preparePatients, scenarioSpec, type ScenarioName } from './lib/fixtures.js';
import type { Job, Measured } from './lib/jobs.js';
import { LoadGenerator } from './lib/loadgen.js';
import { seedFor } from './lib/prng.js';
import { formatNotes, formatTable, gitCommit, machine, rowOf, writeJson, type Row } from './lib/report.js';
import { BenchService, DEFAULT_PG_ADMIN_URL, type Mode } from './lib/service.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const USAGE = `Usage: npm run bench -- [flags]   (or: npm run build && npx tsx bench/run.ts [flags])
  --mode embedded|postgres|both   storage to start the service with (default both)
  --duration S                    seconds per measurement (default 10)
  --rate R                        constant offered rate, requests/s (default 1667 = 100,000/min)
  --connections C                 closed-loop connections at saturation (default 32)
  --scenarios LIST                comma-separated: ${SCENARIOS.join(',')} (default all)
  --workers N                     passed on as "serve --workers N"
  --database-url URL              postgres mode against this existing, seeded database (not created, not dropped)
  --api-key KEY                   API key of a clinic in that database (required with --database-url)
  --pg-url URL                    admin connection used to create/drop the bench database
                                  (default $AGENTICPET_BENCH_PG_URL, else the local Unix socket
                                  /var/run/postgresql if present, else postgres://postgres@127.0.0.1:5432/postgres)
  --redis-url URL                 (default $AGENTICPET_BENCH_REDIS_URL or redis://127.0.0.1:6379)
  --warmup S                      closed-loop warm-up per scenario, then open-loop healthz for max(3, S) s (default 1; 0: none)
  --grace S                       open loop: wait at most S for outstanding responses (default 3)
  --pool N                        open loop: connection pool size (default 256)
  --patients N                    patients for GET /v1/patients/:id (default 200)
  --seed N                        seed of the case/patient choice (default 1)
  --image-model FILE              a model spec (POST /v1/models body) to register and activate before
                                  measuring, so diagnoses-image has a model reading its image (needs
                                  a service built with a model runtime); without it the image is linked only`;

const { values: flags } = parseArgs({
  strict: true,
  options: {
    mode: { type: 'string', default: 'both' },
    duration: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1667' },
    connections: { type: 'string', default: '32' },
    scenarios: { type: 'string', default: SCENARIOS.join(',') },
    workers: { type: 'string' },
    'database-url': { type: 'string' },
    'api-key': { type: 'string' },
    'pg-url': { type: 'string', default: DEFAULT_PG_ADMIN_URL },
    'image-model': { type: 'string' },
    'redis-url': { type: 'string', default: process.env.AGENTICPET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    warmup: { type: 'string', default: '1' },
    grace: { type: 'string', default: '3' },
    pool: { type: 'string', default: '256' },
    patients: { type: 'string', default: '200' },
    seed: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function num(name: keyof typeof flags, min: number, integer = false): number {
  const raw = flags[name];
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) fail(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min} (got ${String(raw)})`);
  return v;
}

if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!['embedded', 'postgres', 'both'].includes(flags.mode!)) fail(`--mode must be embedded, postgres or both (got ${flags.mode})`);
const modes: Mode[] = flags.mode === 'both' ? ['embedded', 'postgres'] : [flags.mode as Mode];
const durationSec = num('duration', 1);
const rate = num('rate', 1);
const connections = num('connections', 1, true);
const warmupSec = num('warmup', 0);
const graceSec = num('grace', 0);
const poolConnections = num('pool', 1, true);
const patientCount = num('patients', 1, true);
const seed = num('seed', 0, true);
const workers = flags.workers === undefined ? undefined : num('workers', 1, true);
const requested = flags.scenarios!.split(',').map((s) => s.trim()).filter((s) => s !== '');
for (const s of requested) if (!(SCENARIOS as readonly string[]).includes(s)) fail(`unknown scenario "${s}"`);
// Always in this order: the baseline (healthz) is measured first.
const scenarios: ScenarioName[] = SCENARIOS.filter((s) => requested.includes(s));
if (scenarios.length === 0) fail('--scenarios selects nothing');
if (flags['database-url'] !== undefined && !modes.includes('postgres')) fail('--database-url applies to the postgres mode');
if (flags['database-url'] !== undefined && flags['api-key'] === undefined) fail('--database-url needs --api-key (the key of a clinic in that database)');
if (flags['api-key'] !== undefined && flags['database-url'] === undefined) fail('--api-key goes with --database-url');
if (!fs.existsSync(path.join(root, 'dist/cli.js'))) fail('dist/cli.js is missing: run npm run build first');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.error(`[bench] ${msg}`);

/** One authenticated read that goes through authentication and storage; its latency in ms (Infinity if it failed). */
async function probe(origin: string, apiKey: string): Promise<number> {
  const t = performance.now();
  const ok = await fetch(`${origin}/v1/patients?limit=1`, { headers: { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(5000) }).then(
    async (r) => (await r.arrayBuffer(), r.ok),
    () => false,
  );
  return ok ? performance.now() - t : Infinity;
}

/**
 * Waits until the server has worked off what the last measurement left queued (the open loop
 * abandons up to --pool requests the server still runs): a probe answers about as fast as it did
 * when the server was idle, twice in a row.
 */
async function drain(origin: string, apiKey: string, idleMs: number, maxMs = 20_000): Promise<{ sec: number; drained: boolean }> {
  const start = performance.now();
  const threshold = Math.max(25, 3 * idleMs);
  let fast = 0;
  while (performance.now() - start < maxMs && fast < 2) {
    fast = (await probe(origin, apiKey)) < threshold ? fast + 1 : 0;
    if (fast < 2) await sleep(100);
  }
  const sec = Math.round(performance.now() - start) / 1000;
  if (fast < 2) log(`server still busy ${sec} s after the measurement; carrying on`);
  return { sec, drained: fast >= 2 };
}

/** The command line as the JSON records it: no API key, no database password. */
function redactedArgs(argv: string[]): string[] {
  const hidePassword = (a: string) => a.replace(/(\/\/[^:/@]*:)[^@/]*@/, '$1***@');
  return argv.map((a, i) => (argv[i - 1] === '--api-key' ? '***' : a.startsWith('--api-key=') ? '--api-key=***' : hidePassword(a)));
}

let loadgen: LoadGenerator | undefined;
let service: BenchService | undefined;
let stopping = false;

let cleaning: Promise<void> | undefined;
/** Idempotent: the signal handler and the error path may both call it. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    loadgen?.stop();
    await service?.close();
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping the server and cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

interface ModeReport {
  mode: Mode;
  server: Record<string, string>;
  patients: { used: number; created: number };
  results: Array<Measured & { ratio: number | null; drainSec: number; drained: boolean }>;
  idleProbeMs: number;
}

async function benchMode(mode: Mode, vignettes: ReturnType<typeof loadVignettes>): Promise<{ report: ModeReport; rows: Row[]; notes: string[] }> {
  log(`${mode}: starting the service${workers === undefined ? '' : ` with --workers ${workers}`}`);
  // Assigned before it starts, so that Ctrl-C during start-up still undoes what was set up.
  const svc = new BenchService({
    root,
    mode,
    workers,
    pgAdminUrl: flags['pg-url']!,
    redisUrl: flags['redis-url']!,
    existingDatabaseUrl: mode === 'postgres' ? flags['database-url'] : undefined,
    existingApiKey: mode === 'postgres' ? flags['api-key'] : undefined,
  });
  service = svc;
  await svc.start();
  const { origin, apiKey, server } = svc;
  const existing = mode === 'postgres' && flags['database-url'] !== undefined;
  const patients = scenarios.includes('patients') ? await preparePatients(origin, apiKey, patientCount, existing, seed) : { ids: [], created: 0 };
  if (scenarios.includes('patients')) log(`${mode}: ${patients.ids.length} patients ready (${patients.created} created)`);
  const imageModel = flags['image-model'];
  if (imageModel !== undefined) await activateModel(origin, apiKey, JSON.parse(fs.readFileSync(imageModel, 'utf8')) as { name: string; version: string });
  const mediaId = scenarios.includes('diagnoses-image') ? await prepareImage(origin, apiKey) : undefined;
  const specs = scenarios.map((name) => scenarioSpec(name, vignettes, patients.ids, mediaId));
  const probes: number[] = [];
  for (let i = 0; i < 5; i++) probes.push(await probe(origin, apiKey));
  const idleMs = probes.sort((a, b) => a - b)[2]!;
  const settle = () => drain(origin, apiKey, idleMs);
  const job = (spec: (typeof specs)[number], load: Job['load'], duration: number, conns = connections): Job => ({
    origin,
    apiKey,
    scenario: spec,
    load,
    durationSec: duration,
    seed: seedFor(seed, spec.name),
    connections: conns,
    rate,
    poolConnections,
    graceSec,
  });

  if (warmupSec > 0) {
    for (const spec of specs) await loadgen!.run(job(spec, 'saturation', warmupSec, Math.min(connections, 16)));
    // The open loop has a client path of its own (undici); cold, its first seconds stall for tens of ms.
    await loadgen!.run({ ...job(scenarioSpec('healthz', vignettes, []), 'constant', Math.max(3, warmupSec)), graceSec: 1 });
    log(`${mode}: warmed up (${warmupSec} s per scenario), drained in ${(await settle()).sec} s`);
  }
  const results: ModeReport['results'] = [];
  let baseline: { saturation?: Measured; constant?: Measured } = {};
  const rows: Row[] = [];
  for (const [i, spec] of specs.entries()) {
    for (const load of ['saturation', 'constant'] as const) {
      const m = await loadgen!.run(job(spec, load, durationSec));
      const { sec: drainSec, drained } = await settle();
      if (scenarios[i] === 'healthz') baseline = { ...baseline, [load]: m };
      const row = rowOf(mode, m, baseline[load]);
      rows.push(row);
      results.push({ ...m, ratio: row.ratio, drainSec, drained });
      log(`${mode} ${spec.name} ${row.load}: ${row.achievedRps.toFixed(0)} req/s, p99 ${row.p99} ms, ${row.errors} errors${drainSec > 0.5 ? `, drained in ${drainSec} s` : ''}`);
    }
  }
  await svc.close();
  service = undefined;
  return { report: { mode, server, idleProbeMs: Math.round(idleMs * 1000) / 1000, patients: { used: patients.ids.length, created: patients.created }, results }, rows, notes: formatNotes(mode, results) };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const info = machine();
  const vignettes = loadVignettes(root);
  const perMode = (warmupSec > 0 ? warmupSec * scenarios.length + Math.max(3, warmupSec) : 0) + scenarios.length * 2 * durationSec;
  log(`${modes.join(' + ')}: ${scenarios.map((s) => LABELS[s]).join(', ')}; about ${Math.round(perMode * modes.length)} s of load plus start-up, grace and drain`);
  loadgen = await LoadGenerator.start();
  const reports: ModeReport[] = [];
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const mode of modes) {
    const r = await benchMode(mode, vignettes);
    reports.push(r.report);
    rows.push(...r.rows);
    notes.push(...r.notes);
  }
  loadgen.stop();
  loadgen = undefined;

  console.log(`\nAgenticPet bench: ${info.cpuCount} x ${String(info.cpuModel)}, node ${process.version}; ${durationSec} s per measurement;`);
  console.log(`saturation = closed loop, ${connections} connections; ${rate}/s = open loop, latency from the scheduled send time.`);
  console.log(`vs healthz: saturation req/s / healthz saturation req/s; constant rate p99 / healthz p99 at the same rate.\n`);
  console.log(formatTable(rows));
  if (notes.length > 0) console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
  const file = writeJson(root, flags.mode!, startedAt, {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `tsx bench/run.ts ${redactedArgs(process.argv.slice(2)).join(' ')}`.trim(),
    gitCommit: gitCommit(root),
    machine: { ...info, loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100) },
    flags: { mode: flags.mode, durationSec, rate, connections, scenarios, workers: workers ?? null, warmupSec, graceSec, poolConnections, patients: patientCount, seed, existingDatabase: flags['database-url'] !== undefined },
    method: {
      saturation: `closed loop (autocannon), ${connections} connections, pipelining 1, ${durationSec} s; achieved = 2xx / duration; latency of 2xx responses`,
      constant: `open loop (undici Pool, ${poolConnections} connections, pipelining 1): request i due at t0 + i/rate, dispatched by a ~1 ms timer; latency from the scheduled time; dispatching stops after ${durationSec} s, responses outstanding ${graceSec} s later count as timeouts; a consultation is 3 requests, each dependent step timed from the previous answer`,
      ratio: 'saturation: req/s / healthz saturation req/s; constant: p99 / healthz p99 at the same rate',
    },
    modes: reports,
    table: rows,
  });
  console.log(`\nwritten ${path.relative(root, file)}`);
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    if (!stopping) console.error(err instanceof Error ? err.stack ?? err.message : err);
    await cleanup();
    process.exit(stopping ? 130 : 1);
  },
);
