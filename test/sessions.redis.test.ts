import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { Counter, Registry } from 'prom-client';
import { MemorySessionStore } from '../src/storage/sessions/memory.js';
import { FAIL_FAST_REDIS_OPTIONS, RedisSessionStore, sessionKeys } from '../src/storage/redis/sessions.js';
import { FALLBACK_COUNTER, ResilientSessionStore, type SessionOperation } from '../src/storage/sessions/resilient.js';
import { message, newMeta, sessionStoreContract, step } from './contract/sessions.contract.js';
import { adminClient, deleteKeysUnder, keysUnder, RedisProxy, redisSkipReason, redisUrl, sleep, testKeyPrefix } from './support/redis.js';

// ioredis routes cluster commands with this package; the test uses it to check the key layout.
const calculateSlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

const skip = redisSkipReason();
const run = testKeyPrefix();
/** Nothing listens there: connections are refused at once. */
const DEAD_REDIS = 'redis://127.0.0.1:1';
const TTL = 60;

after(async () => {
  if (skip === false) await deleteKeysUnder(run);
});

/** The store's connection is up before the first test: it fails fast rather than queueing. */
async function openRedisStore(prefix: string): Promise<RedisSessionStore> {
  const store = new RedisSessionStore(redisUrl(), prefix);
  try {
    await store.ping();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

async function fallbackCount(registry: Registry, operation: SessionOperation): Promise<number> {
  const metric = registry.getSingleMetric(FALLBACK_COUNTER);
  assert.ok(metric instanceof Counter, `${FALLBACK_COUNTER} is registered`);
  const { values } = await metric.get();
  return values.find((v) => v.labels.operation === operation)?.value ?? 0;
}

async function timed<T>(limitMs: number, what: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await fn();
  const took = performance.now() - started;
  assert.ok(took < limitMs, `${what} took ${Math.round(took)} ms, limit ${limitMs} ms`);
  return result;
}

sessionStoreContract(
  'Redis',
  async () => {
    const prefix = `${run}:contract`;
    const store = await openRedisStore(prefix);
    return {
      store,
      cleanup: async () => {
        await store.close();
        await deleteKeysUnder(prefix);
      },
    };
  },
  { skip },
);

sessionStoreContract(
  'resilient: Redis primary, in-process fallback',
  async () => {
    const prefix = `${run}:resilient`;
    const store = new ResilientSessionStore(await openRedisStore(prefix), new MemorySessionStore());
    return {
      store,
      cleanup: async () => {
        await store.close();
        await deleteKeysUnder(prefix);
      },
    };
  },
  { skip },
);

// Needs no Redis at all: the primary never answers, so every call is served by the fallback.
sessionStoreContract('resilient: Redis unreachable, served in-process', async () => {
  const store = new ResilientSessionStore(new RedisSessionStore(DEAD_REDIS, run), new MemorySessionStore());
  return { store, cleanup: () => store.close() };
});

describe('Redis session store: batching and key layout', { skip }, () => {
  const prefix = `${run}:layout`;
  let client: Redis;
  let store: RedisSessionStore;
  let admin: Redis;

  after(async () => {
    await store?.close();
    admin?.disconnect();
  });

  it('opens', async () => {
    client = new Redis(redisUrl(), FAIL_FAST_REDIS_OPTIONS);
    store = new RedisSessionStore(client, prefix);
    await store.ping();
    admin = adminClient();
    await admin.connect();
  });

  it('makes create, write and get one round trip each: one socket write, one atomic batch', async () => {
    const monitor = await admin.monitor();
    const port = `:${client.stream.localPort}`;
    const seen: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source.endsWith(port)) seen.push(args);
    });
    const socket = client.stream;
    const write = socket.write;
    let writes = 0;
    socket.write = function (this: typeof socket, ...args: unknown[]) {
      writes++;
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof write;
    const roundTrips = async (fn: () => Promise<unknown>): Promise<number> => {
      const before = writes;
      await fn();
      return writes - before;
    };
    const meta = newMeta();
    const batch = { inputs: ['a', 'b'], steps: [step(1), step(2)], messages: [message(1)] };
    const getTx = ['multi', 'hgetall', 'lrange', 'lrange', 'lrange', ...Array<string>(4).fill('pexpire'), 'exec'];
    const oneShot = newMeta();
    // create and write are one script call each (create with a first batch too); get is one MULTI.
    const expected = ['eval', 'eval', 'eval', 'eval', ...getTx, ...getTx, 'eval'];
    try {
      assert.equal(await roundTrips(() => store.create(meta, TTL)), 1, 'create');
      assert.equal(await roundTrips(() => store.write(meta.clinicId, meta.id, batch, TTL)), 1, 'first write (sends the script)');
      assert.equal(await roundTrips(() => store.write(meta.clinicId, meta.id, batch, TTL)), 1, 'write');
      assert.equal(await roundTrips(() => store.write(meta.clinicId, 'missing', batch, TTL)), 1, 'write to a missing session');
      assert.equal(await roundTrips(() => store.get(meta.clinicId, meta.id, TTL)), 1, 'get');
      assert.equal(await roundTrips(() => store.get(meta.clinicId, 'missing', TTL)), 1, 'get of a missing session');
      assert.equal(await roundTrips(() => store.create(oneShot, TTL, batch)), 1, 'create with a first batch (a one-shot diagnosis)');
      // What the server saw from this connection: one script per create and write, MULTI...EXEC per get.
      for (let i = 0; i < 40 && seen.length < expected.length; i++) await sleep(50);
      assert.deepEqual(
        seen.map((args) => args[0]!.toLowerCase().replace('evalsha', 'eval')),
        expected,
      );
    } finally {
      socket.write = write;
      monitor.disconnect();
    }
  });

  it('keeps working after Redis forgets its scripts (a restart or a failover to a replica)', async () => {
    const first = newMeta();
    await store.create(first, TTL, { steps: [step(1)] });
    assert.equal(await store.write(first.clinicId, first.id, { inputs: ['loaded'] }, TTL), true);
    await admin.script('FLUSH');
    const oneShot = newMeta();
    await store.create(oneShot, TTL, { inputs: ['a'], steps: [step(1), step(2, 'plan')], messages: [message(1)] });
    const s = await store.get(oneShot.clinicId, oneShot.id, TTL);
    assert.deepEqual(s?.chain.map((x) => x.seq), [1, 2]);
    assert.deepEqual(s?.inputs, ['a']);
    await admin.script('FLUSH');
    assert.equal(await store.write(first.clinicId, first.id, { inputs: ['after flush'] }, TTL), true);
    assert.deepEqual((await store.get(first.clinicId, first.id, TTL))?.inputs, ['loaded', 'after flush']);
  });

  it('keeps every key of a session in one cluster slot, under the prefix and the hash tag', async () => {
    const meta = newMeta();
    await store.create(meta, TTL);
    await store.write(meta.clinicId, meta.id, { inputs: [1], steps: [step(1)], messages: [message(1)] }, TTL);
    const expected = sessionKeys(prefix, meta.clinicId, meta.id);
    assert.equal(expected.meta, `${prefix}:{${meta.clinicId}:${meta.id}}:meta`);
    const stored = (await keysUnder(admin, prefix)).filter((k) => k.includes(meta.id));
    assert.deepEqual(stored, Object.values(expected).sort());
    assert.equal(new Set(stored.map(calculateSlot)).size, 1, 'all keys of one session share a slot');
    const types = await Promise.all(Object.values(expected).map((k) => admin.type(k)));
    assert.deepEqual(types, ['hash', 'list', 'list', 'list']);
    for (const k of stored) {
      const ttl = await admin.pttl(k);
      assert.ok(ttl > 0 && ttl <= TTL * 1000, `${k} expires (pttl ${ttl})`);
    }
    // Braces or colons in an id cannot end the hash tag early or mix two sessions up.
    const odd = sessionKeys(prefix, 'clinic}{x', 'a:b}');
    assert.equal(new Set(Object.values(odd).map(calculateSlot)).size, 1);
    assert.notEqual(sessionKeys(prefix, 'a:b', 'c').meta, sessionKeys(prefix, 'a', 'b:c').meta);
    assert.throws(() => new RedisSessionStore(client, 'ap{x}'), /must not contain/);
  });
});

describe('resilient session store: falling back to memory', () => {
  it('keeps create, get and write working while Redis is unreachable, reporting and counting it, fast', async () => {
    const registry = new Registry();
    const errors: SessionOperation[] = [];
    const store = new ResilientSessionStore(new RedisSessionStore(DEAD_REDIS, run), new MemorySessionStore(), {
      registry,
      onPrimaryError: (_err, op) => errors.push(op),
      primaryRetryAfterMs: 0,
    });
    try {
      const request = store.withTracking();
      assert.equal(request.degraded, false);
      const meta = newMeta();
      await timed(1_000, 'create', () => request.create(meta, TTL));
      assert.equal(request.degraded, true);
      assert.equal(await timed(1_000, 'write', () => request.write(meta.clinicId, meta.id, { inputs: ['limping'], steps: [step(1, 'triage', 'urgent')] }, TTL)), true);
      const state = await timed(1_000, 'get', () => request.get(meta.clinicId, meta.id, TTL));
      assert.deepEqual(state?.inputs, ['limping']);
      assert.deepEqual(state?.results, { triage: 'urgent' });
      await timed(1_000, 'ping', () => request.ping());
      assert.deepEqual(request.fallbackOperations, ['create', 'write', 'get', 'ping']);
      assert.deepEqual(errors, ['create', 'write', 'get', 'ping'], 'every call tried the primary first');
      for (const op of ['create', 'write', 'get', 'ping'] as const) assert.equal(await fallbackCount(registry, op), 1, op);
      // Another request's view starts clean; the store itself answers without a view too.
      const other = store.withTracking();
      assert.equal(other.degraded, false);
      assert.equal(await store.write(meta.clinicId, meta.id, { inputs: ['second'] }, TTL), true);
      assert.equal(await fallbackCount(registry, 'write'), 2);
      assert.equal(other.degraded, false);
      // A miss is still a miss, and reported as served by the fallback (Redis could not say).
      assert.equal(await other.get(meta.clinicId, 'no-such-session', TTL), null);
      assert.equal(other.degraded, true);
    } finally {
      await store.close();
    }
  });

  it('skips a failed primary for a while, so a hung Redis costs one timeout, not one per call', { skip }, async () => {
    const proxy = new RedisProxy();
    await proxy.start();
    const primary = new RedisSessionStore(proxy.url, `${run}:hung`);
    const store = new ResilientSessionStore(primary, new MemorySessionStore(), { primaryRetryAfterMs: 5_000 });
    try {
      await primary.ping();
      proxy.freeze();
      const request = store.withTracking();
      const meta = newMeta();
      // The command times out (500 ms) and the fallback serves it.
      await timed(1_000, 'create against a hung Redis', () => request.create(meta, TTL));
      assert.equal(request.degraded, true);
      await timed(50, 'get while the primary is skipped', () => request.get(meta.clinicId, meta.id, TTL));
      await timed(50, 'write while the primary is skipped', () => request.write(meta.clinicId, meta.id, { inputs: [1] }, TTL));
      assert.deepEqual(request.fallbackOperations, ['create', 'get', 'write']);
    } finally {
      proxy.thaw();
      await store.close();
      await proxy.stop();
    }
  });

  it('reports nothing when Redis answers, and keeps the sessions in Redis', { skip }, async () => {
    const prefix = `${run}:healthy`;
    const registry = new Registry();
    const store = new ResilientSessionStore(await openRedisStore(prefix), new MemorySessionStore(), { registry });
    const admin = adminClient();
    try {
      const request = store.withTracking();
      const meta = newMeta();
      await request.create(meta, TTL);
      assert.equal(await request.write(meta.clinicId, meta.id, { inputs: ['x'] }, TTL), true);
      assert.deepEqual((await request.get(meta.clinicId, meta.id, TTL))?.inputs, ['x']);
      assert.equal(await request.get(meta.clinicId, 'missing', TTL), null);
      assert.equal(await request.write(meta.clinicId, 'missing', { inputs: ['x'] }, TTL), false);
      await request.ping();
      assert.equal(request.degraded, false);
      assert.deepEqual(request.fallbackOperations, []);
      for (const op of ['create', 'write', 'get', 'ping'] as const) assert.equal(await fallbackCount(registry, op), 0, op);
      assert.equal(await admin.exists(sessionKeys(prefix, meta.clinicId, meta.id).meta), 1);
    } finally {
      admin.disconnect();
      await store.close();
    }
  });

  it('lets requests made while the first connection is being set up wait for it, not fall back', { skip }, async () => {
    const prefix = `${run}:starting`;
    const store = new ResilientSessionStore(new RedisSessionStore(redisUrl(), prefix), new MemorySessionStore());
    try {
      const request = store.withTracking();
      const meta = newMeta();
      await request.create(meta, TTL);
      assert.notEqual(await request.get(meta.clinicId, meta.id, TTL), null);
      assert.equal(request.degraded, false);
    } finally {
      await store.close();
    }
  });

  it('serves sessions made during an outage from memory, and sends new sessions back to Redis once it returns', { skip }, async () => {
    const prefix = `${run}:outage`;
    const proxy = new RedisProxy();
    await proxy.start();
    const primary = new RedisSessionStore(proxy.url, prefix);
    const store = new ResilientSessionStore(primary, new MemorySessionStore(), { primaryRetryAfterMs: 100 });
    const admin = adminClient();
    const inRedis = async (m: { clinicId: string; id: string }) => (await admin.exists(sessionKeys(prefix, m.clinicId, m.id).meta)) === 1;
    try {
      await primary.ping();
      const before = newMeta();
      const r1 = store.withTracking();
      await r1.create(before, TTL);
      assert.equal(r1.degraded, false);
      assert.equal(await inRedis(before), true);

      await proxy.stop();
      for (let i = 0; i < 40 && primary.client.status === 'ready'; i++) await sleep(25);
      const during = newMeta();
      const r2 = store.withTracking();
      await timed(1_000, 'create during the outage', () => r2.create(during, TTL));
      assert.equal(await r2.write(during.clinicId, during.id, { inputs: ['made while Redis was down'] }, TTL), true);
      assert.deepEqual((await r2.get(during.clinicId, during.id, TTL))?.inputs, ['made while Redis was down']);
      assert.equal(await r2.get(before.clinicId, before.id, TTL), null, 'a Redis session is out of reach while Redis is down');
      assert.equal(r2.degraded, true);
      assert.equal(await inRedis(during), false);

      await proxy.start();
      let back = false;
      for (let i = 0; i < 100 && !back; i++) {
        await sleep(50);
        back = await primary.ping().then(
          () => true,
          () => false,
        );
      }
      assert.ok(back, 'the client reconnects once Redis is back');
      await sleep(150);
      const r3 = store.withTracking();
      const after = newMeta();
      await r3.create(after, TTL);
      assert.notEqual(await r3.get(before.clinicId, before.id, TTL), null);
      assert.equal(r3.degraded, false, 'new sessions and Redis sessions are served by Redis again');
      assert.equal(await inRedis(after), true);
      assert.deepEqual((await r3.get(during.clinicId, during.id, TTL))?.inputs, ['made while Redis was down']);
      assert.equal(await r3.write(during.clinicId, during.id, { inputs: ['still here'] }, TTL), true);
      assert.deepEqual(r3.fallbackOperations, ['get', 'write'], 'the session made during the outage still lives in memory');
    } finally {
      admin.disconnect();
      await store.close();
      await proxy.stop();
    }
  });
});
