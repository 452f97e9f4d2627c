/**
 * The model registry through the app (issue 13 §3), on PGlite and PostgreSQL: register, list,
 * activate, canary, roll back, retire, each audited; labels checked against the knowledge base;
 * who may change it. Then a diagnosis with an image end to end, with a fake model runtime: the
 * version the registry serves reads it at once (no redeploy), its provenance names the version,
 * and the trace links each image-derived finding to its media and model version.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SqlExecutor } from '../src/storage/sql/executor.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { scenePng, uniformPng } from './support/images.js';
import { FakeModelRuntime, FakePreprocessor } from './support/model-runtime.js';
import { callersByRole, client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason, type TestDatabase } from './support/services.js';

const SHA = (c: string) => c.repeat(64);

const modelBody = (version: string, over: Record<string, unknown> = {}) => ({
  name: 'skin-lesion-test',
  version,
  sha256: SHA(version.at(-1) === '1' ? 'a' : version.at(-1) === '2' ? 'b' : 'c'),
  input: { name: 'image', width: 8, height: 8, channels: 3, layout: 'NCHW', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], maxBatch: 4 },
  output: { activation: 'none' },
  labels: [
    { label: 'mass', finding: 'skin_mass', threshold: 0.5, weight: 0.8 },
    { label: 'photograph', finding: null, threshold: 0.5, weight: 0 },
  ],
  ...over,
});

function registrySuite(name: string, open: () => Promise<{ db: SqlExecutor; cleanup(): Promise<void> }>, skip: string | false) {
  describe(`model registry (${name})`, { skip }, () => {
    let rt: TestRuntime;
    let cleanup: () => Promise<void>;
    let admin: Call;
    let vet: Call;
    let otherAdmin: Call;
    const runtime = new FakeModelRuntime();

    before(async () => {
      const opened = await open();
      cleanup = opened.cleanup;
      rt = await startRuntime(opened.db, {}, { modelRuntime: runtime, imagePreprocessor: new FakePreprocessor() });
      const { key } = await rt.newClinic('Registry clinic');
      const callers = await callersByRole(rt, key);
      admin = callers.find((c) => c.role === 'admin')!.call;
      vet = callers.find((c) => c.role === 'vet')!.call;
      otherAdmin = client(rt, (await rt.newClinic('Another clinic')).key);
    });
    after(async () => {
      await rt?.close();
      await cleanup?.();
    });

    it('registers a version (201), refuses a duplicate (409), an unknown finding (422), a bad spec (422/400), and a non-admin (403)', async () => {
      const res = await admin('POST', '/v1/models', { body: modelBody('1.0.1') });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers.location, '/v1/models/skin-lesion-test/versions/1.0.1');
      assert.deepEqual([res.json().status, res.json().canaryShare, res.json().activatedAt], ['registered', 0, null]);
      assert.equal((await admin('POST', '/v1/models', { body: modelBody('1.0.1') })).statusCode, 409);
      const unknown = await admin('POST', '/v1/models', { body: modelBody('9.0.0', { labels: [{ label: 'x', finding: 'no_such_finding', threshold: 0.5, weight: 1 }] }) });
      assert.equal(unknown.statusCode, 422);
      assert.match(unknown.json().detail, /no_such_finding.*not a finding of the knowledge base/);
      const channels = await admin('POST', '/v1/models', { body: modelBody('9.0.1', { input: { ...modelBody('x').input, mean: [0.5] } }) });
      assert.equal(channels.statusCode, 422);
      assert.equal((await admin('POST', '/v1/models', { body: { ...modelBody('9.0.2'), sha256: 'xyz' } })).statusCode, 400);
      assert.equal((await vet('POST', '/v1/models', { body: modelBody('9.0.3') })).statusCode, 403);
      // Models are global: a vet reads them, every clinic sees the same registry.
      assert.equal((await vet('GET', '/v1/models')).json().items.length, 1);
      assert.equal((await otherAdmin('GET', '/v1/models?name=skin-lesion-test')).json().items[0].version, '1.0.1');
      assert.equal((await vet('GET', '/v1/models/skin-lesion-test/versions/1.0.1')).json().sha256, SHA('a'));
      assert.equal((await vet('GET', '/v1/models/skin-lesion-test/versions/7.7.7')).statusCode, 404);
    });

    it('activates, puts a canary with its share, rolls back to the previous version and retires, each audited', async () => {
      assert.equal((await admin('POST', '/v1/models', { body: modelBody('1.0.2') })).statusCode, 201);
      assert.equal((await admin('POST', '/v1/models', { body: modelBody('1.0.3') })).statusCode, 201);
      assert.equal((await vet('POST', '/v1/models/skin-lesion-test/versions/1.0.1/activate')).statusCode, 403);
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/rollback')).statusCode, 409, 'nothing active to roll back');
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/versions/1.0.1/activate')).json().status, 'active');
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/rollback')).json().type.endsWith('no-previous-version'), true);
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/versions/1.0.2/activate')).json().status, 'active');
      const status = async () => Object.fromEntries(((await admin('GET', '/v1/models')).json().items as Array<{ version: string; status: string; canaryShare: number }>).map((m) => [m.version, `${m.status}${m.canaryShare ? `:${m.canaryShare}` : ''}`]));
      assert.deepEqual(await status(), { '1.0.1': 'retired', '1.0.2': 'active', '1.0.3': 'registered' });
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/versions/1.0.2/canary', { body: { share: 0.3 } })).statusCode, 409, 'the active version is no canary');
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/versions/1.0.3/canary', { body: { share: 1.5 } })).statusCode, 400);
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/versions/1.0.3/canary', { body: { share: 0.3 } })).json().canaryShare, 0.3);
      assert.deepEqual(await status(), { '1.0.1': 'retired', '1.0.2': 'active', '1.0.3': 'canary:0.3' });
      // Roll back: 1.0.2 and its canary go, 1.0.1 (active before it) is back.
      const back = await admin('POST', '/v1/models/skin-lesion-test/rollback');
      assert.equal(back.statusCode, 200, back.body);
      assert.equal(back.json().version, '1.0.1');
      assert.deepEqual(await status(), { '1.0.1': 'active', '1.0.2': 'retired', '1.0.3': 'retired' });
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/versions/1.0.1/retire')).json().status, 'retired');
      // Each change is an audit event in the changing admin's clinic, naming the version and outcome.
      const events = (await admin('GET', '/v1/audit?entityType=model&limit=200')).json().items as Array<{ action: string; outcome: string }>;
      const outcomes = events.filter((e) => e.action !== 'read' && e.action !== 'search').map((e) => e.outcome);
      for (const o of ['success', 'activated', 'canary', 'rolled-back', 'retired']) assert.ok(outcomes.includes(o), `${o} in ${outcomes.join(', ')}`);
      assert.ok(outcomes.includes('model-exists') && outcomes.includes('no-previous-version'), 'refusals are audited too');
      assert.equal(outcomes.filter((o) => o === 'activated').length, 2);
    });

    it('a diagnosis with an image is read by the version the registry serves now, and the trace links its findings to media and model', async () => {
      runtime.set('skin-lesion-test', '1.0.2', { rows: () => [0.95, 0.9] }).set('skin-lesion-test', '1.0.3', { rows: () => [0.1, 0.9] });
      const upload = async (bytes: Buffer) => {
        const res = await admin('POST', '/v1/media', { raw: bytes, contentType: 'image/png' });
        assert.equal(res.statusCode, 201, res.body);
        return res.json().id as string;
      };
      const good = await upload(await scenePng({ mark: 3 }));
      const blank = await upload(await uniformPng());
      const diagnose = async (mediaIds: string[]) => {
        const res = await vet('POST', '/v1/diagnoses', { body: { patient: { species: 'dog' }, complaint: 'licking a lump on his leg', mediaIds } });
        assert.equal(res.statusCode, 201, res.body);
        return res.json();
      };
      // Nothing active: stored and linked, not interpreted.
      const before = await diagnose([good]);
      assert.equal(before.imaging, undefined);
      assert.ok(before.warnings.some((w: string) => w.includes('not interpreted')));
      // Activated: the next diagnosis uses it, no redeploy.
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/versions/1.0.2/activate')).statusCode, 200);
      const d = await diagnose([good, blank]);
      assert.deepEqual(d.provenance.models, [{ name: 'skin-lesion-test', version: '1.0.2', sha256: SHA('b') }]);
      assert.deepEqual(d.imaging.readings.map((r: { mediaId: string; readAs: string[]; findings: string[] }) => [r.mediaId, r.readAs, r.findings]), [[good, ['photograph'], ['skin_mass']]]);
      const f = d.findings.find((x: { code: string }) => x.code === 'skin_mass');
      assert.deepEqual([f.source.kind, f.source.ref, f.weight, f.source.model.version], ['media', good, 0.76, '1.0.2']);
      // The blank image is named as not used; it is the one image no model read.
      assert.ok(d.warnings.some((w: string) => w.startsWith(`media ${blank} not used: blank`)));
      assert.deepEqual(d.warnings.filter((w: string) => w.includes('not interpreted')), ['1 media item(s) attached to the case; images are stored and linked but not interpreted']);
      assert.ok(d.differentials.some((x: { evidence: Array<{ finding: string }> }) => x.evidence.some((e) => e.finding === 'skin_mass')));

      const trace = (await vet('GET', `/v1/diagnoses/${d.id}/trace`)).json();
      assert.deepEqual(trace.provenance.models, [{ name: 'skin-lesion-test', version: '1.0.2', sha256: SHA('b') }]);
      const links = trace.conclusions.flatMap((c: { evidence: Array<Record<string, unknown>> }) => c.evidence);
      const imageLinks = links.filter((e: Record<string, unknown>) => e.finding === 'skin_mass');
      assert.ok(imageLinks.length > 0);
      for (const e of imageLinks) assert.deepEqual([e.kind, e.ref, (e.model as { version: string }).version], ['media', good, '1.0.2']);
      const media = links.filter((e: Record<string, unknown>) => e.kind === 'media' && e.finding === null);
      assert.deepEqual(media.find((e: Record<string, unknown>) => e.ref === good).readBy, [{ model: { name: 'skin-lesion-test', version: '1.0.2', sha256: SHA('b') }, readAs: ['photograph'], findings: ['skin_mass'] }]);
      assert.equal(media.find((e: Record<string, unknown>) => e.ref === blank).interpreted, false);

      // A canary at share 1 takes every diagnosis; a rollback goes back at once.
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/versions/1.0.3/canary', { body: { share: 1 } })).statusCode, 200);
      const canary = await diagnose([good]);
      assert.equal(canary.provenance.models[0].version, '1.0.3');
      assert.ok(!canary.findings.some((x: { code: string }) => x.code === 'skin_mass'), 'the canary reads 0.1: under the threshold');
      assert.equal((await admin('POST', '/v1/models/skin-lesion-test/rollback')).json().version, '1.0.1');
      runtime.set('skin-lesion-test', '1.0.1', { rows: () => [0.6, 0.2], fail: 'runtime crashed' });
      const failed = await diagnose([good]);
      assert.equal(failed.imaging.readings.length, 0);
      assert.ok(failed.warnings.some((w: string) => w === 'imaging model skin-lesion-test@1.0.1 failed (runtime crashed): its readings are missing from this answer'), failed.warnings.join('; '));
      assert.ok(failed.warnings.some((w: string) => w.includes('not interpreted')), 'an image no model read keeps the warning');
      assert.equal(failed.provenance.models, undefined);
    });

    it('with AGENTICPET_MODEL_ADMIN_CLINICS, the admin of another clinic may not change the shared registry', async () => {
      const opened = await open();
      const limited = await startRuntime(opened.db, { AGENTICPET_MODEL_ADMIN_CLINICS: '01890000-0000-7000-8000-000000000001' });
      try {
        const tenant = client(limited, (await limited.newClinic('Tenant')).key);
        const res = await tenant('POST', '/v1/models', { body: modelBody('2.0.1') });
        assert.equal(res.statusCode, 403);
        assert.match(res.json().detail, /AGENTICPET_MODEL_ADMIN_CLINICS/);
        assert.equal((await tenant('GET', '/v1/models')).statusCode, 200);
      } finally {
        await limited.close();
        await opened.cleanup().catch(() => undefined);
      }
    });
  });
}

registrySuite('PGlite', async () => {
  const db = await PgliteExecutor.open({});
  return { db, cleanup: () => db.close() };
}, false);

registrySuite(
  'PostgreSQL',
  async () => {
    const database: TestDatabase = await createTestDatabase();
    const db = new PostgresExecutor({ connectionString: database.url, poolMax: 4 });
    return {
      db,
      cleanup: async () => {
        // A runtime's close already closed it (the admin-clinics case): the database is dropped anyway.
        await db.close().catch(() => undefined);
        await database.drop();
      },
    };
  },
  pgSkipReason(),
);
