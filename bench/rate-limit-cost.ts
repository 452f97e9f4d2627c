/**
 * npx tsx bench/rate-limit-cost.ts [--calls 20000] [--concurrency 64] [--redis-url redis://127.0.0.1:6379] [--auto-pipelining]
 *
 * What the per-request checks cost, measured alone (not through the whole service):
 *   rate limit, Redis      RateLimiter.check() over RedisRateCounterStore (the one script call a
 *                          request makes), awaited one at a time (latency: the round trip) and with
 *                          --concurrency in flight (CPU of this process per call, from
 *                          process.cpuUsage: what a request pays on the server's cores)
 *   baseline PING          a PING on the same connection, the same two ways: the round trip that
 *                          any Redis command pays, so the script's own share shows
 *   rate limit, in-process RateLimiter.check() over MemoryRateCounterStore
 *   security headers       helmet's middleware built once (as src/http/security-headers.ts does)
 *                          against helmet(options) built per call (as @fastify/helmet does)
 * --auto-pipelining turns ioredis's enableAutoPipelining on for the connection (the service's
 * connection has it off), to see what batching the writes of one tick would save.
 * Each key and clinic is one of 1000, so the counters are spread as in service; budgets are
 * high enough that nothing is refused. Keys go under a prefix of their own, deleted afterwards.
 * Prints a table; writes nothing else.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import helmet from 'helmet';
import { Redis } from 'ioredis';
import { RateLimiter } from '../src/clinical/access/rate-limits.js';
import { MemoryRateCounterStore } from '../src/storage/rate-limits/memory.js';
import { RedisRateCounterStore } from '../src/storage/redis/rate-limits.js';
import { FAIL_FAST_REDIS_OPTIONS } from '../src/storage/redis/sessions.js';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '64' },
    'redis-url': { type: 'string', default: process.env.AGENTICPET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    'auto-pipelining': { type: 'boolean', default: false },
  },
});
const CALLS = Number(values.calls);
const CONCURRENCY = Number(values.concurrency);

const principals = Array.from({ length: 1000 }, () => ({ keyId: randomUUID(), clinicId: randomUUID(), role: 'vet' as const }));

interface Figures {
  sequentialUs: number;
  concurrentWallUs: number;
  concurrentCpuUs: number;
}

/** µs per call awaited one at a time; then wall and CPU µs per call with CONCURRENCY in flight. */
async function measure(call: (i: number) => Promise<unknown>): Promise<Figures> {
  for (let i = 0; i < 2000; i++) await call(i); // warm-up: JIT, script cache
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) await call(i);
  const sequentialUs = Number(process.hrtime.bigint() - t0) / 1000 / CALLS;
  let next = 0;
  const cpu0 = process.cpuUsage();
  t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < CALLS) await call(next++);
    }),
  );
  const concurrentWallUs = Number(process.hrtime.bigint() - t0) / 1000 / CALLS;
  const cpu = process.cpuUsage(cpu0);
  return { sequentialUs, concurrentWallUs, concurrentCpuUs: (cpu.user + cpu.system) / CALLS };
}

function row(name: string, f: Figures): string {
  return `${name.padEnd(26)} ${f.sequentialUs.toFixed(1).padStart(10)} ${f.concurrentWallUs.toFixed(1).padStart(12)} ${f.concurrentCpuUs.toFixed(1).padStart(10)}`;
}

async function main(): Promise<void> {
  const prefix = `apbench-rl-${randomBytes(3).toString('hex')}`;
  const redis = new Redis(values['redis-url'], { ...FAIL_FAST_REDIS_OPTIONS, enableAutoPipelining: values['auto-pipelining'] });
  await new Promise((resolve) => redis.once('ready', resolve));
  const rows: string[] = [];
  try {
    const viaRedis = new RateLimiter(new RedisRateCounterStore(redis, prefix), { keyLimit: 1e9, clinicLimit: 1e9 });
    rows.push(row('rate limit, Redis', await measure((i) => viaRedis.check(principals[i % 1000]!))));
    rows.push(row('baseline PING, Redis', await measure(() => redis.ping())));
    const inProcess = new RateLimiter(new MemoryRateCounterStore(), { keyLimit: 1e9, clinicLimit: 1e9 });
    rows.push(row('rate limit, in-process', await measure((i) => inProcess.check(principals[i % 1000]!))));
  } finally {
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = nextCursor;
    } while (cursor !== '0');
    redis.disconnect();
  }
  const options = { contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } } };
  const res = { setHeader: () => res, removeHeader: () => undefined } as unknown as ServerResponse;
  const req = {} as IncomingMessage;
  const prebuilt = helmet(options);
  const done = () => undefined;
  rows.push(row('headers, helmet prebuilt', await measure(async () => prebuilt(req, res, done))));
  rows.push(row('headers, helmet per call', await measure(async () => helmet(options)(req, res, done))));
  console.log(`${CALLS} calls; concurrent: ${CONCURRENCY} in flight; ioredis auto-pipelining ${values['auto-pipelining'] ? 'on' : 'off'}`);
  console.log(`${'µs per call'.padEnd(26)} ${'sequential'.padStart(10)} ${'conc. wall'.padStart(12)} ${'conc. CPU'.padStart(10)}`);
  for (const r of rows) console.log(r);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
