/**
 * drill:rolling — under write load, a SIGHUP rolling restart of every worker (src/cluster.ts:
 * a replacement listens before the old one drains) and then a SIGTERM to single workers, one at
 * a time (each drains its requests; the primary starts a replacement): no request may fail.
 * Prints the counts and the longest latency while workers were being replaced.
 *
 *   npm run drill:rolling [-- --rate 100 --workers 2 --rolls 2 --terms 2 --settle 3 --no-keep-alive]
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Load, loadCases, ms, summarize, type Summary } from './lib/load.js';
import { DEFAULT_PG_ADMIN_URL, drillPorts, portIn, sleep, withScope } from './lib/scope.js';
import { DrillServer, type ServerCode } from './lib/server.js';

export interface RollingDrillOptions {
  root: string;
  code: ServerCode;
  pgAdminUrl: string;
  workers: number;
  ratePerSecond: number;
  /** SIGHUP rolling restarts, one after the other. */
  rolls: number;
  /** Single workers stopped with SIGTERM afterwards, one at a time. */
  terms: number;
  /** Load before, between and after the events (s). */
  settleSeconds: number;
  keepAlive: boolean;
  log?: (line: string) => void;
}

export interface RollingEvent {
  what: string;
  startMs: number;
  endMs: number;
}

export interface RollingDrillResult {
  total: Summary;
  /** Requests overlapping an event (a roll or a worker's drain and replacement). */
  duringEvents: Summary;
  /** Sent and not answered 2xx. */
  failed: number;
  /** Not sent: the cap of requests in flight was reached (the service fell behind). */
  notSent: number;
  failures: string[];
  events: RollingEvent[];
  /** Worker processes the drill saw replaced. */
  workersReplaced: number;
}

/** Waits until the workers are `count` processes, none of them in `gone`, all serving. */
async function workersReplaced(server: DrillServer, gone: Set<number>, count: number, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pids = server.workerPids();
    const serving = server.servingPids();
    if (pids.length === count && pids.every((p) => !gone.has(p) && serving.has(p))) return pids;
    await sleep(50);
  }
  throw new Error(`workers not replaced within ${timeoutMs / 1000} s (now ${server.workerPids().join(', ')}; replaced: ${[...gone].join(', ')})\n${server.tail()}`);
}

export async function runRollingDrill(opts: RollingDrillOptions): Promise<RollingDrillResult> {
  const log = opts.log ?? (() => undefined);
  return withScope(async (scope) => {
    const dataDir = scope.tempDir('rolling');
    const databaseUrl = await scope.database(opts.pgAdminUrl, 'rolling');
    const [from, to] = drillPorts();
    const server = new DrillServer({
      root: opts.root,
      code: opts.code,
      port: await portIn(from, to),
      workers: opts.workers,
      dataDir,
      databaseUrl,
      redisUrl: undefined,
      redisKeyPrefix: 'ap',
      apiKey: `drill-${randomBytes(24).toString('hex')}`,
      // To see each replacement start serving before the next worker is stopped.
      logLevel: 'info',
    });
    scope.defer('stop the server', () => server.stop());
    await server.start();
    log(`server up: primary ${server.pid}, workers ${server.workerPids().join(', ')}, ${server.origin}`);

    const load = new Load({ origin: server.origin, apiKey: server.apiKey, ratePerSecond: opts.ratePerSecond, keepAlive: opts.keepAlive }, loadCases(opts.root));
    const events: RollingEvent[] = [];
    let replaced = 0;
    load.start();
    try {
      await sleep(opts.settleSeconds * 1000);
      for (let i = 0; i < opts.rolls; i++) {
        const before = new Set(server.workerPids());
        const startMs = load.now();
        server.signal('SIGHUP');
        const now = await workersReplaced(server, before, opts.workers, 120_000);
        replaced += before.size;
        events.push({ what: `SIGHUP rolling restart ${i + 1}`, startMs, endMs: load.now() });
        log(`SIGHUP ${i + 1}: workers ${[...before].join(', ')} -> ${now.join(', ')} in ${ms(load.now() - startMs)}`);
        await sleep(opts.settleSeconds * 1000);
      }
      for (let i = 0; i < opts.terms; i++) {
        const victim = server.workerPids()[0];
        if (victim === undefined) throw new Error('no worker to stop');
        const startMs = load.now();
        server.signal('SIGTERM', victim);
        while (server.workerPids().includes(victim)) await sleep(20);
        const drainedMs = load.now() - startMs;
        const now = await workersReplaced(server, new Set([victim]), opts.workers, 60_000);
        replaced++;
        events.push({ what: `SIGTERM worker ${victim}`, startMs, endMs: load.now() });
        log(`SIGTERM worker ${victim}: drained and exited in ${ms(drainedMs)}, replacement serving after ${ms(load.now() - startMs)} (workers now ${now.join(', ')})`);
        await sleep(opts.settleSeconds * 1000);
      }
    } finally {
      await load.stop();
    }
    const outcomes = load.outcomes;
    const failedOutcomes = outcomes.filter((o) => o.status !== 201);
    const during = outcomes.filter((o) => events.some((e) => o.end >= e.startMs && o.start <= e.endMs));
    const failures = failedOutcomes.slice(0, 10).map((o) => `at ${ms(o.start)}: ${o.status === 0 ? 'no answer' : o.status} ${o.error ?? ''}`.trim());
    const result = { total: summarize(outcomes), duringEvents: summarize(during), failed: failedOutcomes.length, notSent: load.skipped, failures, events, workersReplaced: replaced };
    log(`requests: ${result.total.sent} sent at ${opts.ratePerSecond}/s (${opts.keepAlive ? 'keep-alive' : 'a connection each'}), ${JSON.stringify(result.total.byStatus)}, ${load.skipped} not sent (too many in flight), ${result.total.retried} sent twice after a reused connection was closed under them; failed: ${result.failed}`);
    log(`latency overall: p50 ${ms(result.total.p50)}, p99 ${ms(result.total.p99)}, max ${ms(result.total.max)}`);
    log(`latency during the ${events.length} restarts (${result.duringEvents.sent} requests): p50 ${ms(result.duringEvents.p50)}, p99 ${ms(result.duringEvents.p99)}, longest ${ms(result.duringEvents.max)}`);
    return result;
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '100' },
      workers: { type: 'string', default: '2' },
      rolls: { type: 'string', default: '2' },
      terms: { type: 'string', default: '2' },
      settle: { type: 'string', default: '3' },
      'no-keep-alive': { type: 'boolean', default: false },
    },
  });
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const r = await runRollingDrill({
    root,
    code: 'dist',
    pgAdminUrl: process.env.AGENTICPET_DRILL_PG_URL ?? DEFAULT_PG_ADMIN_URL,
    workers: Number(values.workers),
    ratePerSecond: Number(values.rate),
    rolls: Number(values.rolls),
    terms: Number(values.terms),
    settleSeconds: Number(values.settle),
    keepAlive: !values['no-keep-alive'],
    log: (line) => console.log(line),
  });
  console.log(r.failed === 0 ? `drill:rolling PASSED: 0 failed requests across ${r.workersReplaced} worker replacements` : `drill:rolling FAILED: ${r.failed} failed requests\n  ${r.failures.join('\n  ')}`);
  process.exitCode = r.failed === 0 ? 0 : 1;
}
