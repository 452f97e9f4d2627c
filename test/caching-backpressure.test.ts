/**
 * The L1 key cache (bounded revocation, coalesced lookups, invalidation across instances) and
 * backpressure (503 + Retry-After while the event loop lags, health still answering).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { AccessService, type RevocationBus } from '../src/clinical/access/access.js';
import { Operations } from '../src/clinical/operation.js';
import type { ClinicalStore, Principal, RequestContext } from '../src/clinical/ports.js';
import { createMetrics } from '../src/observability/metrics.js';
import { RedisRevocationBus } from '../src/storage/redis/revocations.js';
import { migrate } from '../src/storage/sql/migrate.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { SqlClinicalStore } from '../src/storage/sql/store.js';
import { redisSkipReason, redisUrl } from './support/redis.js';
import { client, startRuntime, type TestRuntime } from './support/runtime.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts the store's batched key lookups. */
function counting(store: ClinicalStore): { store: ClinicalStore; lookups: Buffer[][] } {
  const lookups: Buffer[][] = [];
  const wrapped = Object.create(store) as ClinicalStore;
  wrapped.findPrincipalsByKeyHashes = (hashes: Buffer[]) => {
    lookups.push(hashes);
    return store.findPrincipalsByKeyHashes(hashes);
  };
  return { store: wrapped, lookups };
}

/** An in-memory bus joining several AccessServices, as Redis or the cluster primary would. */
function memoryBus(): () => RevocationBus {
  const listeners: Array<(id: string) => void> = [];
  return () => ({
    publish: async (id) => listeners.forEach((l) => l(id)),
    onRevoked: (l) => void listeners.push(l),
  });
}

describe('L1 API-key cache', () => {
  let db: PgliteExecutor;
  let store: SqlClinicalStore;
  let admin: { clinicId: string; key: string };
  let adminCtx: RequestContext;

  before(async () => {
    db = await PgliteExecutor.open();
    await migrate(db);
    store = new SqlClinicalStore(db, 'cache-test');
    const plain = new AccessService(store, new Operations(store));
    admin = await plain.createClinic('Cache clinic');
    adminCtx = { principal: await plain.authenticate(`Bearer ${admin.key}`), requestId: 'r', sourceIp: null };
  });
  after(async () => db.close());

  async function newKey(access: AccessService): Promise<{ id: string; key: string }> {
    const created = await access.createKey(adminCtx, { name: `k${randomBytes(3).toString('hex')}`, role: 'vet' });
    const body = created.body as { id: string; key: string };
    return { id: body.id, key: body.key };
  }

  it('serves repeated and concurrent lookups from one query, and counts hits and misses', async () => {
    const { store: s, lookups } = counting(store);
    const registry = new Registry();
    const metrics = createMetrics(registry, { defaultMetrics: false });
    const access = new AccessService(s, new Operations(s), { keyCacheTtlMs: 5000, metrics: metrics.cache });
    const keys = await Promise.all([1, 2, 3].map(() => newKey(access)));
    // 60 concurrent requests with three keys: one batched query for the three.
    const principals = await Promise.all(Array.from({ length: 60 }, (_, i) => access.authenticate(`Bearer ${keys[i % 3]!.key}`)));
    assert.equal(lookups.length, 1, `expected one coalesced lookup, got ${lookups.length}`);
    assert.equal(lookups[0]!.length, 3);
    assert.deepEqual(new Set(principals.map((p: Principal) => p.keyId)), new Set(keys.map((k) => k.id)));
    await access.authenticate(`Bearer ${keys[0]!.key}`);
    assert.equal(lookups.length, 1, 'a later request is served from the cache');
    const text = await registry.metrics();
    const hits = Number(/agenticpet_cache_requests_total\{cache="api_keys",result="hit"\} (\d+)/.exec(text)?.[1]);
    const misses = Number(/agenticpet_cache_requests_total\{cache="api_keys",result="miss"\} (\d+)/.exec(text)?.[1]);
    assert.equal(hits + misses, 61);
    assert.ok(hits >= 58 && misses >= 3, `hits ${hits}, misses ${misses}`);
  });

  it('a key revoked elsewhere without any message stops working within the TTL bound', async () => {
    const ttlMs = 400;
    const access = new AccessService(store, new Operations(store), { keyCacheTtlMs: ttlMs });
    const k = await newKey(access);
    await access.authenticate(`Bearer ${k.key}`);
    // Revoked by "another instance" straight in the database: this one hears nothing.
    await db.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [k.id]);
    const revokedAt = Date.now();
    await access.authenticate(`Bearer ${k.key}`); // still cached: within the bound
    let stoppedAfter = -1;
    while (Date.now() - revokedAt < ttlMs * 3) {
      try {
        await access.authenticate(`Bearer ${k.key}`);
      } catch {
        stoppedAfter = Date.now() - revokedAt;
        break;
      }
      await sleep(20);
    }
    assert.ok(stoppedAfter >= 0, 'the revoked key kept working past the bound');
    assert.ok(stoppedAfter <= ttlMs + 100, `stopped after ${stoppedAfter} ms; bound ${ttlMs} ms`);
  });

  it('a revocation on one instance reaches the others at once through the bus', async () => {
    const bus = memoryBus();
    const a = new AccessService(store, new Operations(store), { keyCacheTtlMs: 5000, revocations: bus() });
    const b = new AccessService(store, new Operations(store), { keyCacheTtlMs: 5000, revocations: bus() });
    const k = await newKey(a);
    await b.authenticate(`Bearer ${k.key}`); // cached on b
    await a.revokeKey(adminCtx, k.id);
    await assert.rejects(() => b.authenticate(`Bearer ${k.key}`), /unknown or revoked/);
    await assert.rejects(() => a.authenticate(`Bearer ${k.key}`), /unknown or revoked/);
  });

  it('unknown keys are refused, and remembered only briefly', async () => {
    const { store: s, lookups } = counting(store);
    const access = new AccessService(s, new Operations(s), { keyCacheTtlMs: 5000 });
    const bogus = `Bearer apk_${randomBytes(32).toString('base64url')}`;
    await Promise.all(Array.from({ length: 20 }, () => assert.rejects(() => access.authenticate(bogus), /unknown or revoked/)));
    await assert.rejects(() => access.authenticate(bogus), /unknown or revoked/);
    assert.equal(lookups.length, 1);
  });
});

describe('key revocations over Redis pub/sub', { skip: redisSkipReason() }, () => {
  it('a revocation published by one instance is heard by another', async () => {
    const prefix = `test-${randomBytes(4).toString('hex')}`;
    const errors: Error[] = [];
    const one = new RedisRevocationBus(redisUrl(), prefix, (e) => errors.push(e));
    const two = new RedisRevocationBus(redisUrl(), prefix, (e) => errors.push(e));
    try {
      const heard: string[] = [];
      two.onRevoked((id) => heard.push(id));
      await sleep(200); // the subscription is in place
      await one.publish('key-123');
      const deadline = Date.now() + 2000;
      while (heard.length === 0 && Date.now() < deadline) await sleep(10);
      assert.deepEqual(heard, ['key-123']);
      assert.deepEqual(errors, []);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe('backpressure', () => {
  let rt: TestRuntime;
  let key: string;

  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open(), { AGENTICPET_MAX_EVENT_LOOP_DELAY_MS: '30' });
    await rt.runtime.app.ready();
    key = (await rt.newClinic()).key;
    await sleep(300); // past the startup sample
  });
  after(async () => rt.close());

  it('answers API requests 503 with Retry-After while the event loop lags, keeps health answering, and recovers', async () => {
    const call = client(rt, key);
    assert.equal((await call('GET', '/v1/patients')).statusCode, 200);
    // Block the loop in 150 ms slices: every lag sample is well past the 30 ms limit.
    const until = Date.now() + 600;
    while (Date.now() < until) {
      const t = Date.now();
      while (Date.now() - t < 150) {
        /* busy */
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const refused = await call('GET', '/v1/patients');
    assert.equal(refused.statusCode, 503);
    assert.equal(refused.headers['retry-after'], '1');
    assert.match(String(refused.headers['content-type']), /application\/problem\+json/);
    assert.equal(refused.json().type, 'urn:agenticpet:problem:overloaded');
    assert.equal((await call('GET', '/healthz')).statusCode, 200);
    const metrics = await call('GET', '/metrics');
    assert.match(metrics.body, /agenticpet_overload_rejections_total\{reason="event_loop_delay"\} [1-9]/);
    await sleep(400);
    assert.equal((await call('GET', '/v1/patients')).statusCode, 200);
  });
});

describe('L1 session metadata', () => {
  it('answers from memory within its TTL, asks the session tier after it, and never caches a missing session', async () => {
    const { SessionMetaCache } = await import('../src/clinical/diagnoses/session-meta-cache.js');
    const lookups: boolean[] = [];
    const cache = new SessionMetaCache({ ttlMs: 150, metrics: { cacheLookup: (_c, hit) => lookups.push(hit) } });
    const meta = { id: 'cs_1', clinicId: 'c1', patientId: 'p1', createdAt: 't', updatedAt: 't' };
    let reads = 0;
    let stored: typeof meta | null = meta;
    const tier = { meta: async () => (reads++, stored) };
    assert.deepEqual(await cache.lookup(tier, 'c1', 'cs_1'), meta);
    assert.deepEqual(await cache.lookup(tier, 'c1', 'cs_1'), meta);
    assert.equal(reads, 1);
    stored = null; // the session has gone from the tier; L1 still knows it for up to its TTL
    assert.equal(await cache.lookup(tier, 'c2', 'cs_1'), null, "another clinic's key is a different entry");
    assert.equal(reads, 2);
    assert.deepEqual(await cache.lookup(tier, 'c1', 'cs_1'), meta);
    assert.equal(reads, 2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await cache.lookup(tier, 'c1', 'cs_1'), null, 'expired from L1: the tier says it is gone');
    assert.equal(await cache.lookup(tier, 'c1', 'cs_1'), null);
    assert.equal(reads, 4, 'a missing session is asked for every time');
    assert.deepEqual(lookups, [false, true, false, true, false, false]);
  });
});
