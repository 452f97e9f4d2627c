/**
 * A primary that vanishes or turns read-only, without Patroni: the service answers 503
 * problem+json with Retry-After meanwhile, writes nothing half-way, and recovers by itself once a
 * writable primary is reachable again — no restart. Two TCP proxies in front of the test server
 * stand in for two hosts of a multi-host DATABASE_URL (scripts/drills/failover.ts runs the real
 * thing on Patroni); a database made read-only stands in for a demoted primary.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { StorageUnavailableError } from '../src/clinical/errors.js';
import { migrate } from '../src/storage/sql/migrate.js';
import { parseHosts } from '../src/storage/sql/primary.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { CuttableProxy } from './support/proxy.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason, type TestDatabase } from './support/services.js';

const CASE = {
  patient: { species: 'dog', breed: 'Beagle', ageYears: 6, sex: 'female', neutered: true, weightKg: 12 },
  complaint: 'vomiting since yesterday, will not eat, lethargic',
};

describe('multi-host DATABASE_URL parsing', () => {
  it('splits libpq host lists into one single-host URL each, keeping credentials, database and options', () => {
    assert.deepEqual(parseHosts('postgres://app:s3cret@10.0.0.1:5432,10.0.0.2:5433,[::1]:5434/clinic?target_session_attrs=read-write'), [
      { label: '10.0.0.1:5432', url: 'postgres://app:s3cret@10.0.0.1:5432/clinic?target_session_attrs=read-write' },
      { label: '10.0.0.2:5433', url: 'postgres://app:s3cret@10.0.0.2:5433/clinic?target_session_attrs=read-write' },
      { label: '[::1]:5434', url: 'postgres://app:s3cret@[::1]:5434/clinic?target_session_attrs=read-write' },
    ]);
    assert.deepEqual(parseHosts('postgresql://db.internal/agenticpet'), [{ label: 'db.internal', url: 'postgresql://db.internal/agenticpet' }]);
  });
});

describe('failover (PostgreSQL behind two proxies)', { skip: pgSkipReason() }, () => {
  let database: TestDatabase;
  let first: CuttableProxy;
  let second: CuttableProxy;
  let rt: TestRuntime;
  let api: Call;
  const primaries: string[] = [];

  const admin = async <R extends pg.QueryResultRow>(sql: string): Promise<R[]> => {
    const c = new pg.Client({ connectionString: database.url });
    await c.connect();
    try {
      // The test's own session stays writable while the database it plays with is read-only.
      await c.query('SET default_transaction_read_only = off');
      return (await c.query<R>(sql)).rows;
    } finally {
      await c.end();
    }
  };
  const diagnosisCount = async () => Number((await admin<{ n: string }>('SELECT count(*) AS n FROM diagnoses'))[0]!.n);
  const expect503 = (res: Awaited<ReturnType<Call>>, retryAfter: string) => {
    assert.equal(res.statusCode, 503, res.body);
    assert.match(String(res.headers['content-type']), /problem\+json/);
    assert.equal(res.headers['retry-after'], retryAfter);
    assert.equal(res.json().type, 'urn:agenticpet:problem:storage-unavailable');
  };

  before(async () => {
    database = await createTestDatabase();
    const url = new URL(database.url);
    const target = { host: url.hostname, port: Number(url.port || 5432) };
    first = new CuttableProxy(target);
    second = new CuttableProxy(target);
    await first.up();
    await second.up();
    const multi = `postgres://${url.username}@127.0.0.1:${first.port},127.0.0.1:${second.port}${url.pathname}?target_session_attrs=read-write`;
    rt = await startRuntime(new PostgresExecutor({ connectionString: multi, poolMax: 4, onPrimary: (h) => primaries.push(h) }));
    api = client(rt, (await rt.newClinic()).key);
  });
  after(async () => {
    await admin(`ALTER DATABASE ${database.name} RESET default_transaction_read_only`).catch(() => undefined);
    await rt?.close();
    await first?.down();
    await second?.down();
    await database?.drop();
  });

  it('takes the first writable host, and follows the primary to the next host when it vanishes', async () => {
    assert.equal((await api('POST', '/v1/diagnoses', { body: CASE })).statusCode, 201);
    assert.deepEqual(primaries, [`127.0.0.1:${first.port}`]);
    const before = await diagnosisCount();
    await first.down();
    // The pool's connections die with the host: this request fails, and nothing of it is written.
    expect503(await api('POST', '/v1/diagnoses', { body: CASE }), '5');
    assert.equal(await diagnosisCount(), before);
    // The next one finds the other host by itself (after the probe throttle at most).
    let res = await api('POST', '/v1/diagnoses', { body: CASE });
    for (let i = 0; i < 20 && res.statusCode === 503; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await api('POST', '/v1/diagnoses', { body: CASE });
    }
    assert.equal(res.statusCode, 201, res.body);
    assert.equal((await api('GET', `/v1/diagnoses/${res.json().id}`)).statusCode, 200);
    assert.deepEqual(primaries, [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`]);
    await first.up();
  });

  it('a read-only primary (demoted) gets 503 with Retry-After, its connections dropped, then recovery', async () => {
    const before = await diagnosisCount();
    // What a demotion looks like from the client: the server restarts read-only, so the pooled
    // connections are terminated (57P01) and new ones refuse writes (25006).
    await admin(`ALTER DATABASE ${database.name} SET default_transaction_read_only = on`);
    await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${database.name}' AND pid <> pg_backend_pid()`);
    const during = [];
    for (let i = 0; i < 5; i++) {
      during.push(await api('POST', '/v1/diagnoses', { body: CASE }));
      await new Promise((r) => setTimeout(r, 60));
    }
    for (const res of during) expect503(res, res.headers['retry-after'] === '1' ? '1' : '5');
    // Once a connection meets the read-only server (25006), or the probe finds no writable host,
    // the client is told to come back sooner than after a plain outage: a failover is under way.
    assert.ok(
      during.some((r) => r.headers['retry-after'] === '1'),
      during.map((r) => r.headers['retry-after']).join(','),
    );
    assert.equal((await api('GET', '/readyz')).statusCode, 503);
    assert.equal(await diagnosisCount(), before, 'nothing was written while read-only');

    await admin(`ALTER DATABASE ${database.name} RESET default_transaction_read_only`);
    let res = await api('POST', '/v1/diagnoses', { body: CASE });
    for (let i = 0; i < 20 && res.statusCode === 503; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await api('POST', '/v1/diagnoses', { body: CASE });
    }
    assert.equal(res.statusCode, 201, res.body);
    assert.equal((await api('GET', '/readyz')).statusCode, 200);
  });

  it('a primary lost under concurrent writes: every batch fails whole (503) or commits whole; every 201 reads back', async () => {
    const verifyBefore = await rt.runtime.store.verifyAudit();
    assert.equal(verifyBefore.ok, true);
    const pending = Array.from({ length: 40 }, () => api('POST', '/v1/diagnoses', { body: CASE }));
    setTimeout(() => void second.down(), 3);
    const results = await Promise.all(pending);
    assert.ok(
      results.every((r) => r.statusCode === 201 || r.statusCode === 503),
      results.map((r) => r.statusCode).join(','),
    );
    for (const r of results.filter((x) => x.statusCode === 503)) assert.ok(r.headers['retry-after'] !== undefined);
    let probe = await api('GET', '/readyz');
    for (let i = 0; i < 20 && probe.statusCode !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      probe = await api('GET', '/readyz');
    }
    assert.equal(probe.statusCode, 200, 'back on the first host');
    for (const r of results.filter((x) => x.statusCode === 201)) {
      assert.equal((await api('GET', `/v1/diagnoses/${r.json().id}`)).statusCode, 200, 'an acknowledged diagnosis is stored');
    }
    // No report without its evidence and audit trail: the audit chain verifies end to end.
    const verified = await rt.runtime.store.verifyAudit();
    assert.equal(verified.ok, true, JSON.stringify(verified.failure));
    await second.up();
  });
});

describe('group commit when the primary turns read-only mid-batch', { skip: pgSkipReason() }, () => {
  it('rejects every unit of the batch with StorageUnavailableError (503) and commits none of them', async () => {
    const database = await createTestDatabase();
    // poolMax 2: one connection for clinic transactions, so queued units share one batch.
    const batches: number[] = [];
    const db = new PostgresExecutor({ connectionString: database.url, poolMax: 2, onBatch: (n) => batches.push(n) });
    try {
      await migrate(db);
      await db.query('CREATE TABLE failover_probe (v int)');
      await db.query('GRANT INSERT, SELECT ON failover_probe TO agenticpet_app');
      const clinicId = uuidv7();
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const blocker = db.transaction(() => held, { clinicId });
      while (db.group.inFlight === 0) await new Promise((r) => setTimeout(r, 5));
      // Unit 3 meets a read-only transaction (25006), as every write does on a demoted primary;
      // units 1 and 2 have already written in the shared transaction, unit 4 never runs.
      const units = [1, 2, 3, 4].map((v) =>
        db.transaction(
          async (tx) => {
            if (v === 3) await tx.exec('SET TRANSACTION READ ONLY');
            await tx.query('INSERT INTO failover_probe (v) VALUES ($1)', [v]);
          },
          { clinicId },
        ),
      );
      release();
      await blocker;
      const results = await Promise.allSettled(units);
      assert.deepEqual(batches.slice(-1), [4], 'the four units shared one transaction');
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        assert.ok((r as PromiseRejectedResult).reason instanceof StorageUnavailableError, String((r as PromiseRejectedResult).reason));
      }
      assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM failover_probe'))[0]!.n, 0, 'nothing of the batch was committed');
      // The connection that met the read-only transaction was destroyed; the next one works.
      await db.transaction((tx) => tx.query('INSERT INTO failover_probe (v) VALUES (5)'), { clinicId });
      assert.deepEqual(await db.query('SELECT v FROM failover_probe'), [{ v: 5 }]);
    } finally {
      await db.close();
      await database.drop();
    }
  });
});
