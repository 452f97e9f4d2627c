/**
 * Cross-tenant attack suite (issue 14 §3). Clinic A's keys (admin, vet, staff, readonly) attack
 * clinic B's records through every /v1 operation of the OpenAPI document: B's ids in the path,
 * in the body fields that take ids and in the query string. A route added later is covered
 * automatically, and the suite fails if it has no case generator.
 *
 * Each attack is paired with the same request carrying a random id that exists nowhere: the two
 * answers must match (status and problem type), so nothing tells A whether B's id exists. No
 * answer is a 5xx, none contains B's ids or names, and B's records read back unchanged.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import type { SqlExecutor } from '../src/storage/sql/executor.js';
import { BODIES, fresh, KIND_OF_FIELD, operationsOf, PNG, send, type Ids, type OpenApiDoc } from './support/operations.js';
import { callersByRole, client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

function crossTenantSuite(name: string, open: () => Promise<{ db: SqlExecutor; cleanup(): Promise<void> }>, skip: string | false): void {
  describe(`attack: cross-tenant isolation (${name})`, { skip }, () => {
    let rt: TestRuntime;
    let cleanup: () => Promise<void>;
    const attackers: { role: string; call: Call }[] = [];
    let bAdmin: Call;
    let b: Ids;
    const bSecrets: string[] = [];
    let bEtags: Record<string, string> = {};

    const snapshotB = async (): Promise<Record<string, string>> => {
      const reads: Record<string, string> = {
        owner: `/v1/owners/${b.owner}`,
        patient: `/v1/patients/${b.patient}`,
        patientHistory: `/v1/patients/${b.patient}/history`,
        patients: '/v1/patients',
        encounter: `/v1/encounters/${b.encounter}`,
        encounters: `/v1/patients/${b.patient}/encounters`,
        observation: `/v1/observations/${b.observation}`,
        observations: `/v1/encounters/${b.encounter}/observations`,
        media: `/v1/media/${b.media}`,
        diagnosis: `/v1/diagnoses/${b.diagnosis}`,
        diagnoses: `/v1/patients/${b.patient}/diagnoses`,
        consultation: `/v1/consultations/${b.consultation}`,
      };
      const out: Record<string, string> = {};
      for (const [what, url] of Object.entries(reads)) {
        const res = await bAdmin('GET', url);
        assert.equal(res.statusCode, 200, `B reads its ${what}: ${res.body}`);
        const body = res.json() as Record<string, unknown>;
        // The consultation's view carries its last-use time, which B's own read refreshes.
        if (what === 'consultation') for (const k of ['updatedAt', 'expiresAt', 'lastActivityAt']) delete body[k];
        out[what] = JSON.stringify(body);
      }
      // B's audit trail: A's refused attempts must not have written to it.
      const audit = (await bAdmin('GET', '/v1/audit?limit=500')).json() as { items: { action?: string }[] };
      out.auditWrites = JSON.stringify(audit.items.filter((e) => !['read', 'search'].includes(String(e.action))));
      // B's key A tried to revoke still works.
      out.bKeyWorks = String((await client(rt, bSecrets[0]!)('GET', '/v1/patients')).statusCode);
      return out;
    };

    before(async () => {
      const opened = await open();
      cleanup = opened.cleanup;
      rt = await startRuntime(opened.db);
      const a = await rt.newClinic('Clinic Alpha');
      const aAdmin = client(rt, a.key);
      attackers.push(...(await callersByRole(rt, a.key)));
      // A has records of its own, so a leak into A's lists would show.
      const aOwner = (await aAdmin('POST', '/v1/owners', { body: { name: 'Alpha owner' } })).json().id;
      assert.equal((await aAdmin('POST', '/v1/patients', { body: { name: 'Alphapet', species: 'cat', sex: 'female', neutered: true, ownerId: aOwner } })).statusCode, 201);

      const clinicB = await rt.newClinic('Clinic Bravo Secretname');
      bAdmin = client(rt, clinicB.key);
      const created = async (method: string, url: string, opts: Parameters<Call>[2]): Promise<string> => {
        const res = await bAdmin(method, url, opts);
        assert.equal(res.statusCode, 201, `${url}: ${res.body}`);
        return res.json().id as string;
      };
      const owner = await created('POST', '/v1/owners', { body: { name: 'Bravo Ownername', email: 'bravo.owner@example.org', phone: '+44 20 7946 0000', address: '1 Bravo Street' } });
      const patient = await created('POST', '/v1/patients', { body: { name: 'Bravopetname', species: 'dog', breed: 'Bravobreed', sex: 'female', neutered: false, ownerId: owner, weightKg: 30 } });
      const encounter = await created('POST', `/v1/patients/${patient}/encounters`, { body: { reason: 'Bravoreason retching' } });
      const observation = await created('POST', `/v1/encounters/${encounter}/observations`, { body: { category: 'note', code: 'note', value: 'Bravonote text' } });
      const media = await created('POST', `/v1/media?patientId=${patient}&encounterId=${encounter}&description=Bravomedia`, { raw: PNG, contentType: 'image/png' });
      const diagnosis = await created('POST', '/v1/diagnoses', { body: { patientId: patient, encounterId: encounter, complaint: 'Bravocomplaint unproductive retching, distended abdomen', mediaIds: [media] } });
      const consultation = await created('POST', '/v1/consultations', { body: { patientId: patient, encounterId: encounter } });
      const keyRes = await bAdmin('POST', '/v1/api-keys', { body: { name: 'Bravokeyname', role: 'staff' } });
      assert.equal(keyRes.statusCode, 201, keyRes.body);
      bSecrets.push(keyRes.json().key, clinicB.key, clinicB.clinicId);
      // Models are global: B has none of its own, so its 'ids' there name nothing, like the control's.
      b = { owner, patient, encounter, observation, media, diagnosis, consultation, apiKey: keyRes.json().id, model: 'bravo-model', modelVersion: '9.9.9' };
      bEtags = {};
      const p = await bAdmin('GET', `/v1/patients/${patient}`);
      bEtags.patient = String(p.headers.etag);
    });
    after(async () => {
      await rt?.close();
      await cleanup?.();
    });

    it('every /v1 operation x every role of A with B ids: no success, no leak, no existence oracle', async () => {
      const doc = (await rt.runtime.app.inject({ method: 'GET', url: '/openapi.json' })).json() as OpenApiDoc;
      const ops = operationsOf(doc);
      assert.ok(ops.length >= 20, `the route table has ${ops.length} /v1 operations`);
      const before = await snapshotB();
      const forbidden = [...Object.values(b), ...bSecrets, 'Bravo', 'bravo.owner@example.org', 'Secretname'];
      const tally: Record<string, number> = {};
      const failures: string[] = [];
      for (const op of ops) {
        const touchesB = op.pathKinds.length > 0 || op.queryIdFields.length > 0 || Object.keys(KIND_OF_FIELD).some((f) => JSON.stringify(BODIES[`${op.method} ${op.path}`]?.(b) ?? {}).includes(`"${f}"`));
        for (const { role, call } of attackers) {
          const label = `${role} ${op.method.toUpperCase()} ${op.path}`;
          const attack = await send(call, op, b, bEtags.patient!);
          const control = await send(call, op, fresh(), bEtags.patient!);
          tally[attack.status] = (tally[attack.status] ?? 0) + 1;
          if (attack.status >= 500) failures.push(`${label}: ${attack.status} ${attack.body.slice(0, 200)}`);
          // A's own audit trail lists the ids A sent in earlier attempts (checked separately below).
          const leaked = forbidden.filter((s) => attack.body.includes(s) && !attack.sent.includes(s) && !(op.path === '/v1/audit' && Object.values(b).includes(s)));
          if (leaked.length > 0) failures.push(`${label}: the answer (${attack.status}) contains B's ${leaked.join(', ')}`);
          if (!touchesB) continue;
          if (attack.status !== control.status || attack.type !== control.type) {
            failures.push(`${label}: B's id answers ${attack.status} ${attack.type}, a nonexistent id ${control.status} ${control.type} (an existence oracle)`);
          }
          if (op.pathKinds.length > 0 && attack.status >= 200 && attack.status < 300) failures.push(`${label}: ${attack.status} on B's id`);
          if (op.pathKinds.length > 0 && attack.status === 403 && role === 'admin') failures.push(`${label}: admin gets 403, not 404, on B's id`);
        }
      }
      assert.deepEqual(failures, []);
      assert.deepEqual(await snapshotB(), before, "B's records, audit trail and keys are unchanged");
      // Reported in the test output: how the attacks were answered.
      console.log(`cross-tenant (${name}): ${ops.length} operations x ${attackers.length} roles; statuses ${JSON.stringify(tally)}`);
    });

    it('B ids in path answer 404 problem+json for an admin of A', async () => {
      for (const [url, method] of [
        [`/v1/patients/${b.patient}`, 'GET'],
        [`/v1/owners/${b.owner}`, 'GET'],
        [`/v1/encounters/${b.encounter}`, 'GET'],
        [`/v1/observations/${b.observation}`, 'GET'],
        [`/v1/media/${b.media}/content`, 'GET'],
        [`/v1/diagnoses/${b.diagnosis}/trace`, 'GET'],
        [`/v1/consultations/${b.consultation}`, 'GET'],
        [`/v1/api-keys/${b.apiKey}`, 'DELETE'],
        [`/v1/patients/${b.patient}`, 'DELETE'],
      ] as const) {
        const res = await attackers[0]!.call(method, url, { headers: { 'if-match': bEtags.patient! } });
        assert.equal(res.statusCode, 404, `${method} ${url}: ${res.body}`);
        assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      }
    });

    it("A's lists filtered by B's ids are empty", async () => {
      const admin = attackers[0]!.call;
      for (const url of [`/v1/patients?ownerId=${b.owner}`, '/v1/patients?name=Bravo']) {
        const res = await admin('GET', url);
        assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
        assert.deepEqual(res.json().items, [], url);
      }
      // A's audit trail records A's own attempts on B's ids, none of them a success.
      for (const id of [b.patient, b.owner, b.encounter]) {
        const res = await admin('GET', `/v1/audit?entityId=${id}&limit=500`);
        assert.equal(res.statusCode, 200, res.body);
        const items = res.json().items as { outcome: string }[];
        assert.ok(items.length > 0, "A's refused attempts are audited in A's trail");
        assert.deepEqual([...new Set(items.map((e) => e.outcome))].filter((o) => o === 'success' || o === 'ok'), [], JSON.stringify(items[0]));
      }
    });
  });
}

crossTenantSuite(
  'PostgreSQL',
  async () => {
    const database = await createTestDatabase();
    return { db: new PostgresExecutor({ connectionString: database.url, poolMax: 4 }), cleanup: () => database.drop() };
  },
  pgSkipReason(),
);
crossTenantSuite('PGlite', async () => ({ db: await PgliteExecutor.open(), cleanup: async () => undefined }), false);
