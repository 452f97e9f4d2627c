/**
 * Request budgets per API key and per clinic: the counters (Redis script and in-process, the
 * same behaviour), the limiter's fail-open, and the HTTP answers (RateLimit / RateLimit-Policy
 * on every /v1 response, 429 problem+json with Retry-After) on two instances sharing one Redis
 * and one PostgreSQL database, and in the embedded mode.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import { LEASE_TTL_MS, LeasedRateCounterStore, MAX_LEASE, type BulkRateCounterStore } from '../src/clinical/access/rate-leases.js';
import { RateLimiter, type RateCounterStore } from '../src/clinical/access/rate-limits.js';
import { loadConfig } from '../src/config.js';
import { MemoryRateCounterStore } from '../src/storage/rate-limits/memory.js';
import { rateLimitKeys, RedisRateCounterStore } from '../src/storage/redis/rate-limits.js';
import { FAIL_FAST_REDIS_OPTIONS } from '../src/storage/redis/sessions.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { adminClient, deleteKeysUnder, RedisProxy, redisSkipReason, redisUrl, sleep, testKeyPrefix } from './support/redis.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason, type TestDatabase } from './support/services.js';

const redisSkip = redisSkipReason();
const pgSkip = pgSkipReason();
const prefix = testKeyPrefix();
after(async () => {
  if (redisSkip === false) await deleteKeysUnder(prefix);
});

const principal = (keyId: string, clinicId: string) => ({ keyId, clinicId, role: 'vet' as const });

/** A connection as the service opens one for a request path. */
function redisConnection(url = redisUrl()): Redis {
  const c = new Redis(url, FAIL_FAST_REDIS_OPTIONS);
  c.on('error', () => undefined);
  return c;
}

const stores: Array<{ name: string; skip: string | false; open(): { store: RateCounterStore; close(): void } }> = [
  { name: 'in-process', skip: false, open: () => ({ store: new MemoryRateCounterStore(), close: () => undefined }) },
  {
    name: 'Redis',
    skip: redisSkip,
    open: () => {
      const c = redisConnection();
      return { store: new RedisRateCounterStore(c, prefix), close: () => c.disconnect() };
    },
  },
  {
    name: 'Redis, leased',
    skip: redisSkip,
    open: () => {
      const c = redisConnection();
      return { store: new LeasedRateCounterStore(new RedisRateCounterStore(c, prefix)), close: () => c.disconnect() };
    },
  },
];

for (const s of stores) {
  describe(`rate-limit counters (${s.name})`, { skip: s.skip }, () => {
    let opened: ReturnType<(typeof stores)[number]['open']>;
    before(() => void (opened = s.open()));
    after(() => opened?.close());

    it('admits up to the key budget, then refuses without counting the refusal against the clinic', async () => {
      const limiter = new RateLimiter(opened.store, { keyLimit: 3, clinicLimit: 100 });
      const p = principal(randomUUID(), randomUUID());
      const remaining: number[][] = [];
      for (let i = 0; i < 3; i++) {
        const d = await limiter.check(p);
        assert.equal(d?.admitted, true);
        remaining.push(d!.budgets.map((b) => b.remaining));
      }
      assert.deepEqual(remaining, [
        [2, 99],
        [1, 98],
        [0, 97],
      ]);
      for (let i = 0; i < 3; i++) {
        const d = await limiter.check(p);
        assert.equal(d?.admitted, false);
        assert.deepEqual(
          d!.budgets.map((b) => [b.policy, b.remaining]),
          [
            ['api-key', 0],
            ['clinic', 97],
          ],
        );
        assert.ok(d!.budgets.every((b) => b.resetSeconds >= 59 && b.resetSeconds <= 60), JSON.stringify(d!.budgets));
      }
    });

    it("shares the clinic budget between the clinic's keys, and keeps other clinics apart", async () => {
      const limiter = new RateLimiter(opened.store, { keyLimit: 10, clinicLimit: 4 });
      const clinic = randomUUID();
      const a = principal(randomUUID(), clinic);
      const b = principal(randomUUID(), clinic);
      for (const p of [a, a, b, a]) assert.equal((await limiter.check(p))?.admitted, true);
      const refused = await limiter.check(b);
      assert.equal(refused?.admitted, false);
      assert.deepEqual(
        refused!.budgets.map((x) => [x.policy, x.remaining]),
        [
          ['api-key', 9],
          ['clinic', 0],
        ],
      );
      assert.equal((await limiter.check(principal(b.keyId, randomUUID())))?.admitted, true, 'the same key id under another clinic has budgets of its own');
    });

    it('starts a new window once the old one has ended', async () => {
      const limiter = new RateLimiter(opened.store, { keyLimit: 2, clinicLimit: 0, windowMs: 400 });
      const p = principal(randomUUID(), randomUUID());
      assert.equal((await limiter.check(p))?.admitted, true);
      assert.equal((await limiter.check(p))?.admitted, true);
      const refused = await limiter.check(p);
      assert.equal(refused?.admitted, false);
      assert.equal(refused!.budgets.length, 1, 'the clinic budget is off');
      assert.equal(refused!.budgets[0]!.resetSeconds, 1, 'under a second left rounds up to 1');
      await sleep(450);
      const fresh = await limiter.check(p);
      assert.equal(fresh?.admitted, true);
      assert.equal(fresh!.budgets[0]!.remaining, 1);
    });

    it('counts concurrent requests exactly (no lost update, no overshoot)', async () => {
      const limiter = new RateLimiter(opened.store, { keyLimit: 25, clinicLimit: 40 });
      const clinic = randomUUID();
      const keys = [randomUUID(), randomUUID()];
      const decisions = await Promise.all(Array.from({ length: 100 }, (_, i) => limiter.check(principal(keys[i % 2]!, clinic))));
      assert.equal(decisions.filter((d) => d?.admitted).length, 40);
    });

    it('checks nothing when both budgets are off', async () => {
      const limiter = new RateLimiter(opened.store, { keyLimit: 0, clinicLimit: 0 });
      assert.equal(limiter.enabled, false);
      assert.equal(await limiter.check(principal(randomUUID(), randomUUID())), null);
    });
  });
}

describe('in-process counters', () => {
  it('forget the windows that have ended', async () => {
    let now = 0;
    const store = new MemoryRateCounterStore(() => now);
    for (let i = 0; i < 50; i++) await store.take(`k${i}`, `c${i % 5}`, 10, 100, 1000);
    assert.equal(store.size, 55);
    now = 1500;
    await store.take('k-new', 'c-new', 10, 100, 1000);
    assert.equal(store.size, 2, 'only the new key and clinic remain');
  });
});

/** The Redis store, counting the calls that reach it. */
function countedRedis(c: Redis): { store: BulkRateCounterStore; calls: () => number } {
  const inner = new RedisRateCounterStore(c, prefix);
  let calls = 0;
  return {
    store: { take: (...a) => (calls++, inner.take(...a)), takeMany: (...a) => (calls++, inner.takeMany(...a)) },
    calls: () => calls,
  };
}

describe('leased counters on Redis', { skip: redisSkip }, () => {
  it('serve a busy key with far fewer round trips, counting every request and reporting counts that only grow', async () => {
    const c = redisConnection();
    try {
      const counted = countedRedis(c);
      const limiter = new RateLimiter(new LeasedRateCounterStore(counted.store), { keyLimit: 100_000, clinicLimit: 400_000 });
      const p = principal(randomUUID(), randomUUID());
      let last = 0;
      for (let round = 0; round < 40; round++) {
        const decisions = await Promise.all(Array.from({ length: 25 }, () => limiter.check(p)));
        for (const d of decisions) {
          assert.equal(d?.admitted, true);
          const used = 100_000 - d!.budgets[0]!.remaining;
          assert.ok(used >= 1 && used <= 1000, `count ${used}`);
        }
        const max = Math.max(...decisions.map((d) => 100_000 - d!.budgets[0]!.remaining));
        assert.ok(max > last, 'counts grow');
        last = max;
      }
      assert.ok(counted.calls() < 200, `1000 requests took ${counted.calls()} round trips`);
      const k = rateLimitKeys(prefix, p.clinicId, p.keyId);
      const stored = Number(await c.get(k.key));
      assert.ok(stored >= 1000 && stored <= 1000 + MAX_LEASE - 1, `Redis counted ${stored} for 1000 admitted`);
      assert.equal(Number(await c.get(k.clinic)), stored, 'the clinic budget counts the same tokens');
    } finally {
      c.disconnect();
    }
  });

  it('never admit more than a budget across two processes, and stay exact for a small budget', async () => {
    const [c1, c2] = [redisConnection(), redisConnection()];
    try {
      const big = { keyLimit: 600, clinicLimit: 0 };
      const l1 = new RateLimiter(new LeasedRateCounterStore(new RedisRateCounterStore(c1, prefix)), big);
      const l2 = new RateLimiter(new LeasedRateCounterStore(new RedisRateCounterStore(c2, prefix)), big);
      const p = principal(randomUUID(), randomUUID());
      let admitted = 0;
      for (let round = 0; round < 40; round++) {
        const ds = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? l1 : l2).check(p)));
        admitted += ds.filter((d) => d?.admitted).length;
      }
      assert.ok(admitted <= 600, `${admitted} admitted on a budget of 600`);
      // Both processes kept asking, so every leased token was spent: none is lost.
      assert.equal(admitted, 600);
      const small = principal(randomUUID(), randomUUID());
      const s1 = new RateLimiter(new LeasedRateCounterStore(new RedisRateCounterStore(c1, prefix)), { keyLimit: 12, clinicLimit: 0 });
      const s2 = new RateLimiter(new LeasedRateCounterStore(new RedisRateCounterStore(c2, prefix)), { keyLimit: 12, clinicLimit: 0 });
      const seen = [];
      for (let i = 0; i < 14; i++) seen.push(await (i % 2 === 0 ? s1 : s2).check(small));
      assert.deepEqual(seen.map((d) => d?.budgets[0]!.remaining), [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0]);
      assert.deepEqual(seen.map((d) => d?.admitted), [...Array(12).fill(true), false, false]);
    } finally {
      c1.disconnect();
      c2.disconnect();
    }
  });

  it('end a lease after LEASE_TTL_MS: its unspent tokens are not used later', async () => {
    const c = redisConnection();
    try {
      let now = 0;
      const counted = countedRedis(c);
      const store = new LeasedRateCounterStore(counted.store, () => now);
      const p = principal(randomUUID(), randomUUID());
      // Grow a lease: each one spent at once doubles the next.
      for (let i = 0; i < 64; i++) await store.take(p.keyId, p.clinicId, 1_000_000, 0, 60_000);
      const before = counted.calls();
      assert.ok(before < 20, `${before} round trips for 64 requests`);
      now += LEASE_TTL_MS;
      await store.take(p.keyId, p.clinicId, 1_000_000, 0, 60_000);
      assert.equal(counted.calls(), before + 1, 'an ended lease sends the next request to the store');
    } finally {
      c.disconnect();
    }
  });
});

describe('Redis counters, shared and failing', { skip: redisSkip }, () => {
  it('two instances (two connections, one prefix) share one budget', async () => {
    const [c1, c2] = [redisConnection(), redisConnection()];
    try {
      const l1 = new RateLimiter(new RedisRateCounterStore(c1, prefix), { keyLimit: 4, clinicLimit: 0 });
      const l2 = new RateLimiter(new RedisRateCounterStore(c2, prefix), { keyLimit: 4, clinicLimit: 0 });
      const p = principal(randomUUID(), randomUUID());
      const seen = [await l1.check(p), await l2.check(p), await l1.check(p), await l2.check(p), await l1.check(p)];
      assert.deepEqual(
        seen.map((d) => [d?.admitted, d?.budgets[0]!.remaining]),
        [
          [true, 3],
          [true, 2],
          [true, 1],
          [true, 0],
          [false, 0],
        ],
      );
    } finally {
      c1.disconnect();
      c2.disconnect();
    }
  });

  it('fails open while Redis is down, says so once, skips it for a second, and enforces again once it is back', async () => {
    const proxy = new RedisProxy();
    await proxy.start();
    const c = redisConnection(proxy.url);
    const events: string[] = [];
    let unchecked = 0;
    let calls = 0;
    const redisStore = new RedisRateCounterStore(c, prefix);
    const counting: RateCounterStore = { take: (...args) => (calls++, redisStore.take(...args)) };
    const limiter = new RateLimiter(counting, {
      keyLimit: 2,
      clinicLimit: 0,
      retryAfterMs: 300,
      onUnavailable: () => events.push('unavailable'),
      onRecovered: () => events.push('recovered'),
      onUnchecked: () => unchecked++,
    });
    const p = principal(randomUUID(), randomUUID());
    try {
      // The first call waits for the connection being made rather than fail open.
      assert.equal((await limiter.check(p))?.admitted, true);
      assert.deepEqual(events, []);
      await proxy.stop();
      const started = Date.now();
      const during = await Promise.all(Array.from({ length: 20 }, () => limiter.check(p)));
      assert.ok(
        during.every((d) => d === null),
        'admitted unchecked',
      );
      assert.ok(Date.now() - started < 400, 'a refused connection fails at once');
      const callsWhileDown = calls;
      assert.ok(callsWhileDown <= 21, String(callsWhileDown));
      assert.equal(await limiter.check(p), null);
      assert.equal(calls, callsWhileDown, 'within retryAfterMs the store is not asked');
      assert.equal(unchecked, 21);
      assert.deepEqual(events, ['unavailable'], 'told once per outage, not per request');
      await proxy.start();
      // ioredis reconnects within its retry strategy (at most 1 s between attempts).
      const deadline = Date.now() + 5000;
      let d = await limiter.check(p);
      while (d === null && Date.now() < deadline) {
        await sleep(100);
        d = await limiter.check(p);
      }
      assert.equal(d?.admitted, true, 'counted again');
      assert.equal(d!.budgets[0]!.remaining, 0, 'the count from before the outage survived in Redis');
      assert.equal((await limiter.check(p))?.admitted, false);
      assert.deepEqual(events, ['unavailable', 'recovered']);
    } finally {
      c.disconnect();
      await proxy.stop();
    }
  });
});

const RATE_LIMITED = 'urn:agenticpet:problem:rate-limited';
const missingOwner = () => `/v1/owners/${randomUUID()}`;

function assertRateLimited(res: LightMyRequestResponse, policies: string[]): number {
  assert.equal(res.statusCode, 429, res.body);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const body = res.json();
  assert.equal(body.type, RATE_LIMITED);
  assert.equal(body.status, 429);
  assert.equal(body.title, 'Too Many Requests');
  assert.deepEqual(body.policies, policies);
  const retryAfter = Number(res.headers['retry-after']);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${res.headers['retry-after']}`);
  assert.equal(body.retryAfterSeconds, retryAfter);
  return retryAfter;
}

/** The RateLimit field's items as {policy: [r, t]}. */
function rateLimitOf(res: LightMyRequestResponse): Record<string, [number, number]> {
  const raw = res.headers.ratelimit;
  assert.equal(typeof raw, 'string', `RateLimit on ${res.statusCode}`);
  const out: Record<string, [number, number]> = {};
  for (const item of (raw as string).split(', ')) {
    const m = /^"([a-z-]+)";r=(\d+);t=(\d+)$/.exec(item);
    assert.ok(m, `RateLimit item ${item}`);
    out[m[1]!] = [Number(m[2]), Number(m[3])];
  }
  return out;
}

describe('HTTP: two instances on one PostgreSQL and one Redis', { skip: redisSkip || pgSkip }, () => {
  let database: TestDatabase;
  let a: TestRuntime;
  let b: TestRuntime;
  let redis: Redis;
  const httpPrefix = testKeyPrefix();
  const ENV = { REDIS_URL: redisUrl(), REDIS_KEY_PREFIX: httpPrefix, AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '5', AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: '8', AGENTICPET_MAX_EVENT_LOOP_DELAY_MS: '0' };

  before(async () => {
    database = await createTestDatabase();
    a = await startRuntime(new PostgresExecutor({ connectionString: database.url, poolMax: 2 }), ENV);
    b = await startRuntime(new PostgresExecutor({ connectionString: database.url, poolMax: 2 }), ENV);
    redis = adminClient();
  });
  after(async () => {
    await a?.close();
    await b?.close();
    redis?.disconnect();
    await database?.drop();
    await deleteKeysUnder(httpPrefix);
  });

  it('spends one key budget across both instances, then answers 429 with the fields, Retry-After and problem+json', async () => {
    const { clinicId, key } = await a.newClinic('Key budget clinic');
    const [viaA, viaB] = [client(a, key), client(b, key)];
    const seen: Array<Record<string, [number, number]>> = [];
    for (const call of [viaA, viaB, viaA, viaB, viaA]) {
      const res = await call('GET', missingOwner());
      assert.equal(res.statusCode, 404, 'any authenticated request counts, whatever its answer');
      assert.equal(res.headers['ratelimit-policy'], '"api-key";q=5;w=60, "clinic";q=8;w=60');
      seen.push(rateLimitOf(res));
    }
    assert.deepEqual(
      seen.map((s) => [s['api-key']![0], s.clinic![0]]),
      [
        [4, 7],
        [3, 6],
        [2, 5],
        [1, 4],
        [0, 3],
      ],
    );
    const refused = await viaB('GET', missingOwner());
    const retryAfter = assertRateLimited(refused, ['api-key']);
    const fields = rateLimitOf(refused);
    assert.equal(fields['api-key']![0], 0);
    assert.equal(fields['api-key']![1], retryAfter, 't and Retry-After name the same moment');
    assert.equal(fields.clinic![0], 3, 'the refusal was not counted against the clinic');
    // Retry-After is the time left in the key's window, as Redis holds it.
    const keyId = (await a.runtime.access.authenticate(`Bearer ${key}`)).keyId;
    const pttl = await redis.pttl(rateLimitKeys(httpPrefix, clinicId, keyId).key);
    assert.ok(Math.abs(Math.ceil(pttl / 1000) - retryAfter) <= 1, `PTTL ${pttl} ms vs Retry-After ${retryAfter}`);
    assert.equal(await redis.get(rateLimitKeys(httpPrefix, clinicId, keyId).clinic), '5');
    const metrics = await viaB('GET', '/metrics');
    assert.match(metrics.body, /agenticpet_rate_limited_total\{policy="api-key"\} [1-9]/);
  });

  it("spends the clinic's budget across its keys, and refuses a key that still has budget of its own", async () => {
    const { key: adminKey } = await a.newClinic('Clinic budget clinic');
    const admin = client(a, adminKey);
    const created = await admin('POST', '/v1/api-keys', { body: { name: 'front desk', role: 'vet' } });
    assert.equal(created.statusCode, 201, created.body);
    const desk = client(b, created.json().key as string);
    for (let i = 0; i < 4; i++) assert.equal((await admin('GET', missingOwner())).statusCode, 404);
    assertRateLimited(await admin('GET', missingOwner()), ['api-key']);
    for (let i = 0; i < 3; i++) assert.equal((await desk('GET', missingOwner())).statusCode, 404);
    const refused = await desk('GET', missingOwner());
    assertRateLimited(refused, ['clinic']);
    const fields = rateLimitOf(refused);
    assert.equal(fields['api-key']![0], 2);
    assert.equal(fields.clinic![0], 0);
    assert.equal(Number(refused.headers['retry-after']), fields.clinic![1]);
  });

  it('does not count 401s against the clinic, and never limits health, metrics or docs', async () => {
    const { key: adminKey } = await a.newClinic('Unauthenticated clinic');
    const admin = client(a, adminKey);
    const created = (await admin('POST', '/v1/api-keys', { body: { name: 'revoked soon', role: 'vet' } })).json();
    assert.equal((await admin('DELETE', `/v1/api-keys/${created.id}`)).statusCode, 200);
    const revoked = client(a, created.key as string);
    for (let i = 0; i < 10; i++) {
      const res = await revoked('GET', missingOwner());
      assert.equal(res.statusCode, 401);
      assert.equal(res.headers.ratelimit, undefined);
    }
    for (let i = 0; i < 10; i++) assert.equal((await client(a, null)('GET', missingOwner())).statusCode, 401);
    const res = await admin('GET', missingOwner());
    assert.equal(res.statusCode, 404);
    assert.deepEqual(rateLimitOf(res).clinic![0], 8 - 3, 'only the admin key’s three requests were counted');
    for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs']) {
      for (let i = 0; i < 12; i++) {
        const r = await admin('GET', url);
        assert.ok(r.statusCode < 400, `${url}: ${r.statusCode}`);
        assert.equal(r.headers.ratelimit, undefined, url);
      }
    }
  });
});

describe('HTTP: Redis down', { skip: redisSkip || pgSkip }, () => {
  let database: TestDatabase;
  let proxy: RedisProxy;
  let rt: TestRuntime;
  const downPrefix = testKeyPrefix();

  before(async () => {
    database = await createTestDatabase();
    proxy = new RedisProxy();
    await proxy.start();
    rt = await startRuntime(new PostgresExecutor({ connectionString: database.url, poolMax: 2 }), {
      REDIS_URL: proxy.url,
      REDIS_KEY_PREFIX: downPrefix,
      AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '3',
      AGENTICPET_MAX_EVENT_LOOP_DELAY_MS: '0',
    });
  });
  after(async () => {
    await proxy?.start().catch(() => undefined);
    await rt?.close();
    await proxy?.stop();
    await database?.drop();
    await deleteKeysUnder(downPrefix);
  });

  it('admits requests unchecked (no 500, no 429), counts them in a metric, and enforces again on recovery', async () => {
    const api = client(rt, (await rt.newClinic('Outage clinic')).key);
    assert.equal(rateLimitOf(await api('GET', missingOwner()))['api-key']![0], 2);
    await proxy.stop();
    for (let i = 0; i < 6; i++) {
      const res = await api('GET', missingOwner());
      assert.equal(res.statusCode, 404, res.body);
      assert.equal(res.headers.ratelimit, undefined, 'no figures it does not have');
    }
    assert.match((await api('GET', '/metrics')).body, /agenticpet_rate_limit_unchecked_total [1-9]/);
    await proxy.start();
    const deadline = Date.now() + 6000;
    let res = await api('GET', missingOwner());
    while (res.headers.ratelimit === undefined && Date.now() < deadline) {
      await sleep(150);
      res = await api('GET', missingOwner());
    }
    assert.equal(rateLimitOf(res)['api-key']![0], 1);
    assert.equal((await api('GET', missingOwner())).statusCode, 404);
    assertRateLimited(await api('GET', missingOwner()), ['api-key']);
  });
});

describe('HTTP: embedded mode (in-process counters)', () => {
  let rt: TestRuntime;
  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open(), { AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '3', AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: '0', AGENTICPET_MAX_EVENT_LOOP_DELAY_MS: '0' });
  });
  after(async () => rt?.close());

  it('limits per key with the same fields and answer, and reports only the budgets that are on', async () => {
    const { key } = await rt.newClinic('Embedded clinic');
    const api: Call = client(rt, key);
    for (let i = 0; i < 3; i++) {
      const res = await api('GET', missingOwner());
      assert.equal(res.statusCode, 404);
      assert.equal(res.headers['ratelimit-policy'], '"api-key";q=3;w=60');
      assert.deepEqual(Object.keys(rateLimitOf(res)), ['api-key']);
    }
    const refused = await api('GET', missingOwner());
    const retryAfter = assertRateLimited(refused, ['api-key']);
    assert.ok(retryAfter >= 59, String(retryAfter));
    assert.equal(rateLimitOf(refused)['api-key']![1], retryAfter);
  });
});

describe('rate-limit configuration', () => {
  it('defaults to production budgets that the env vars change, 0 switching one off', () => {
    assert.deepEqual(loadConfig({}).rateLimits, { keyPerMinute: 3000, clinicPerMinute: 12_000 });
    assert.deepEqual(loadConfig({ AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '0', AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: '50' }).rateLimits, { keyPerMinute: 0, clinicPerMinute: 50 });
    assert.throws(() => loadConfig({ AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '-1' }), /AGENTICPET_RATE_LIMIT_KEY_PER_MIN must be a whole number/);
    assert.throws(() => loadConfig({ AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: '1e3' }), /AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN/);
  });
});
