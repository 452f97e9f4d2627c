/** HTTP behaviour of auth, keys, audit, idempotency and bad input; run against every SQL adapter. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { SqlExecutor } from '../../src/storage/sql/executor.js';
import { client, startRuntime, type Call, type TestRuntime } from '../support/runtime.js';

export function httpAccessContract(name: string, open: () => Promise<{ db: SqlExecutor; cleanup(): Promise<void> }>, skip: string | false = false): void {
  describe(`HTTP access, audit and input handling: ${name}`, { skip }, () => {
    let rt: TestRuntime;
    let cleanup: () => Promise<void>;
    let admin: Call;
    let adminKey: string;
    let ownerId: string;

    before(async () => {
      const opened = await open();
      cleanup = opened.cleanup;
      rt = await startRuntime(opened.db, { AGENTICPET_BODY_MAX_BYTES: '4096' });
      adminKey = (await rt.newClinic('Clinic A')).key;
      admin = client(rt, adminKey);
      ownerId = (await admin('POST', '/v1/owners', { body: { name: 'Owner' } })).json().id;
    });
    after(async () => {
      await rt?.close();
      await cleanup?.();
    });

    const problem = (res: { statusCode: number; headers: Record<string, unknown>; json(): Record<string, unknown> }, status: number) => {
      assert.equal(res.statusCode, status);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      const body = res.json();
      assert.equal(body.status, status);
      assert.match(String(body.type), /^urn:agenticpet:problem:/);
      assert.equal(typeof body.title, 'string');
      assert.ok(!JSON.stringify(body).includes('    at '), 'no stack trace');
      return body;
    };

    it('401 without a key, with a malformed or an unknown key', async () => {
      for (const auth of [undefined, 'Basic abc', 'Bearer short', 'Bearer apk_thiskeydoesnotexistatallxxxxxxxx']) {
        const res = await rt.runtime.app.inject({ method: 'GET', url: '/v1/patients', headers: auth === undefined ? {} : { authorization: auth } });
        problem(res, 401);
        assert.equal(res.headers['www-authenticate'], 'Bearer');
      }
    });

    it('admins issue keys with roles; the key is shown once and stored hashed; revoked keys stop working', async () => {
      const res = await admin('POST', '/v1/api-keys', { body: { name: 'reception', role: 'readonly' } });
      assert.equal(res.statusCode, 201, res.body);
      const { key, id, keyPrefix } = res.json();
      assert.match(key, /^apk_[A-Za-z0-9_-]{43}$/);
      assert.equal(key.slice(0, 12), keyPrefix);
      const stored = await rt.runtime.store.findPrincipalByKeyHash(Buffer.alloc(32));
      assert.equal(stored, null);
      const readonly = client(rt, key);
      assert.equal((await readonly('GET', '/v1/patients')).statusCode, 200);
      problem(await readonly('POST', '/v1/owners', { body: { name: 'x' } }), 403);
      problem(await readonly('POST', '/v1/api-keys', { body: { name: 'x', role: 'admin' } }), 403);
      problem(await readonly('GET', '/v1/audit'), 403);
      const vet = client(rt, (await admin('POST', '/v1/api-keys', { body: { name: 'vet', role: 'vet' } })).json().key);
      assert.equal((await vet('POST', '/v1/owners', { body: { name: 'By vet' } })).statusCode, 201);
      problem(await vet('DELETE', `/v1/api-keys/${id}`), 403);
      const revoked = await admin('DELETE', `/v1/api-keys/${id}`);
      assert.equal(revoked.statusCode, 200);
      assert.ok(revoked.json().revokedAt);
      problem(await readonly('GET', '/v1/patients'), 401);
      problem(await admin('DELETE', '/v1/api-keys/01890000-0000-7000-8000-000000000009'), 404);
      const otherAdmin = client(rt, (await rt.newClinic('Clinic B')).key);
      problem(await otherAdmin('DELETE', `/v1/api-keys/${id}`), 404);
    });

    it('idempotency: a retry replays the original response and writes nothing new', async () => {
      const body = { name: 'Idem', species: 'dog', sex: 'female', neutered: false, ownerId };
      const headers = { 'idempotency-key': 'create-idem-1' };
      const first = await admin('POST', '/v1/patients', { body, headers });
      assert.equal(first.statusCode, 201);
      const retry = await admin('POST', '/v1/patients', { body: { ownerId, neutered: false, sex: 'female', species: 'dog', name: 'Idem' }, headers });
      assert.equal(retry.statusCode, 201);
      assert.equal(retry.headers['idempotent-replayed'], 'true');
      assert.deepEqual(retry.json(), first.json());
      assert.equal((await admin('GET', '/v1/patients?name=Idem')).json().items.length, 1);
      const reused = problem(await admin('POST', '/v1/patients', { body: { ...body, name: 'Different' }, headers }), 422);
      assert.match(String(reused.type), /idempotency-key-reused/);
      assert.equal((await admin('GET', '/v1/patients?name=Different')).json().items.length, 0);
      problem(await admin('POST', '/v1/owners', { body: { name: 'x' }, headers: { 'idempotency-key': 'bad key with spaces' } }), 400);
    });

    it('idempotency: concurrent requests with one key create one record', async () => {
      const headers = { 'idempotency-key': 'concurrent-1' };
      const results = await Promise.all([1, 2, 3].map(() => admin('POST', '/v1/owners', { body: { name: 'Concurrent' }, headers })));
      assert.deepEqual(results.map((r) => r.statusCode), [201, 201, 201]);
      assert.equal(new Set(results.map((r) => r.json().id)).size, 1);
    });

    it('idempotency: an API key replay never returns the secret again', async () => {
      const headers = { 'idempotency-key': 'key-once' };
      const first = await admin('POST', '/v1/api-keys', { body: { name: 'once', role: 'staff' }, headers });
      const again = await admin('POST', '/v1/api-keys', { body: { name: 'once', role: 'staff' }, headers });
      assert.ok(first.json().key);
      assert.equal(again.statusCode, 201, again.body);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(again.json().key, undefined);
      assert.equal(again.json().id, first.json().id);
    });

    it('audit: every create, read, update and delete is recorded with who, what, outcome and where', async () => {
      const p = (await admin('POST', '/v1/patients', { body: { name: 'Audited', species: 'cat', sex: 'male', neutered: true, ownerId }, headers: { 'x-request-id': 'trace-me-1' } })).json();
      await admin('GET', `/v1/patients/${p.id}`);
      await admin('PATCH', `/v1/patients/${p.id}`, { body: { name: 'Audited 2' }, headers: { 'if-match': '"1"' } });
      await admin('PATCH', `/v1/patients/${p.id}`, { body: { name: 'Audited 3' }, headers: { 'if-match': '"1"' } });
      await admin('DELETE', `/v1/patients/${p.id}`, { headers: { 'if-match': '"2"' } });
      await admin('GET', `/v1/patients/${p.id}`);
      const res = await admin('GET', `/v1/audit?entityType=patient&entityId=${p.id}`);
      assert.equal(res.statusCode, 200, res.body);
      const events = res.json().items;
      assert.deepEqual(
        events.map((e: { action: string; outcome: string }) => `${e.action}:${e.outcome}`),
        ['create:success', 'read:success', 'update:success', 'update:precondition-failed', 'delete:success', 'read:not-found'],
      );
      assert.equal(events[0].requestId, 'trace-me-1');
      assert.equal(events[0].role, 'admin');
      assert.ok(events[0].principalId);
      assert.ok(events[0].sourceIp);
      const from = events[2].occurredAt;
      const ranged = (await admin('GET', `/v1/audit?entityId=${p.id}&from=${encodeURIComponent(from)}&limit=2`)).json();
      assert.equal(ranged.items.length, 2);
      assert.ok(ranged.nextCursor);
      const rest = (await admin('GET', `/v1/audit?entityId=${p.id}&from=${encodeURIComponent(from)}&limit=10&cursor=${ranged.nextCursor}`)).json();
      assert.equal(ranged.items.length + rest.items.length, events.length - 2);
      const verified = await rt.runtime.store.verifyAudit();
      assert.equal(verified.ok, true, JSON.stringify(verified.failure));
    });

    it('bad input answers 4xx problem+json and writes nothing', async () => {
      const before = (await admin('GET', '/v1/patients?limit=200')).json().items.length;
      const valid = { name: 'Valid', species: 'dog', sex: 'male', neutered: true, ownerId };
      const unknown = problem(await admin('POST', '/v1/patients', { body: { ...valid, favouriteToy: 'ball' } }), 400);
      assert.match(String(unknown.detail), /favouriteToy/);
      problem(await admin('POST', '/v1/patients', { body: { ...valid, neutered: 'yes' } }), 400);
      problem(await admin('POST', '/v1/patients', { body: { ...valid, weightKg: '30' } }), 400);
      problem(await admin('POST', '/v1/patients', { body: { ...valid, weightKg: -1 } }), 400);
      problem(await admin('POST', '/v1/patients', { body: { ...valid, sex: 'neuter' } }), 400);
      problem(await admin('POST', '/v1/patients', { raw: '{"name": "Rex",', contentType: 'application/json' }), 400);
      problem(await admin('POST', '/v1/patients', { raw: '', contentType: 'application/json' }), 400);
      problem(await admin('POST', '/v1/patients', { raw: 'name=Rex', contentType: 'application/x-www-form-urlencoded' }), 415);
      problem(await admin('POST', '/v1/patients', { body: { ...valid, name: 'x'.repeat(5000) } }), 413);
      problem(await admin('GET', '/v1/patients/not-a-uuid'), 400);
      problem(await admin('PATCH', '/v1/patients/01890000-0000-7000-8000-000000000004', { body: {}, headers: { 'if-match': '"1"' } }), 400);
      problem(await admin('GET', '/v1/nowhere'), 404);
      assert.equal((await admin('GET', '/v1/patients?limit=200')).json().items.length, before);
    });

    it('property: no JSON body, however odd, gets a 5xx or crashes the process', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.jsonValue(),
            fc.record({ name: fc.string(), species: fc.constantFrom('dog', 'cat', 'fish', ''), sex: fc.string(), neutered: fc.anything(), ownerId: fc.oneof(fc.uuid(), fc.string()), weightKg: fc.double() }, { requiredKeys: [] }),
          ),
          async (body) => {
            const res = await admin('POST', '/v1/patients', { raw: JSON.stringify(body) ?? 'null', contentType: 'application/json' });
            assert.ok(res.statusCode < 500, `${res.statusCode} for ${JSON.stringify(body)}: ${res.body}`);
          },
        ),
        { numRuns: 150 },
      );
      assert.equal((await admin('GET', '/healthz')).statusCode, 200);
    });
  });
}
