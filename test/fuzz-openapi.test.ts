/**
 * Fuzzing every operation of the OpenAPI document (issue 14 §3), embedded (PGlite). A few
 * thousand requests generated from the document (test/support/fuzz.ts) with a fixed seed: no
 * answer is a 5xx, every answer from 400 up is problem+json, the heap after GC stays bounded,
 * and the process keeps serving. A failing request is shrunk by fast-check and reported with
 * the seed and path to replay it (FUZZ_SEED / FUZZ_REQUESTS override the defaults).
 *
 * Below, the regressions the fuzzer found, each pinned to its exact answer, on both backends.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { EARLIEST_INSTANT, LATEST_INSTANT, storableDate, storableDateTime } from '../src/contract/formats.js';
import type { SqlExecutor } from '../src/storage/sql/executor.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { contractViolation, formatStats, fuzzKeys, injectSender, runFuzz, socketSender } from './support/fuzz-run.js';
import { type FuzzKey } from './support/fuzz.js';
import { operationsOf, type OpenApiDoc } from './support/openapi.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261207);
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 2000);
/** Heap growth allowed (after GC, from the first sample to the last): far below a per-request leak. */
const HEAP_BOUND_MB = 16;
/**
 * Load shedding off: the heap samples force full GCs, which stall the event loop past the 503
 * threshold on a busy machine, and a 503 "overloaded" then says nothing about the request (the
 * shedding has tests of its own, test/caching-backpressure.test.ts). Any 503 here is a defect.
 */
const FUZZ_ENV = { AGENTICPET_MAX_EVENT_LOOP_DELAY_MS: '0' };

describe('fuzz: every operation of the OpenAPI document (PGlite)', () => {
  let rt: TestRuntime;
  let doc: OpenApiDoc;
  let keys: FuzzKey[];
  let admin: Call;

  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open(), FUZZ_ENV);
    doc = (await rt.runtime.app.inject({ method: 'GET', url: '/openapi.json' })).json() as OpenApiDoc;
    const adminKey = (await rt.newClinic('Fuzz clinic')).key;
    admin = client(rt, adminKey);
    keys = await fuzzKeys(injectSender(rt.runtime.app), adminKey, (await rt.newClinic('Bystander clinic')).key);
  });
  after(async () => {
    await rt?.close();
  });

  it(`${REQUESTS} generated requests (seed ${SEED}): no 5xx, problem+json from 400 up, a bounded heap`, async (t) => {
    const stats = await runFuzz({ doc, keys, send: injectSender(rt.runtime.app), requests: REQUESTS, seed: SEED, stopOnFailure: true, heapEvery: 500 });
    t.diagnostic(formatStats(stats));
    assert.equal(stats.serverErrors, 0);
    assert.deepEqual(stats.failures, []);
    // Every operation of the document was exercised, and valid-ish requests got through to
    // the handlers (a generator that only produced 400s would prove little).
    const labels = operationsOf(doc).map((op) => op.label);
    assert.deepEqual(labels.filter((l) => !stats.byRoute.has(l)), [], 'operations never requested');
    const answered = (label: string, low: number, high: number) => [...(stats.byRoute.get(label) ?? new Map<number, number>()).entries()].some(([s, n]) => s >= low && s < high && n > 0);
    const reachedHandlers = labels.filter((l) => answered(l, 200, 300) || answered(l, 404, 405) || answered(l, 409, 410) || answered(l, 412, 413) || answered(l, 422, 423));
    assert.ok(reachedHandlers.length >= labels.length - 2, `operations whose handler was reached: ${reachedHandlers.length} of ${labels.length}`);
    const ok = [...stats.statuses.entries()].filter(([s]) => s < 300).reduce((a, [, n]) => a + n, 0);
    assert.ok(ok > REQUESTS * 0.15, `${ok} 2xx answers of ${REQUESTS}`);
    const first = stats.heap[0]!;
    const last = stats.heap[stats.heap.length - 1]!;
    t.diagnostic(`heap after GC: ${first.heapUsedMb} MB at ${first.requests} requests, ${last.heapUsedMb} MB at ${last.requests} (bound +${HEAP_BOUND_MB} MB)`);
    assert.ok(last.heapUsedMb - first.heapUsedMb < HEAP_BOUND_MB, `heap grew ${(last.heapUsedMb - first.heapUsedMb).toFixed(1)} MB`);
    assert.equal((await admin('GET', '/v1/patients?limit=1')).statusCode, 200, 'still serving');
  });

  it('generated requests over a real socket too: no 5xx, problem+json from 400 up', async (t) => {
    await rt.runtime.app.listen({ port: 0, host: '127.0.0.1' });
    const port = (rt.runtime.app.server.address() as net.AddressInfo).port;
    const stats = await runFuzz({ doc, keys, send: socketSender(port), requests: 200, seed: SEED + 1, stopOnFailure: true });
    t.diagnostic(formatStats(stats).split('\n').slice(0, 2).join('\n'));
    assert.equal(stats.requests, 200);
    assert.deepEqual(stats.failures, []);
  });
});

/** A raw exchange on a socket: what the server wrote before it closed. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('close', () => resolve(text));
    socket.on('error', () => resolve(text));
    setTimeout(() => socket.destroy(), 5000).unref();
  });
}

function regressionSuite(name: string, open: () => Promise<{ db: SqlExecutor; cleanup(): Promise<void> }>, skip: string | false): void {
  describe(`fuzz regressions (${name})`, { skip }, () => {
    let rt: TestRuntime;
    let cleanup: (() => Promise<void>) | undefined;
    let admin: Call;
    let owner: string;
    let patient: string;

    const problemOf = (res: { statusCode: number; headers: Record<string, unknown>; body: string }, status: number, type: string): void => {
      assert.equal(res.statusCode, status, res.body);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      const body = JSON.parse(res.body) as { type: string; status: number };
      assert.equal(body.type, `urn:agenticpet:problem:${type}`);
      assert.equal(body.status, status);
    };

    before(async () => {
      const opened = await open();
      cleanup = opened.cleanup;
      rt = await startRuntime(opened.db);
      admin = client(rt, (await rt.newClinic('Regression clinic')).key);
      owner = (await admin('POST', '/v1/owners', { body: { name: 'Owner' } })).json().id;
      patient = (await admin('POST', '/v1/patients', { body: { name: 'Rex', species: 'dog', sex: 'male', neutered: false, ownerId: owner } })).json().id;
    });
    after(async () => {
      await rt?.close();
      await cleanup?.();
    });

    it('a lone UTF-16 surrogate in a body string or key is 400, not a jsonb 500; a surrogate pair is stored', async () => {
      for (const raw of ['{"name":"a","address":"\\udfff"}', '{"name":"\\ud800x"}', '{"name":"\\uDBFF"}', '{"name":"a","\\udc00":1}']) {
        problemOf(await admin('POST', '/v1/owners', { raw, contentType: 'application/json' }), 400, 'validation');
      }
      problemOf(await admin('POST', '/v1/diagnoses', { raw: `{"patientId":"${patient}","complaint":"vomiting \\ud83d"}`, contentType: 'application/json' }), 400, 'validation');
      const etag = String((await admin('GET', `/v1/patients/${patient}`)).headers.etag);
      problemOf(await admin('PATCH', `/v1/patients/${patient}`, { raw: '{"breed":"\\udfff"}', contentType: 'application/merge-patch+json', headers: { 'if-match': etag } }), 400, 'validation');
      const dog = await admin('POST', '/v1/owners', { raw: '{"name":"Dog \\ud83d\\udc36"}', contentType: 'application/json' });
      assert.equal(dog.statusCode, 201, dog.body);
      assert.equal((await admin('GET', `/v1/owners/${dog.json().id}`)).json().name, 'Dog \u{1F436}');
    });

    it('a JSON null body (and any non-object JSON) is a 4xx problem on every operation, POST /v1/media included', async () => {
      const doc = (await rt.runtime.app.inject({ method: 'GET', url: '/openapi.json' })).json() as OpenApiDoc;
      const media = await admin('POST', '/v1/media', { raw: 'null', contentType: 'application/json' });
      problemOf(media, 415, 'unsupported-media-type');
      for (const op of operationsOf(doc, '/v1/')) {
        if (op.method === 'GET' || op.method === 'DELETE') continue;
        const url = op.path.replace(/\{[^}]+\}/g, patient);
        for (const raw of ['null', '[]', '1', '"x"', 'true']) {
          const res = await admin(op.method, url, { raw, contentType: 'application/json', headers: { 'if-match': '"1"' } });
          assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${op.label} ${raw}: ${res.statusCode} ${res.body}`);
          assert.equal(contractViolation({ op: op.label, method: op.method, url, headers: {} }, { status: res.statusCode, contentType: String(res.headers['content-type']), body: res.body }), null);
        }
      }
    });

    it('a date-time or date the databases cannot store faithfully is 400, not 500 (year 0, past 9999 after the offset, below 1000)', async () => {
      for (const url of ['/v1/audit?from=0000-01-01T00:00:00Z', '/v1/audit?to=9999-12-31T23:00:00-14:00', '/v1/audit?from=0099-06-01T00:00:00Z', '/v1/audit?from=2026-01-01T10:00:60Z']) {
        problemOf(await admin('GET', url), 400, 'validation');
      }
      problemOf(await admin('POST', `/v1/patients/${patient}/encounters`, { body: { reason: 'visit', startedAt: '0000-01-01T00:00:00Z' } }), 400, 'validation');
      for (const birthDate of ['0000-01-01', '0099-06-01']) {
        problemOf(await admin('POST', '/v1/patients', { body: { name: 'Old', species: 'cat', sex: 'female', neutered: true, ownerId: owner, birthDate } }), 400, 'validation');
      }
      // The edges of the range are accepted and read back as sent.
      assert.equal((await admin('GET', '/v1/audit?from=1000-01-01T00:00:00Z&to=9999-12-31T23:59:59.999Z')).statusCode, 200);
      const enc = await admin('POST', `/v1/patients/${patient}/encounters`, { body: { reason: 'visit', startedAt: '1000-01-01T00:00:00Z' } });
      assert.equal(enc.statusCode, 201, enc.body);
      assert.equal(enc.json().startedAt, '1000-01-01T00:00:00.000Z');
      assert.ok(storableDateTime('9999-12-31T23:59:59.999Z') && !storableDateTime('1000-01-01T00:00:00+00:01') && !storableDateTime('not a date'));
      assert.ok(storableDate('1000-01-01') && storableDate('9999-12-31') && !storableDate('0999-12-31') && !storableDate('2026-02-29'));
      assert.ok(EARLIEST_INSTANT < LATEST_INSTANT);
    });

    it('a path the router refuses (bad percent-encoding, a parameter too long) is problem+json, not Fastify JSON', async () => {
      for (const url of ['/v1/patients/%zz', '/v1/patients/%', '/v1/consultations/%ED%A0%80/diagnose', '/v1/owners/%C0%AE']) {
        const res = await admin('GET', url);
        problemOf(res, 400, 'malformed-request');
        assert.ok(typeof res.headers['x-request-id'] === 'string');
      }
      problemOf(await admin('GET', `/v1/patients/${'a'.repeat(200)}/history`), 414, 'uri-too-long');
    });

    it('bytes that are not HTTP get a problem+json 400 on the socket, and the server keeps serving', async () => {
      await rt.runtime.app.listen({ port: 0, host: '127.0.0.1' });
      const port = (rt.runtime.app.server.address() as net.AddressInfo).port;
      const text = await rawExchange(port, 'GARBAGE \x01\x02 NOT HTTP\r\n\r\n');
      assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(text, /\r\nContent-Type: application\/problem\+json/);
      const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { type: string; status: number };
      assert.deepEqual([body.type, body.status], ['urn:agenticpet:problem:malformed-request', 400]);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    });
  });
}

regressionSuite('PGlite', async () => ({ db: await PgliteExecutor.open(), cleanup: async () => undefined }), false);
regressionSuite(
  'PostgreSQL',
  async () => {
    const database = await createTestDatabase();
    return { db: new PostgresExecutor({ connectionString: database.url, poolMax: 2 }), cleanup: () => database.drop() };
  },
  pgSkipReason(),
);
