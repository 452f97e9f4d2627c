/**
 * A model-registry change made on one instance reaches another through Redis
 * (src/storage/redis/model-changes.ts): two runtimes, as two hosts, on one PostgreSQL database,
 * one media store and the real Redis under a key prefix of this run. Instance A activates and
 * rolls back; instance B, whose serving set is cached for an hour (so its TTL cannot be what
 * moves it), serves the new version within a bounded time. A third instance on the same database
 * under another key prefix hears nothing and keeps serving what it cached: what moved B is the
 * message on its prefix's channel, not a database read.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { scenePng } from './support/images.js';
import { FakeModelRuntime, FakePreprocessor } from './support/model-runtime.js';
import { adminClient, deleteKeysUnder, redisSkipReason, redisUrl, sleep, testKeyPrefix } from './support/redis.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason, type TestDatabase } from './support/services.js';

/** How long a change may take to reach the other instance (a pub/sub message on loopback takes ~1 ms). */
const BOUND_MS = 2000;
const NAME = 'change-test';

const modelBody = (version: string, sha: string) => ({
  name: NAME,
  version,
  sha256: sha.repeat(64),
  input: { name: 'image', width: 4, height: 4, channels: 3, layout: 'NCHW', mean: [0, 0, 0], std: [1, 1, 1], maxBatch: 4 },
  output: { activation: 'none' },
  labels: [{ label: 'photograph', finding: null, threshold: 0.5, weight: 0 }],
});

describe('registry changes across instances (PostgreSQL + Redis pub/sub)', { skip: pgSkipReason() || redisSkipReason() }, () => {
  const prefix = testKeyPrefix();
  const otherPrefix = testKeyPrefix();
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-model-changes-'));
  let database: TestDatabase;
  const executors: PostgresExecutor[] = [];
  const runtimes: TestRuntime[] = [];
  let onA: Call;
  let onB: Call;
  let onC: Call;
  let mediaId: string;

  const start = async (keyPrefix: string): Promise<TestRuntime> => {
    const db = new PostgresExecutor({ connectionString: database.url, poolMax: 4 });
    executors.push(db);
    const runtime = new FakeModelRuntime().set(NAME, '1.0.1', { rows: () => [0.9] }).set(NAME, '1.0.2', { rows: () => [0.9] });
    const rt = await startRuntime(
      db,
      // One media store for all (as S3 would be), the serving set cached for an hour.
      { REDIS_URL: redisUrl(), REDIS_KEY_PREFIX: keyPrefix, AGENTICPET_DATA_DIR: shared, AGENTICPET_MODEL_CACHE_TTL_MS: '3600000' },
      { modelRuntime: runtime, imagePreprocessor: new FakePreprocessor() },
    );
    runtimes.push(rt);
    return rt;
  };

  /** The version of NAME a diagnosis on this instance was read by. */
  const served = async (call: Call): Promise<string | null> => {
    const res = await call('POST', '/v1/diagnoses', { body: { patient: { species: 'dog' }, complaint: 'limping on the left fore since yesterday', mediaIds: [mediaId] } });
    assert.equal(res.statusCode, 201, res.body);
    const models = res.json().provenance.models as Array<{ name: string; version: string }> | undefined;
    return models?.find((m) => m.name === NAME)?.version ?? null;
  };

  /** Milliseconds until `call` serves `version`; fails after BOUND_MS. */
  const reaches = async (call: Call, version: string): Promise<number> => {
    const t0 = performance.now();
    let last: string | null = null;
    while (performance.now() - t0 < BOUND_MS) {
      last = await served(call);
      if (last === version) return performance.now() - t0;
      await sleep(10);
    }
    assert.fail(`still serving ${last} ${BOUND_MS} ms after the change to ${version}`);
  };

  before(async () => {
    database = await createTestDatabase();
    // One after the other: the first migrates the database.
    const a = await start(prefix);
    const b = await start(prefix);
    const c = await start(otherPrefix);
    const { key } = await a.newClinic('Two-instance clinic');
    [onA, onB, onC] = [client(a, key), client(b, key), client(c, key)];
    const up = await onA('POST', '/v1/media', { raw: await scenePng(), contentType: 'image/png' });
    assert.equal(up.statusCode, 201, up.body);
    mediaId = up.json().id;
    // Every instance's subscriber is on its channel before anything changes.
    const redis = adminClient();
    try {
      const deadline = Date.now() + 5000;
      for (;;) {
        const [, here, , there] = (await redis.call('PUBSUB', 'NUMSUB', `${prefix}:models:changed`, `${otherPrefix}:models:changed`)) as [string, number, string, number];
        if (here === 2 && there === 1) break;
        if (Date.now() > deadline) assert.fail(`subscribers: ${here} on ${prefix}, ${there} on ${otherPrefix}`);
        await sleep(20);
      }
    } finally {
      redis.disconnect();
    }
  });
  after(async () => {
    for (const rt of runtimes) await rt.close();
    await database?.drop();
    await deleteKeysUnder(prefix);
    await deleteKeysUnder(otherPrefix);
    fs.rmSync(shared, { recursive: true, force: true });
  });

  it('an activation and a rollback on one instance are served by the other within the bound; another prefix hears neither', async (t) => {
    assert.equal((await onA('POST', '/v1/models', { body: modelBody('1.0.1', 'a') })).statusCode, 201);
    assert.equal((await onA('POST', '/v1/models', { body: modelBody('1.0.2', 'b') })).statusCode, 201);
    assert.equal((await onA('POST', `/v1/models/${NAME}/versions/1.0.1/activate`)).statusCode, 200);
    // B and C read the serving set now and keep it for an hour unless told otherwise.
    assert.equal(await served(onB), '1.0.1');
    assert.equal(await served(onC), '1.0.1');

    assert.equal((await onA('POST', `/v1/models/${NAME}/versions/1.0.2/activate`)).statusCode, 200);
    const activated = await reaches(onB, '1.0.2');
    assert.equal(await served(onA), '1.0.2', 'the instance that changed it serves the new version at once');
    assert.equal(await served(onC), '1.0.1', 'an instance under another key prefix heard nothing: its cached set stands');

    const back = await onA('POST', `/v1/models/${NAME}/rollback`);
    assert.equal(back.statusCode, 200, back.body);
    const rolledBack = await reaches(onB, '1.0.1');
    assert.equal(await served(onA), '1.0.1');
    t.diagnostic(`instance B served the activated version after ${activated.toFixed(1)} ms, the rolled-back one after ${rolledBack.toFixed(1)} ms`);
  });
});
