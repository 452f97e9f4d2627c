/** HTTP behaviour of the clinical record endpoints; run against every SQL adapter. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { SqlExecutor } from '../../src/storage/sql/executor.js';
import { JPEG, PNG } from '../support/images.js';
import { client, startRuntime, type Call, type TestRuntime } from '../support/runtime.js';

const PDF = Buffer.from('%PDF-1.7\n%fake but well-signed pdf\n');

export function httpRecordsContract(name: string, open: () => Promise<{ db: SqlExecutor; cleanup(): Promise<void> }>, skip: string | false = false): void {
  describe(`HTTP records API: ${name}`, { skip }, () => {
    let rt: TestRuntime;
    let cleanup: () => Promise<void>;
    let api: Call;
    let other: Call;
    let ownerId: string;

    const patientBody = (extra: Record<string, unknown> = {}) => ({ name: 'Rex', species: 'dog', breed: 'Labrador Retriever', sex: 'male', neutered: true, ageYears: 4, weightKg: 31.5, ownerId, ...extra });
    const createPatient = async (extra: Record<string, unknown> = {}) => {
      const res = await api('POST', '/v1/patients', { body: patientBody(extra) });
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { id: string; version: number };
    };

    before(async () => {
      const opened = await open();
      cleanup = opened.cleanup;
      rt = await startRuntime(opened.db);
      api = client(rt, (await rt.newClinic('Clinic A')).key);
      other = client(rt, (await rt.newClinic('Clinic B')).key);
      const res = await api('POST', '/v1/owners', { body: { name: 'Jane Doe', email: 'jane@example.com', phone: '+44 20 7946 0000' } });
      assert.equal(res.statusCode, 201, res.body);
      ownerId = res.json().id;
    });
    after(async () => {
      await rt?.close();
      await cleanup?.();
    });

    it('health: /healthz answers without storage, /readyz checks storage', async () => {
      assert.equal((await api('GET', '/healthz')).statusCode, 200);
      const ready = await api('GET', '/readyz');
      assert.equal(ready.statusCode, 200);
      assert.equal(ready.json().status, 'ready');
    });

    it('serves OpenAPI 3 describing every route, and the docs page', async () => {
      const spec = (await api('GET', '/openapi.json')).json();
      assert.match(spec.openapi, /^3\./);
      for (const p of ['/v1/owners', '/v1/owners/{id}', '/v1/patients', '/v1/patients/{id}', '/v1/patients/{id}/history', '/v1/patients/{id}/encounters', '/v1/encounters/{id}/observations', '/v1/media', '/v1/media/{id}', '/v1/api-keys', '/v1/api-keys/{id}', '/v1/audit', '/healthz', '/readyz']) {
        assert.ok(spec.paths[p], `OpenAPI lacks ${p}`);
      }
      assert.equal(spec.paths['/v1/patients'].post.requestBody.content['application/json'].schema.additionalProperties, false);
      const docs = await api('GET', '/docs/');
      assert.equal(docs.statusCode, 200);
      assert.match(docs.headers['content-type'] as string, /html/);
    });

    it('owners: create answers 201 with ETag and Location; read it back', async () => {
      const created = await api('POST', '/v1/owners', { body: { name: 'John Smith' } });
      assert.equal(created.statusCode, 201);
      assert.equal(created.headers.etag, '"1"');
      const id = created.json().id;
      assert.equal(created.headers.location, `/v1/owners/${id}`);
      const read = await api('GET', `/v1/owners/${id}`);
      assert.equal(read.statusCode, 200);
      assert.equal(read.json().name, 'John Smith');
      assert.equal(read.headers.etag, '"1"');
    });

    it('patients: create maps species to SNOMED CT, estimates birth date from age, starts weight history', async () => {
      const res = await api('POST', '/v1/patients', { body: patientBody({ species: 'cat', name: 'Tom', ageYears: 2 }) });
      assert.equal(res.statusCode, 201, res.body);
      const p = res.json();
      assert.deepEqual(p.speciesCoding, { system: 'http://snomed.info/sct', code: '448169003', display: 'Domestic cat' });
      assert.equal(p.birthDateEstimated, true);
      assert.equal(p.ageYears, 2);
      assert.deepEqual(p.weightHistory.map((w: { weightKg: number }) => w.weightKg), [31.5]);
      const read = await api('GET', `/v1/patients/${p.id}`);
      assert.deepEqual(read.json(), p);
    });

    it('patients: a reference to a missing or foreign owner is 422 and writes nothing', async () => {
      const foreignOwner = (await other('POST', '/v1/owners', { body: { name: 'Elsewhere' } })).json().id;
      for (const id of [foreignOwner, '01890000-0000-7000-8000-000000000000']) {
        const res = await api('POST', '/v1/patients', { body: patientBody({ ownerId: id, name: 'Ghost' }) });
        assert.equal(res.statusCode, 422);
        assert.match(res.headers['content-type'] as string, /application\/problem\+json/);
      }
      const list = (await api('GET', '/v1/patients?name=Ghost')).json();
      assert.equal(list.items.length, 0);
    });

    it('patients: birthDate and ageYears together are refused', async () => {
      const res = await api('POST', '/v1/patients', { body: patientBody({ birthDate: '2020-01-01' }) });
      assert.equal(res.statusCode, 400);
    });

    it('PATCH needs If-Match (428), refuses a stale one (412), and versions the change', async () => {
      const p = await createPatient({ name: 'Patchy' });
      assert.equal((await api('PATCH', `/v1/patients/${p.id}`, { body: { weightKg: 33 } })).statusCode, 428);
      assert.equal((await api('PATCH', `/v1/patients/${p.id}`, { body: { weightKg: 33 }, headers: { 'if-match': '"7"' } })).statusCode, 412);
      const ok = await api('PATCH', `/v1/patients/${p.id}`, { body: { weightKg: 33, neutered: false }, headers: { 'if-match': '"1"' } });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.equal(ok.headers.etag, '"2"');
      assert.equal(ok.json().neutered, false);
      assert.deepEqual(ok.json().weightHistory.map((w: { weightKg: number }) => w.weightKg), [31.5, 33]);
      const merge = await api('PATCH', `/v1/patients/${p.id}`, { body: { name: 'Patchy II' }, headers: { 'if-match': 'W/"2"' }, contentType: 'application/merge-patch+json' });
      assert.equal(merge.statusCode, 200, merge.body);
      const history = (await api('GET', `/v1/patients/${p.id}/history`)).json().items;
      assert.deepEqual(history.map((v: { version: number }) => v.version), [3, 2, 1]);
      assert.equal(history[2].content.weightKg, 31.5);
      assert.equal(history[0].content.name, 'Patchy II');
    });

    it('two concurrent PATCHes with the same If-Match: exactly one wins', async () => {
      const p = await createPatient({ name: 'Contended' });
      const results = await Promise.all(
        [40, 41, 42].map((w) => api('PATCH', `/v1/patients/${p.id}`, { body: { weightKg: w }, headers: { 'if-match': '"1"' } })),
      );
      assert.deepEqual(results.map((r) => r.statusCode).sort(), [200, 412, 412]);
      assert.equal((await api('GET', `/v1/patients/${p.id}`)).json().version, 2);
    });

    it('DELETE writes a tombstone: the patient is gone from reads and lists, its history stays', async () => {
      const p = await createPatient({ name: 'Tombstoned' });
      assert.equal((await api('DELETE', `/v1/patients/${p.id}`)).statusCode, 428);
      const del = await api('DELETE', `/v1/patients/${p.id}`, { headers: { 'if-match': '"1"' } });
      assert.equal(del.statusCode, 200);
      assert.equal(del.json().deleted, true);
      assert.equal((await api('GET', `/v1/patients/${p.id}`)).statusCode, 404);
      assert.equal((await api('GET', '/v1/patients?name=Tombstoned')).json().items.length, 0);
      const history = (await api('GET', `/v1/patients/${p.id}/history`)).json().items;
      assert.deepEqual(history.map((v: { deleted: boolean }) => v.deleted), [true, false]);
    });

    it('lists patients by name prefix, species and owner, with cursor pagination', async () => {
      const secondOwner = (await api('POST', '/v1/owners', { body: { name: 'Pager' } })).json().id;
      const made = [];
      for (let i = 0; i < 5; i++) made.push((await createPatient({ name: `Pagey ${i}`, ownerId: secondOwner, species: i % 2 ? 'cat' : 'dog' })).id);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const q: string = `/v1/patients?ownerId=${secondOwner}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
        const page = (await api('GET', q)).json();
        assert.ok(page.items.length <= 2);
        seen.push(...page.items.map((p: { id: string }) => p.id));
        cursor = page.nextCursor;
      } while (cursor !== null);
      assert.deepEqual(seen, made);
      const cats = (await api('GET', `/v1/patients?ownerId=${secondOwner}&species=cat`)).json().items;
      assert.equal(cats.length, 2);
      const byName = (await api('GET', '/v1/patients?name=pAGEY%203')).json().items;
      assert.deepEqual(byName.map((p: { name: string }) => p.name), ['Pagey 3']);
      assert.equal((await api('GET', '/v1/patients?name=%25')).json().items.length, 0, 'LIKE wildcards are literal');
      assert.equal((await api('GET', '/v1/patients?cursor=bm90LWEtY3Vyc29y')).statusCode, 400);
      assert.equal((await api('GET', '/v1/patients?species=dragon')).statusCode, 400);
      assert.equal((await api('GET', '/v1/patients?limit=100000')).statusCode, 400);
    });

    it("another clinic's ids answer 404 exactly like ids that do not exist", async () => {
      const p = await createPatient({ name: 'Private' });
      const missing = '01890000-0000-7000-8000-000000000001';
      for (const url of [`/v1/patients/${p.id}`, `/v1/patients/${p.id}/encounters`, `/v1/owners/${ownerId}`]) {
        const theirs = await other('GET', url);
        const none = await other('GET', url.replace(/[0-9a-f-]{36}/, missing));
        assert.equal(theirs.statusCode, 404);
        assert.equal(none.statusCode, 404);
        assert.equal(theirs.json().detail.replace(/[0-9a-f-]{36}/, 'ID'), none.json().detail.replace(/[0-9a-f-]{36}/, 'ID'));
      }
      assert.equal((await other('PATCH', `/v1/patients/${p.id}`, { body: { name: 'x' }, headers: { 'if-match': '"1"' } })).statusCode, 404);
      assert.equal((await other('GET', '/v1/patients?name=Private')).json().items.length, 0);
    });

    it('encounters and observations: create, list, read; references are checked', async () => {
      const p = await createPatient({ name: 'Visitor' });
      const enc = await api('POST', `/v1/patients/${p.id}/encounters`, { body: { type: 'emergency', reason: 'Vomiting since this morning' } });
      assert.equal(enc.statusCode, 201, enc.body);
      const encounterId = enc.json().id;
      assert.equal(enc.json().status, 'in-progress');
      assert.equal((await api('GET', `/v1/encounters/${encounterId}`)).json().reason, 'Vomiting since this morning');
      const list = (await api('GET', `/v1/patients/${p.id}/encounters`)).json();
      assert.deepEqual(list.items.map((e: { id: string }) => e.id), [encounterId]);
      const obs = [
        { category: 'vital-sign', code: 'temperature', value: 39.9, unit: 'Cel' },
        { category: 'laboratory', code: 'glucose', value: 412, unit: 'mg/dL' },
        { category: 'clinical-sign', code: 'vomiting', value: true },
        { category: 'note', code: 'note', value: 'Owner reports the dog ate a sock.' },
      ];
      for (const body of obs) assert.equal((await api('POST', `/v1/encounters/${encounterId}/observations`, { body })).statusCode, 201);
      const got = (await api('GET', `/v1/encounters/${encounterId}/observations`)).json().items;
      assert.deepEqual(got.map((o: { code: string; value: unknown }) => [o.code, o.value]), obs.map((o) => [o.code, o.value]));
      assert.ok(got.every((o: { patientId: string }) => o.patientId === p.id));
      assert.equal((await api('GET', `/v1/observations/${got[0].id}`)).statusCode, 200);
      assert.equal((await api('POST', `/v1/encounters/${encounterId}/observations`, { body: { category: 'note', code: 'note', value: 3 } })).statusCode, 400);
      assert.equal((await api('POST', `/v1/encounters/${encounterId}/observations`, { body: { category: 'vital-sign', code: 'Temperature!', value: 3 } })).statusCode, 400);
      const missing = '01890000-0000-7000-8000-000000000002';
      assert.equal((await api('POST', `/v1/patients/${missing}/encounters`, { body: {} })).statusCode, 404);
      assert.equal((await api('POST', `/v1/encounters/${missing}/observations`, { body: obs[0] })).statusCode, 404);
      assert.equal((await other('GET', `/v1/encounters/${encounterId}/observations`)).statusCode, 404);
      assert.equal((await api('POST', `/v1/patients/${p.id}/encounters`, { body: { startedAt: '2026-01-02T00:00:00Z', endedAt: '2026-01-01T00:00:00Z' } })).statusCode, 400);
    });

    it('media: stores bytes by sha256, checks the type by magic bytes, serves them back', async () => {
      const p = await createPatient({ name: 'Photographed' });
      for (const [type, bytes] of [['image/png', PNG], ['image/jpeg', JPEG], ['application/pdf', PDF]] as const) {
        const up = await api('POST', `/v1/media?patientId=${p.id}&description=x-ray`, { raw: bytes, contentType: type });
        assert.equal(up.statusCode, 201, up.body);
        const m = up.json();
        assert.equal(m.sha256, createHash('sha256').update(bytes).digest('hex'));
        assert.equal(m.sizeBytes, bytes.length);
        assert.equal(m.contentType, type);
        assert.deepEqual(m.image === null ? null : [m.image.width, m.image.height, m.image.quality.usable], type === 'application/pdf' ? null : [200, 150, true]);
        assert.equal((await api('GET', `/v1/media/${m.id}`)).json().sha256, m.sha256);
        const content = await api('GET', `/v1/media/${m.id}/content`);
        assert.equal(content.headers['content-type'], type);
        assert.deepEqual(content.rawPayload, bytes);
        assert.equal((await other('GET', `/v1/media/${m.id}/content`)).statusCode, 404);
      }
      assert.equal((await api('POST', '/v1/media', { raw: PNG, contentType: 'image/jpeg' })).statusCode, 415, 'declared JPEG, PNG bytes');
      const headerOnly = await api('POST', '/v1/media', { raw: Buffer.concat([PNG.subarray(0, 8), Buffer.from('rest of a png')]), contentType: 'image/png' });
      assert.equal(headerOnly.statusCode, 422, 'a PNG header is not a PNG');
      assert.equal(headerOnly.json().type, 'urn:agenticpet:problem:undecodable-image');
      assert.equal((await api('POST', '/v1/media', { raw: Buffer.from('GIF89a...'), contentType: 'image/gif' })).statusCode, 415);
      assert.equal((await api('POST', '/v1/media', { raw: Buffer.from('<html>'), contentType: 'application/pdf' })).statusCode, 415);
      for (const json of ['null', '{}', '[]', '"x"', '1']) {
        const res = await api('POST', '/v1/media', { raw: Buffer.from(json), contentType: 'application/json' });
        assert.equal(res.statusCode, 415, `a JSON body ${json}: ${res.body}`);
        assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      }
      assert.equal((await api('POST', `/v1/media?patientId=01890000-0000-7000-8000-000000000003`, { raw: PNG, contentType: 'image/png' })).statusCode, 422);
      const big = Buffer.concat([PNG, Buffer.alloc(11 * 1024 * 1024)]);
      assert.equal((await api('POST', '/v1/media', { raw: big, contentType: 'image/png' })).statusCode, 413);
    });
  });
}
