/**
 * drill:redis — the session tier failing under write load, on PostgreSQL + a Redis of the
 * drill's own (loopback, a port of its range; never the shared 6379):
 *   1. outage: that Redis is killed (kill -9) mid-load and started again (empty) later. The
 *      service carries on from in-process state (src/storage/sessions/resilient.ts; each answer
 *      says which store served it, X-Session-Store): ≥ 99.9 % of requests must get a 2xx, and
 *      the drill measures how long after Redis answers again the service's sessions are back in
 *      it (first answer served by Redis; every one after; keys present in the new server).
 *   2. Sentinel (needs redis-sentinel): a primary, a replica and three sentinels; the service is
 *      given REDIS_URL=redis+sentinel://…; the primary is killed (kill -9). The sentinels promote
 *      the replica, and the service must follow it without a restart: ≥ 99.9 % 2xx, and the
 *      failover gap (kill → first answer whose session is in Redis again, on the new primary).
 *
 *   npm run drill:redis [-- --rate 100 --outage 6 --down-after 1000 --no-sentinel]
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Load, loadCases, ms, summarize, type Outcome, type Summary } from './lib/load.js';
import { RedisProcess, redisCommand, startSentinelGroup } from './lib/redis.js';
import { DEFAULT_PG_ADMIN_URL, drillPorts, portIn, sleep, withScope, type Scope } from './lib/scope.js';
import { DrillServer, type ServerCode } from './lib/server.js';

export interface RedisDrillOptions {
  root: string;
  code: ServerCode;
  pgAdminUrl: string;
  workers: number;
  ratePerSecond: number;
  /** Load before the failure and after the recovery (s). */
  settleSeconds: number;
  /** How long Redis stays down in the outage part (s). */
  outageSeconds: number;
  sentinel: boolean;
  /** Sentinel's down-after-milliseconds. */
  downAfterMs: number;
  log?: (line: string) => void;
}

export interface OutageResult {
  total: Summary;
  duringOutage: Summary;
  /** Answers served from in-process state (X-Session-Store: memory-fallback). */
  fallbackAnswers: number;
  /** Redis answering again → the end of the first answer whose session it holds. */
  backOnRedisMs: number | undefined;
  /** Redis answering again → the start of the last request still served in-process. */
  lastFallbackAfterMs: number;
  /** Session keys in the restarted (empty) Redis at the end. */
  keysAfterReturn: number;
}

export interface SentinelResult {
  total: Summary;
  /** kill → the sentinels name the replica as primary. */
  promotedMs: number;
  /** kill → the end of the first answer whose session is on the new primary. */
  failoverGapMs: number | undefined;
  /** Session keys on the new primary at the end (it held none of the old primary's writes after the kill). */
  keysOnNewPrimary: number;
  newPrimaryRole: string;
}

export interface RedisDrillResult {
  outage: OutageResult;
  sentinel: SentinelResult | { skipped: string };
}

export function sentinelMissing(): string | false {
  return spawnSync('redis-sentinel', ['--version'], { encoding: 'utf8' }).status === 0 ? false : 'redis-sentinel is not installed (Debian package redis-sentinel)';
}

const viaRedis = (o: Outcome) => o.status === 201 && o.sessionStore === 'redis';

/** What the answers so far were, and what the server said last: for a drill that got stuck. */
function situation(load: Load, server: DrillServer): string {
  const stores: Record<string, number> = {};
  for (const o of load.outcomes) stores[o.sessionStore ?? 'none'] = (stores[o.sessionStore ?? 'none'] ?? 0) + 1;
  return `(answers: ${JSON.stringify(summarize(load.outcomes).byStatus)}, session stores: ${JSON.stringify(stores)})\n${server.tail()}`;
}

/** The end of the first answer started at or after `t` whose session Redis holds. */
function firstOnRedisAfter(outcomes: Outcome[], t: number): number | undefined {
  const ends = outcomes.filter((o) => o.start >= t && viaRedis(o)).map((o) => o.end);
  return ends.length === 0 ? undefined : Math.min(...ends);
}

async function waitFor(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>, context: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s ${context()}`);
    await sleep(50);
  }
}

async function countKeys(port: number, prefix: string): Promise<number> {
  return redisCommand(port, async (c) => {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      n += keys.length;
      cursor = next;
    } while (cursor !== '0');
    return n;
  });
}

/** Both parts share one database, so one key: the first start stores it (bootstrap), the second finds it. */
const API_KEY = `drill-${randomBytes(24).toString('hex')}`;

async function startServer(scope: Scope, opts: RedisDrillOptions, redisUrl: string, prefix: string, databaseUrl: string, port: number): Promise<DrillServer> {
  const server = new DrillServer({ root: opts.root, code: opts.code, port, workers: opts.workers, dataDir: scope.tempDir('redis'), databaseUrl, redisUrl, redisKeyPrefix: prefix, apiKey: API_KEY });
  scope.defer('stop the server', () => server.stop());
  await server.start();
  return server;
}

async function outagePart(scope: Scope, opts: RedisDrillOptions, databaseUrl: string, taken: Set<number>): Promise<OutageResult> {
  const log = opts.log ?? (() => undefined);
  const [from, to] = drillPorts();
  const redisPort = await portIn(from, to, taken);
  const redis = new RedisProcess(redisPort, scope.tempDir('redis-outage'));
  scope.defer(`stop redis-server :${redisPort}`, () => redis.kill());
  await redis.start();
  const prefix = 'drill';
  const server = await startServer(scope, opts, `redis://127.0.0.1:${redisPort}`, prefix, databaseUrl, await portIn(from, to, taken));
  log(`outage: service ${server.origin} (${opts.workers} workers) on redis-server 127.0.0.1:${redisPort}`);

  const load = new Load({ origin: server.origin, apiKey: server.apiKey, ratePerSecond: opts.ratePerSecond }, loadCases(opts.root));
  load.start();
  let killedAt = 0;
  let backAt = 0;
  try {
    await sleep(opts.settleSeconds * 1000);
    killedAt = load.now();
    await redis.kill();
    log(`outage: redis-server killed (kill -9) at ${ms(killedAt)}`);
    await sleep(opts.outageSeconds * 1000);
    await redis.start();
    backAt = load.now();
    log(`outage: redis-server answering again at ${ms(backAt)} (empty: nothing persisted)`);
    await waitFor('the service back on Redis', 30_000, () => firstOnRedisAfter(load.outcomes, backAt) !== undefined, () => situation(load, server));
    await sleep(opts.settleSeconds * 1000);
  } finally {
    await load.stop();
  }
  const outcomes = load.outcomes;
  const fallback = outcomes.filter((o) => o.sessionStore === 'memory-fallback');
  const after = fallback.filter((o) => o.start >= backAt).map((o) => o.start - backAt);
  const r: OutageResult = {
    total: summarize(outcomes),
    duringOutage: summarize(outcomes.filter((o) => o.end >= killedAt && o.start <= backAt)),
    fallbackAnswers: fallback.length,
    backOnRedisMs: ((t) => (t === undefined ? undefined : t - backAt))(firstOnRedisAfter(outcomes, backAt)),
    lastFallbackAfterMs: after.length === 0 ? 0 : Math.max(...after),
    keysAfterReturn: await countKeys(redisPort, prefix),
  };
  await server.stop();
  log(`outage: ${r.total.sent} requests at ${opts.ratePerSecond}/s, ${JSON.stringify(r.total.byStatus)}: ${r.total.okShare.toFixed(3)} % 2xx (${r.total.retried} resent on a reused connection)`);
  log(`outage: Redis down ${ms(backAt - killedAt)}: ${r.duringOutage.sent} requests then, ${r.duringOutage.okShare.toFixed(3)} % 2xx, p99 ${ms(r.duringOutage.p99)}, max ${ms(r.duringOutage.max)}; ${r.fallbackAnswers} answers served in-process (X-Session-Store: memory-fallback)`);
  log(`outage: back on Redis ${r.backOnRedisMs === undefined ? 'never' : ms(r.backOnRedisMs)} after it answered again (last in-process answer started ${ms(r.lastFallbackAfterMs)} after); ${r.keysAfterReturn} session keys in the restarted server`);
  return r;
}

async function sentinelPart(scope: Scope, opts: RedisDrillOptions, databaseUrl: string, taken: Set<number>): Promise<SentinelResult> {
  const log = opts.log ?? (() => undefined);
  const [from, to] = drillPorts();
  const ports: number[] = [];
  for (let i = 0; i < 5; i++) ports.push(await portIn(from, to, taken));
  const group = await startSentinelGroup(scope.tempDir('sentinel'), ports, { downAfterMs: opts.downAfterMs }, (p) => scope.defer(`stop redis :${p.port}`, () => p.kill()));
  const prefix = 'drill';
  const server = await startServer(scope, opts, group.url, prefix, databaseUrl, await portIn(from, to, taken));
  log(`sentinel: service ${server.origin} on ${group.url} (primary :${group.primary.port}, replica :${group.replica.port}, down-after ${opts.downAfterMs} ms)`);

  const load = new Load({ origin: server.origin, apiKey: server.apiKey, ratePerSecond: opts.ratePerSecond }, loadCases(opts.root));
  load.start();
  let killedAt = 0;
  let promotedAt = 0;
  try {
    await waitFor('the service on Redis through Sentinel', 20_000, () => firstOnRedisAfter(load.outcomes, 0) !== undefined, () => situation(load, server));
    await sleep(opts.settleSeconds * 1000);
    killedAt = load.now();
    await group.primary.kill();
    log(`sentinel: primary :${group.primary.port} killed (kill -9) at ${ms(killedAt)}`);
    await waitFor('the sentinels promoting the replica', 30_000, () => group.primaryPort(group.sentinels[1]!.port).then((p) => p === group.replica.port, () => false));
    promotedAt = load.now();
    await waitFor('the service on the new primary', 30_000, () => firstOnRedisAfter(load.outcomes, killedAt) !== undefined, () => situation(load, server));
    await sleep(opts.settleSeconds * 1000);
  } finally {
    await load.stop();
  }
  const first = firstOnRedisAfter(load.outcomes, killedAt);
  const r: SentinelResult = {
    total: summarize(load.outcomes),
    promotedMs: promotedAt - killedAt,
    failoverGapMs: first === undefined ? undefined : first - killedAt,
    keysOnNewPrimary: await countKeys(group.replica.port, prefix),
    newPrimaryRole: await redisCommand(group.replica.port, (c) => c.call('ROLE') as Promise<unknown[]>).then((r) => String(r[0])),
  };
  await server.stop();
  log(`sentinel: ${r.total.sent} requests at ${opts.ratePerSecond}/s, ${JSON.stringify(r.total.byStatus)}: ${r.total.okShare.toFixed(3)} % 2xx (${r.total.retried} resent on a reused connection)`);
  log(`sentinel: replica :${group.replica.port} promoted ${ms(r.promotedMs)} after the kill (role now ${r.newPrimaryRole}); failover gap (kill → first session on the new primary) ${r.failoverGapMs === undefined ? 'never' : ms(r.failoverGapMs)}; ${r.keysOnNewPrimary} session keys on it`);
  return r;
}

export async function runRedisDrill(opts: RedisDrillOptions): Promise<RedisDrillResult> {
  return withScope(async (scope) => {
    const databaseUrl = await scope.database(opts.pgAdminUrl, 'redis');
    const taken = new Set<number>();
    const outage = await outagePart(scope, opts, databaseUrl, taken);
    const missing = sentinelMissing();
    const sentinel = !opts.sentinel ? { skipped: 'not asked for' } : missing !== false ? { skipped: missing } : await sentinelPart(scope, opts, databaseUrl, taken);
    return { outage, sentinel };
  });
}

/** The bound on the way back to Redis after it returns: its reconnect backoff (≤ 1 s) plus the store's skip window (1 s), with room for a loaded host. */
export const BACK_ON_REDIS_BOUND_MS = 5_000;

export function redisFailures(r: RedisDrillResult, minOkShare = 99.9): string[] {
  const f: string[] = [];
  const o = r.outage;
  if (o.total.okShare < minOkShare) f.push(`outage: ${o.total.okShare.toFixed(3)} % 2xx < ${minOkShare} %: ${JSON.stringify(o.total.byStatus)}`);
  if (o.fallbackAnswers === 0) f.push('outage: no answer was served in-process: Redis was not really down under load');
  if (o.backOnRedisMs === undefined || o.backOnRedisMs > BACK_ON_REDIS_BOUND_MS) f.push(`outage: back on Redis after ${o.backOnRedisMs ?? '∞'} ms (bound ${BACK_ON_REDIS_BOUND_MS} ms)`);
  if (o.keysAfterReturn === 0) f.push('outage: no session keys in the restarted Redis');
  if ('skipped' in r.sentinel) return f;
  const s = r.sentinel;
  if (s.total.okShare < minOkShare) f.push(`sentinel: ${s.total.okShare.toFixed(3)} % 2xx < ${minOkShare} %: ${JSON.stringify(s.total.byStatus)}`);
  if (s.failoverGapMs === undefined) f.push('sentinel: the service never used the new primary');
  if (s.newPrimaryRole !== 'master') f.push(`sentinel: the replica's role is ${s.newPrimaryRole}, not master`);
  if (s.keysOnNewPrimary === 0) f.push('sentinel: no session keys on the new primary');
  return f;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '100' },
      workers: { type: 'string', default: '2' },
      settle: { type: 'string', default: '4' },
      outage: { type: 'string', default: '6' },
      'down-after': { type: 'string', default: '1000' },
      'no-sentinel': { type: 'boolean', default: false },
    },
  });
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const r = await runRedisDrill({
    root,
    code: 'dist',
    pgAdminUrl: process.env.AGENTICPET_DRILL_PG_URL ?? DEFAULT_PG_ADMIN_URL,
    workers: Number(values.workers),
    ratePerSecond: Number(values.rate),
    settleSeconds: Number(values.settle),
    outageSeconds: Number(values.outage),
    sentinel: !values['no-sentinel'],
    downAfterMs: Number(values['down-after']),
    log: (line) => console.log(line),
  });
  if ('skipped' in r.sentinel) console.log(`sentinel part skipped: ${r.sentinel.skipped}`);
  const failures = redisFailures(r);
  console.log(failures.length === 0 ? 'drill:redis PASSED' : `drill:redis FAILED:\n  ${failures.join('\n  ')}`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}
