/** A diagnosis stays fully explainable from the persistent tier after its session has expired. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';

describe('after the session expires', () => {
  let rt: TestRuntime;
  let api: Call;
  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open(), { AGENTICPET_SESSION_TTL_SECONDS: '1' });
    api = client(rt, (await rt.newClinic()).key);
  });
  after(() => rt?.close());

  it('the consultation is gone but the diagnosis, its evidence and provenance remain', async () => {
    const id = (await api('POST', '/v1/consultations', { body: { patient: { species: 'dog', ageYears: 9, weightKg: 25 } } })).json().id;
    await api('POST', `/v1/consultations/${id}/inputs`, { body: { complaint: 'drinking loads and peeing a lot for a month', labs: [{ analyte: 'glucose', value: 25, unit: 'mmol/L' }] } });
    const d = (await api('POST', `/v1/consultations/${id}/diagnose`)).json();
    await new Promise((r) => setTimeout(r, 1600));
    assert.equal((await api('GET', `/v1/consultations/${id}`)).statusCode, 404);
    const trace = await api('GET', `/v1/diagnoses/${d.id}/trace`);
    assert.equal(trace.statusCode, 200);
    const t = trace.json();
    assert.equal(t.provenance.sessionId, id);
    assert.equal(t.provenance.chain.length, 6);
    const lab = t.conclusions.flatMap((c: { evidence: Array<{ kind: string; ref: string }> }) => c.evidence).find((e: { kind: string; ref: string }) => e.kind === 'lab' && e.ref === 'glucose');
    assert.ok(lab, 'the lab value that moved the differential is linked');
    assert.deepEqual((await api('GET', `/v1/diagnoses/${d.id}`)).json(), d);
  });
});
