/**
 * Storage outages: PostgreSQL behind a TCP proxy that the test cuts and restores. While it is
 * down the API answers 503 problem+json with Retry-After, writes nothing, and the process lives on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { CuttableProxy } from './support/proxy.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason, type TestDatabase } from './support/services.js';

describe('storage outage (PostgreSQL)', { skip: pgSkipReason() }, () => {
  let database: TestDatabase;
  let proxy: CuttableProxy;
  let rt: TestRuntime;
  let api: Call;
  let ownerId: string;

  const countRows = async () => {
    const c = new pg.Client({ connectionString: database.url });
    await c.connect();
    const { rows } = await c.query('SELECT (SELECT count(*) FROM patients)::int AS p, (SELECT count(*) FROM record_versions)::int AS v, (SELECT count(*) FROM audit_events)::int AS a');
    await c.end();
    return rows[0];
  };

  before(async () => {
    database = await createTestDatabase();
    const url = new URL(database.url);
    proxy = new CuttableProxy({ host: url.hostname, port: Number(url.port || 5432) });
    await proxy.up();
    url.port = String(proxy.port);
    rt = await startRuntime(new PostgresExecutor({ connectionString: url.toString(), poolMax: 4 }));
    api = client(rt, (await rt.newClinic()).key);
    ownerId = (await api('POST', '/v1/owners', { body: { name: 'Before outage' } })).json().id;
  });
  after(async () => {
    await proxy?.up();
    await rt?.close();
    await proxy?.down();
    await database?.drop();
  });

  it('answers 503 with Retry-After while storage is down, writes nothing, and recovers', async () => {
    const before = await countRows();
    await proxy.down();
    const body = { name: 'During outage', species: 'dog', sex: 'male', neutered: false, ownerId };
    for (const res of [await api('POST', '/v1/patients', { body }), await api('GET', `/v1/owners/${ownerId}`)]) {
      assert.equal(res.statusCode, 503, res.body);
      assert.match(String(res.headers['content-type']), /problem\+json/);
      assert.equal(res.headers['retry-after'], '5');
    }
    // Auth itself needs storage, so even an unknown key gets 503 rather than a false 401.
    assert.equal((await client(rt, 'apk_unknownunknownunknownunknown')('GET', '/v1/patients')).statusCode, 503);
    assert.equal((await api('GET', '/readyz')).statusCode, 503);
    assert.equal((await api('GET', '/healthz')).statusCode, 200, 'the process itself is up');
    await proxy.up();
    assert.deepEqual(await countRows(), before, 'nothing was half-written');
    assert.equal((await api('GET', '/readyz')).statusCode, 200);
    assert.equal((await api('POST', '/v1/patients', { body })).statusCode, 201);
  });

  it('a connection cut in the middle of a transaction loses nothing committed and leaves nothing partial', async () => {
    const before = await countRows();
    const body = { name: 'Mid-cut', species: 'cat', sex: 'female', neutered: true, ownerId };
    const pending = Array.from({ length: 10 }, () => api('POST', '/v1/patients', { body }));
    setTimeout(() => void proxy.down(), 5);
    const results = await Promise.all(pending);
    await proxy.up();
    const created = results.filter((r) => r.statusCode === 201).length;
    assert.ok(results.every((r) => r.statusCode === 201 || r.statusCode === 503), results.map((r) => r.statusCode).join(','));
    const afterCut = await countRows();
    // Every acknowledged create is durable; any extra would be a commit whose reply was lost.
    assert.ok(afterCut.p - before.p >= created);
    assert.equal(afterCut.v - before.v, afterCut.p - before.p, 'each patient has exactly its version row');
    const verified = await rt.runtime.store.verifyAudit();
    assert.equal(verified.ok, true, JSON.stringify(verified.failure));
  });
});
