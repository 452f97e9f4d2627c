/** HTTP behaviour of diagnoses and consultations; run against every SQL adapter. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SqlExecutor } from '../../src/storage/sql/executor.js';
import { client, startRuntime, type Call, type TestRuntime } from '../support/runtime.js';

const GDV = {
  patient: { species: 'dog', breed: 'Great Dane', ageYears: 7, sex: 'male', neutered: true, weightKg: 62 },
  complaint: "He's been trying to be sick for an hour but nothing comes up, his belly looks swollen and tight and he's drooling. No diarrhoea.",
  vitals: { heartRate: 168, mucousMembranes: 'pale', crtSeconds: 3 },
  labs: [{ analyte: 'lactate', value: 6.5, unit: 'mmol/L' }, { analyte: 'mystery_marker', value: 3, unit: 'U/L' }],
};

export function httpDiagnosesContract(name: string, open: () => Promise<{ db: SqlExecutor; cleanup(): Promise<void> }>, opts: { skip?: string | false; env?: Record<string, string>; sessionStore?: string } = {}): void {
  describe(`HTTP diagnoses and consultations: ${name}`, { skip: opts.skip ?? false }, () => {
    let rt: TestRuntime;
    let cleanup: () => Promise<void>;
    let api: Call;
    let other: Call;

    before(async () => {
      const opened = await open();
      cleanup = opened.cleanup;
      rt = await startRuntime(opened.db, opts.env ?? {});
      api = client(rt, (await rt.newClinic('Clinic A')).key);
      other = client(rt, (await rt.newClinic('Clinic B')).key);
    });
    after(async () => {
      await rt?.close();
      await cleanup?.();
    });

    it('POST /v1/diagnoses answers triage, ranked differential with evidence, plan, narrative and provenance', async () => {
      const res = await api('POST', '/v1/diagnoses', { body: GDV });
      assert.equal(res.statusCode, 201, res.body);
      if (opts.sessionStore) assert.equal(res.headers['x-session-store'], opts.sessionStore);
      const d = res.json();
      assert.equal(d.triage.level, 'emergency');
      assert.equal(d.differentials[0].code, 'gastric_dilatation_volvulus');
      assert.ok(d.differentials.every((x: { probability: number }, i: number, a: Array<{ probability: number }>) => i === 0 || a[i - 1]!.probability >= x.probability));
      const kindOf = new Map(d.findings.map((f: { code: string; source: { kind: string } }) => [f.code, f.source.kind]));
      assert.ok(d.differentials[0].evidence.some((e: { finding: string; weight: number }) => kindOf.get(e.finding) === 'complaint' && e.weight > 0), "evidence names findings whose source is the complaint");
      assert.ok(d.plan.tests.length > 0);
      assert.match(d.narrative.text, /^S: /);
      assert.ok(d.warnings.some((w: string) => /mystery_marker not interpreted/.test(w)), 'unknown analytes are listed, not dropped');
      assert.match(d.provenance.knowledgeBaseVersion, /^\d+\.\d+\.\d+\+/);
      assert.deepEqual(Object.keys(d.provenance.agents).sort(), ['differential', 'intake', 'labs', 'narrative', 'plan', 'triage']);
      const again = await api('GET', `/v1/diagnoses/${d.id}`);
      assert.deepEqual(again.json(), d);
      assert.equal((await other('GET', `/v1/diagnoses/${d.id}`)).statusCode, 404);
    });

    it("a one-shot diagnosis keeps its chain in its session; naming a consultation is checked before the agents run", async () => {
      const first = await api('POST', '/v1/diagnoses', { body: GDV });
      assert.equal(first.statusCode, 201, first.body);
      const sessionId = first.json().consultationId as string;
      const session = (await api('GET', `/v1/consultations/${sessionId}`)).json();
      assert.deepEqual(session.chain.map((s: { agent: string }) => s.agent).sort(), ['differential', 'intake', 'labs', 'narrative', 'plan', 'triage']);
      assert.equal(session.results.triage.level, 'emergency');
      assert.deepEqual(session.results.triage, session.chain.find((s: { agent: string }) => s.agent === 'triage').output);

      const intakeRuns = async () => Number(/agenticpet_agent_step_duration_seconds_count\{agent="intake",status="ok"\} (\d+)/.exec((await api('GET', '/metrics')).body)?.[1] ?? 0);
      const metaLookups = async (result: string) => Number(new RegExp(`agenticpet_cache_requests_total\\{cache="session_meta",result="${result}"\\} (\\d+)`).exec((await api('GET', '/metrics')).body)?.[1] ?? 0);
      const runs = await intakeRuns();
      const missing = await api('POST', '/v1/diagnoses', { body: { ...GDV, consultationId: 'cs_AAAAAAAAAAAAAAAAAAAAAA' } });
      assert.equal(missing.statusCode, 404, missing.body);
      assert.equal((await other('POST', '/v1/diagnoses', { body: { ...GDV, consultationId: sessionId } })).statusCode, 404, "another clinic's consultation");
      // The consultation is about an inline patient; a stored patient's case cannot join it.
      const owner = (await api('POST', '/v1/owners', { body: { name: 'Ann Example' } })).json().id;
      const created = await api('POST', '/v1/patients', { body: { name: 'Rex', species: 'dog', sex: 'male', neutered: true, ageYears: 5, weightKg: 30, ownerId: owner } });
      assert.equal(created.statusCode, 201, created.body);
      const patient = created.json().id;
      const wrong = await api('POST', '/v1/diagnoses', { body: { patientId: patient, complaint: 'vomiting', consultationId: sessionId } });
      assert.equal(wrong.statusCode, 422, wrong.body);
      assert.match(wrong.body, /consultationId/);
      assert.equal(await intakeRuns(), runs, 'no agent ran for a refused consultation reference');

      const hitsBefore = await metaLookups('hit');
      const again = await api('POST', '/v1/diagnoses', { body: { ...GDV, consultationId: sessionId } });
      assert.equal(again.statusCode, 201, again.body);
      assert.equal(again.json().consultationId, sessionId);
      assert.ok((await metaLookups('hit')) > hitsBefore, 'the consultation created here is found in L1');
      const after = (await api('GET', `/v1/consultations/${sessionId}`)).json();
      assert.equal(after.chain.length, 12, 'the second chain is appended to the same session');
    });

    it('an Idempotency-Key replays the stored diagnosis instead of diagnosing twice', async () => {
      const headers = { 'idempotency-key': `diag-${Date.now()}` };
      const first = await api('POST', '/v1/diagnoses', { body: GDV, headers });
      const intakeRuns = async () => Number(/agenticpet_agent_step_duration_seconds_count\{agent="intake",status="ok"\} (\d+)/.exec((await api('GET', '/metrics')).body)?.[1] ?? 0);
      const before = await intakeRuns();
      const again = await api('POST', '/v1/diagnoses', { body: GDV, headers });
      assert.equal(again.statusCode, 201);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(again.json().id, first.json().id);
      assert.equal(await intakeRuns(), before, 'a replay does not run the agents again');
      const reused = await api('POST', '/v1/diagnoses', { body: { ...GDV, complaint: 'something else' }, headers });
      assert.equal(reused.statusCode, 422);
    });

    it('counts session-tier fallbacks in /metrics', { skip: opts.sessionStore === 'memory-fallback' ? false : 'only when the session tier is down' }, async () => {
      const metrics = await api('GET', '/metrics');
      assert.match(metrics.body, /agenticpet_session_store_fallback_total\{operation="create"\} [1-9]/);
    });

    it('the trace explains every conclusion from the persistent tier, with the input kept', async () => {
      const d = (await api('POST', '/v1/diagnoses', { body: GDV })).json();
      const trace = (await api('GET', `/v1/diagnoses/${d.id}/trace`)).json();
      const codes = new Set(trace.conclusions.map((c: { type: string; code: string }) => `${c.type}:${c.code}`));
      for (const diff of d.differentials) assert.ok(codes.has(`differential:${diff.code}`), `no evidence for ${diff.code}`);
      assert.ok(codes.has(`triage:${d.triage.level}`));
      const top = trace.conclusions.find((c: { code: string }) => c.code === 'gastric_dilatation_volvulus');
      const phrase = top.evidence.find((e: { kind: string }) => e.kind === 'complaint');
      assert.equal(GDV.complaint.slice(phrase.start, phrase.end), phrase.text);
      assert.equal(trace.provenance.chainDigest, d.provenance.chainDigest);
      assert.equal(trace.provenance.chain.length, 6);
      assert.deepEqual(trace.input.labs.map((l: { analyte: string }) => l.analyte), ['lactate', 'mystery_marker']);
    });

    it('the trace lists every conclusion of the report in its fixed order, toxin exposures included, from what is stored', async () => {
      const body = { patient: { species: 'cat', ageYears: 4, weightKg: 4.2 }, complaint: 'she licked lily pollen off her fur this morning and has been vomiting', treatments: ['meloxicam', 'maropitant'] };
      const d = (await api('POST', '/v1/diagnoses', { body })).json();
      const trace = (await api('GET', `/v1/diagnoses/${d.id}/trace`)).json();
      const keys = trace.conclusions.map((c: { type: string; code: string }) => `${c.type}:${c.code}`);
      const expected = [
        ...d.differentials.map((x: { code: string }) => `differential:${x.code}`),
        `triage:${d.triage.level}`,
        ...[...new Set(d.plan.tests.map((t: { test: string }) => `plan:test:${t.test}`))],
        ...d.plan.treatments.map((t: { drug: string }) => `plan:treatment:${t.drug}`),
        ...d.plan.toxins.map((t: { toxin: string }) => `plan:toxin:${t.toxin}`),
        ...d.plan.blocked.map((b: { drug: string }) => `plan:blocked:${b.drug}`),
      ];
      assert.deepEqual(keys, expected);
      assert.ok(keys.includes('plan:toxin:lilies'));
      // Each differential's evidence is exactly what the report gave it, weights included.
      for (const x of d.differentials as Array<{ code: string; probability: number; evidence: Array<{ finding: string; weight: number }> }>) {
        const c = trace.conclusions.find((k: { type: string; code: string }) => k.type === 'differential' && k.code === x.code);
        const listed = x.evidence.length === 0 ? [{ finding: null, weight: null }] : x.evidence.map((e) => ({ finding: e.finding, weight: e.weight }));
        assert.deepEqual(c.evidence.map((e: { finding: string; weight: number }) => ({ finding: e.finding, weight: e.weight })), listed);
        assert.ok(c.evidence.every((e: { probability: number }) => e.probability === x.probability));
      }
      const toxin = trace.conclusions.find((k: { code: string }) => k.code === 'toxin:lilies');
      assert.equal(toxin.evidence[0].kind, 'complaint');
      assert.match(toxin.evidence[0].text, /lily/);
    });

    it('refuses an unknown species, an unconvertible unit, an unknown sign or drug with 422 naming the field; writes nothing', async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ ...GDV, patient: { ...GDV.patient, species: 'rabbit' } }, /patient\.species/],
        [{ ...GDV, labs: [{ analyte: 'glucose', value: 5, unit: 'furlongs' }] }, /labs\[0\]\.unit/],
        [{ ...GDV, labs: [{ analyte: 'glucose', value: 'high', unit: 'mg/dL' }] }, /labs\[0\]\.value/],
        [{ ...GDV, labs: [{ analyte: 'glucose', value: 250 }] }, /labs\[0\]\.unit/],
        [{ ...GDV, labs: [{ analyte: '2160-1', value: 1.2, unit: 'mg/dL' }] }, /labs\[0\]\.analyte/],
        [{ ...GDV, labs: [{ analyte: 'urine_glucose', value: 'lots' }] }, /labs\[0\]\.value/],
        [{ ...GDV, labs: [{ analyte: 'ALT', value: 40, unit: 'U/L' }, { analyte: '1742-6', value: 40, unit: 'mg/dL' }] }, /labs\[1\]\.unit/],
        [{ ...GDV, signs: ['not_a_finding'] }, /signs\[0\]/],
        [{ ...GDV, treatments: ['unobtainium'] }, /treatments\[0\]/],
      ];
      for (const [body, field] of cases) {
        const res = await api('POST', '/v1/diagnoses', { body });
        assert.equal(res.statusCode, 422, res.body);
        assert.match(String(res.json().field), field);
      }
      // The problem type says which part of a lab result is at fault; every faulty result is listed.
      const many = await api('POST', '/v1/diagnoses', { body: { ...GDV, labs: [{ analyte: 'glucose', value: 'high', unit: 'mg/dL' }, { analyte: 'ALT', value: 40, unit: 'U/L' }, { analyte: 'glucose', value: 5, unit: 'furlongs' }, { analyte: '2160-1', value: 1.2, unit: 'mg/dL' }] } });
      assert.equal(many.statusCode, 422, many.body);
      assert.equal(many.json().type, 'urn:agenticpet:problem:unreadable-lab-value');
      assert.deepEqual(many.json().problems.map((p: { field: string }) => p.field), ['labs[0].value', 'labs[2].unit', 'labs[3].analyte']);
      assert.equal((await api('POST', '/v1/diagnoses', { body: { ...GDV, labs: [{ analyte: 'glucose', value: 5, unit: 'furlongs' }] } })).json().type, 'urn:agenticpet:problem:unconvertible-unit');
      assert.equal((await api('POST', '/v1/diagnoses', { body: { ...GDV, labs: [{ analyte: '2160-1', value: 1.2, unit: 'mg/dL' }] } })).json().type, 'urn:agenticpet:problem:unknown-lab-analyte');
      assert.equal((await api('POST', '/v1/diagnoses', { body: { complaint: 'x' } })).statusCode, 400, 'a patient is required');
      const unitless = await api('POST', '/v1/diagnoses', { body: { ...GDV, labs: [{ analyte: 'usg', value: 1.03 }, { analyte: 'urine_ketones', value: 'trace' }, { analyte: 'lactate', value: '6.8', unit: 'mmol/L' }] } });
      assert.equal(unitless.statusCode, 201, `usg and a dipstick grade need no unit; a number may come as a string: ${unitless.body}`);
      assert.equal((await api('POST', '/v1/diagnoses', { body: { ...GDV, vitals: { heartRate: 'fast' } } })).statusCode, 400);
    });

    it('reads labs as laboratories send them: LOINC codes and lab names, UCUM units, and names the interval set of each result', async () => {
      const labs = [
        { analyte: '2160-0', value: 4.2, unit: 'mg/dL' },
        { analyte: 'ALT', value: '45', unit: '[IU]/L' },
        { analyte: 'WBC', value: 12, unit: '10*9/L' },
        { analyte: 'Glucose', value: 5.4, unit: 'mmol/L' },
        { analyte: '12345-5', value: 3, unit: 'mg/dL' },
        { analyte: 'urine_glucose', value: '500 mg/dL' },
        { analyte: '5797-6', value: 'moderate' },
        { analyte: 'Urea', value: 25, unit: 'mmol/L' },
        { analyte: 'Mg', value: '2.4 H', unit: 'mg/dL' },
      ];
      const res = await api('POST', '/v1/diagnoses', { body: { ...GDV, labs } });
      assert.equal(res.statusCode, 201, res.body);
      const d = res.json();
      const byAnalyte = new Map(d.labs.map((l: { analyte: string }) => [l.analyte, l]));
      assert.deepEqual([...byAnalyte.keys()].sort(), ['alt', 'bun', 'creatinine', 'glucose', 'magnesium', 'urine_glucose', 'urine_ketones', 'wbc']);
      assert.ok(d.findings.some((f: { code: string }) => f.code === 'glucosuria') && d.findings.some((f: { code: string }) => f.code === 'ketonuria'), 'dipsticks as strips print them raise their findings');
      const creatinine = byAnalyte.get('creatinine') as { loinc: string; flag: string; interval: { source: string; unit: string } };
      assert.deepEqual([creatinine.loinc, creatinine.flag, creatinine.interval.source, creatinine.interval.unit], ['2160-0', 'high', 'cornell_chem_2017', 'mg/dL']);
      assert.equal((byAnalyte.get('wbc') as { valueUS: number }).valueUS, 12);
      assert.ok(d.warnings.some((w: string) => /Lab 12345-5 not interpreted: a LOINC code the knowledge base does not interpret/.test(w)), 'an unknown LOINC code is kept and reported');
    });

    it('a diagnosis of a stored patient uses its record and the encounter observations, linking evidence to them', async () => {
      const owner = (await api('POST', '/v1/owners', { body: { name: 'Owner' } })).json().id;
      const patient = (await api('POST', '/v1/patients', { body: { name: 'Tom', species: 'cat', sex: 'male', neutered: true, ageYears: 6, weightKg: 5.2, ownerId: owner } })).json().id;
      const enc = (await api('POST', `/v1/patients/${patient}/encounters`, { body: { type: 'emergency' } })).json().id;
      const obs = (await api('POST', `/v1/encounters/${enc}/observations`, { body: { category: 'clinical-sign', code: 'no_urine_passed_straining', value: true } })).json().id;
      const k = (await api('POST', `/v1/encounters/${enc}/observations`, { body: { category: 'laboratory', code: 'potassium', value: 8.1, unit: 'mmol/L' } })).json().id;
      await api('POST', `/v1/encounters/${enc}/observations`, { body: { category: 'laboratory', code: 'glucose', value: 5, unit: 'furlongs' } });
      const res = await api('POST', '/v1/diagnoses', { body: { patientId: patient, encounterId: enc, complaint: 'keeps going in and out of the litter tray crying' } });
      assert.equal(res.statusCode, 201, res.body);
      const d = res.json();
      assert.ok(d.warnings.some((w: string) => /Lab glucose not interpreted/.test(w)), 'a stored value in an unknown unit is kept and reported, not a 422');
      assert.equal(d.triage.level, 'emergency');
      assert.equal(d.differentials[0].code, 'urethral_obstruction');
      const refOf = new Map(d.findings.map((f: { code: string; source: { ref: string } }) => [f.code, f.source.ref]));
      const refs = d.differentials[0].evidence.map((e: { finding: string }) => refOf.get(e.finding));
      assert.ok(refs.includes(obs) && refs.includes(k), 'evidence names the observations it came from');
      const list = (await api('GET', `/v1/patients/${patient}/diagnoses`)).json();
      assert.deepEqual(list.items.map((x: { id: string }) => x.id), [d.id]);
      assert.equal((await other('POST', '/v1/diagnoses', { body: { patientId: patient, complaint: 'x' } })).statusCode, 404);
    });

    it('consultations gather inputs over calls, diagnose, and keep the chain in the session tier', async () => {
      const start = await api('POST', '/v1/consultations', { body: { patient: { species: 'cat', sex: 'female', neutered: false, ageYears: 3, weightKg: 3.9 } } });
      assert.equal(start.statusCode, 201, start.body);
      const id = start.json().id;
      assert.match(id, /^cs_[A-Za-z0-9_-]{22}$/);
      assert.equal((await api('POST', `/v1/consultations/${id}/inputs`, { body: { complaint: 'She licked lily pollen off her fur this morning.' } })).statusCode, 200);
      assert.equal((await api('POST', `/v1/consultations/${id}/inputs`, { body: { vitals: { heartRate: 210 }, signs: ['vomiting', 'lily_exposure'] } })).statusCode, 200);
      assert.equal((await other('GET', `/v1/consultations/${id}`)).statusCode, 404, "another clinic's session is not found");
      const diag = await api('POST', `/v1/consultations/${id}/diagnose`);
      assert.equal(diag.statusCode, 201, diag.body);
      assert.equal(diag.json().differentials[0].code, 'lily_toxicosis');
      assert.equal(diag.json().triage.level, 'emergency');
      assert.equal(diag.json().consultationId, id);
      const state = (await api('GET', `/v1/consultations/${id}`)).json();
      assert.deepEqual(state.chain.map((s: { agent: string }) => s.agent).sort(), ['differential', 'intake', 'labs', 'narrative', 'plan', 'triage']);
      assert.ok(state.messages.length >= 6);
      assert.ok(state.results.differential);
      assert.equal(state.inputs.length, 3);
      assert.equal((await api('GET', '/v1/consultations/cs_AAAAAAAAAAAAAAAAAAAAAA')).statusCode, 404);
      assert.equal((await api('GET', '/v1/consultations/not-a-session')).statusCode, 400);
    });

    it('streams each agent step as server-sent events, then the report', async () => {
      const id = (await api('POST', '/v1/consultations', { body: { patient: { species: 'dog', ageYears: 2, weightKg: 12 } } })).json().id;
      await api('POST', `/v1/consultations/${id}/inputs`, { body: { complaint: 'ate a whole bar of dark chocolate an hour ago, now shaking and restless' } });
      const res = await api('POST', `/v1/consultations/${id}/diagnose`, { headers: { accept: 'text/event-stream' } });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /text\/event-stream/);
      const events = res.body
        .trim()
        .split('\n\n')
        .map((block) => ({ event: /^event: (.+)$/m.exec(block)![1], data: JSON.parse(/^data: (.+)$/m.exec(block)![1]!) }));
      assert.deepEqual(events.slice(0, 6).map((e) => e.event), Array(6).fill('step'));
      assert.deepEqual(events.slice(0, 6).map((e) => e.data.seq), [1, 2, 3, 4, 5, 6]);
      assert.equal(events[6]!.event, 'diagnosis');
      assert.equal(events[6]!.data.differentials[0].code, 'chocolate_toxicosis');
      const missing = await api('POST', '/v1/consultations/cs_BBBBBBBBBBBBBBBBBBBBBB/diagnose', { headers: { accept: 'text/event-stream' } });
      assert.equal(missing.statusCode, 404, 'refused before streaming: an ordinary problem');
    });
  });
}
