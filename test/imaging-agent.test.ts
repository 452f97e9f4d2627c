/**
 * The imaging agent (issue 13 §4) with a fake model runtime: batching, thresholds, what an image
 * is read as, findings that feed the differential with their weight, failures and slowness that
 * degrade the answer with a warning; the canary choice statistically; and that a diagnosis with
 * no image never reads the registry.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImageBytesUnavailable, runImaging, type ImagingModel, type ImagingPorts } from '../src/agents/imaging.js';
import { AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import type { CaseInput } from '../src/agents/types.js';
import { DiagnosesService } from '../src/clinical/diagnoses/diagnoses.js';
import { ImageTensorCache } from '../src/clinical/diagnoses/image-tensor-cache.js';
import { uuidv7 } from '../src/clinical/ids.js';
import { chooseVersions, ServingModels, unitHash } from '../src/clinical/models/serving.js';
import { Operations } from '../src/clinical/operation.js';
import type { ModelChangeBus, RegisteredModel, RequestContext } from '../src/clinical/ports.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { MemorySessionStore } from '../src/storage/sessions/memory.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { migrate } from '../src/storage/sql/migrate.js';
import { SqlClinicalStore } from '../src/storage/sql/store.js';
import { FakeModelRuntime, FakePreprocessor, imageValue } from './support/model-runtime.js';

const kb = loadKnowledgeBase();
const SHA = 'a'.repeat(64);

function model(over: Partial<ImagingModel> = {}): ImagingModel {
  return {
    name: 'skin-lesion-test',
    version: '1.0.0',
    sha256: SHA,
    input: { name: 'image', width: 4, height: 4, channels: 3, layout: 'NCHW', mean: [0, 0, 0], std: [1, 1, 1], maxBatch: 8 },
    output: { activation: 'none' },
    labels: [
      { label: 'mass', finding: 'skin_mass', threshold: 0.5, weight: 0.8 },
      { label: 'photograph', finding: null, threshold: 0.5, weight: 0 },
    ],
    ...over,
  };
}

const images = [Buffer.from('image one'), Buffer.from('image two'), Buffer.from('image three')];
const caseImages = images.map((b, i) => ({ mediaId: `m${i}`, sha256: String(i) }));
const ports = (runtime: FakeModelRuntime, pre = new FakePreprocessor()): ImagingPorts => ({
  infer: runtime.infer.bind(runtime),
  tensor: async (i, spec) => {
    const bytes = images[Number(i.sha256)];
    return bytes === undefined ? null : pre.toTensor(bytes, spec);
  },
});

describe('imaging agent (pure, fake runtime)', () => {
  it('batches the images into one tensor per model up to maxBatch, and reads each row as its own image', async () => {
    const rt = new FakeModelRuntime().set('skin-lesion-test', '1.0.0', { rows: (v) => [v, 0.9] });
    const out = await runImaging([model()], caseImages, ports(rt), { budgetMs: 1000 });
    assert.deepEqual(rt.calls.map((c) => c.shape), [[3, 3, 4, 4]]);
    assert.deepEqual(out.warnings, []);
    assert.deepEqual(out.readings.map((r) => r.mediaId), ['m0', 'm1', 'm2']);
    for (const [i, r] of out.readings.entries()) {
      const v = imageValue(images[i]!);
      assert.equal(r.labels[0]!.probability, Math.round(Math.fround(v) * 10000) / 10000);
      assert.deepEqual(r.findings, v >= 0.5 ? ['skin_mass'] : []);
      // A label that maps to no finding is what the image was read as, never a finding.
      assert.deepEqual(r.readAs, ['photograph']);
    }
    assert.ok(!out.findings.some((f) => f.code === 'photograph'));
    const one = new FakeModelRuntime().set('skin-lesion-test', '1.0.0', { rows: (v) => [v, 0.9] });
    await runImaging([model({ input: { ...model().input, maxBatch: undefined } })], caseImages, ports(one), { budgetMs: 1000 });
    assert.deepEqual(one.calls.map((c) => c.shape), [[1, 3, 4, 4], [1, 3, 4, 4], [1, 3, 4, 4]]);
  });

  it('turns a label over its threshold into a present finding weighted by weight x probability, from its media and model', async () => {
    const rt = new FakeModelRuntime().set('skin-lesion-test', '1.0.0', { rows: (v) => (v === Math.fround(imageValue(images[1]!)) ? [0.9, 0.1] : [0.2, 0.1]) });
    const out = await runImaging([model()], caseImages, ports(rt), { budgetMs: 1000 });
    assert.deepEqual(out.findings, [
      { code: 'skin_mass', present: true, weight: 0.72, source: { kind: 'media', ref: 'm1', text: 'mass (skin-lesion-test@1.0.0)', value: 0.9, model: { name: 'skin-lesion-test', version: '1.0.0', sha256: SHA } } },
    ]);
    assert.deepEqual(out.models, [{ name: 'skin-lesion-test', version: '1.0.0', sha256: SHA }]);
    assert.deepEqual(out.readings.map((r) => r.readAs), [[], [], []]);
  });

  it('applies the softmax of the card to logits', async () => {
    const rt = new FakeModelRuntime().set('skin-lesion-test', '1.0.0', { rows: () => [2, 0] });
    const out = await runImaging([model({ output: { activation: 'softmax' } })], caseImages.slice(0, 1), ports(rt), { budgetMs: 1000 });
    assert.equal(out.readings[0]!.labels[0]!.probability, Math.round((Math.exp(2) / (Math.exp(2) + 1)) * 10000) / 10000);
  });

  it('a failing, missing, misshapen or slow model costs its readings and a warning naming it; the others are kept', async () => {
    const rt = new FakeModelRuntime()
      .set('good', '1', { rows: () => [0.9, 0.9] })
      .set('broken', '2', { rows: () => [0.9, 0.9], fail: 'CUDA out of memory' })
      .set('slow', '3', { rows: () => [0.9, 0.9], delayMs: 2000 })
      .set('misshapen', '4', { rows: () => [0.9] });
    const models = ['good@1', 'broken@2', 'slow@3', 'misshapen@4', 'absent@5'].map((n) => model({ name: n.split('@')[0]!, version: n.split('@')[1]! }));
    const started = performance.now();
    const out = await runImaging(models, caseImages, ports(rt), { budgetMs: 150 });
    const took = performance.now() - started;
    assert.ok(took < 1000, `answered after ${took} ms, the slow model takes 2000`);
    assert.deepEqual(out.models.map((m) => m.name), ['good']);
    assert.equal(out.readings.length, 3);
    const w = out.warnings.join('\n');
    assert.match(w, /imaging model broken@2 failed \(CUDA out of memory\)/);
    assert.match(w, /imaging model slow@3 did not answer within the 150 ms imaging budget/);
    assert.match(w, /imaging model misshapen@4 failed \(its output has shape \[3, 1\] for 3 image\(s\), the registry names 2 labels\)/);
    assert.match(w, /imaging model absent@5 failed \(model absent@5 is not loaded\)/);
    // The runtime is told how much of the budget is left.
    assert.ok(rt.calls.every((c) => c.timeoutMs > 0 && c.timeoutMs <= 150));
  });

  it('an image whose bytes are gone is a warning, the others are read', async () => {
    const rt = new FakeModelRuntime().set('skin-lesion-test', '1.0.0', { rows: () => [0.1, 0.9] });
    const out = await runImaging([model()], [...caseImages.slice(0, 1), { mediaId: 'gone', sha256: '9' }], ports(rt), { budgetMs: 1000 });
    assert.deepEqual(out.read, ['m0']);
    assert.deepEqual(out.warnings, ['media gone not read by a model: its bytes are not in the media store']);
  });

  it('an image whose bytes cannot be fetched is left out for every model with one warning; a failed preprocessing fails its model only', async () => {
    const rt = new FakeModelRuntime().set('a', '1', { rows: () => [0.1, 0.9] }).set('b', '1', { rows: () => [0.1, 0.9] });
    const base = ports(rt);
    const flaky: ImagingPorts = {
      ...base,
      tensor: async (i, spec) => {
        if (i.mediaId === 'm1') throw new ImageBytesUnavailable('The media store could not be read');
        if (i.mediaId === 'm2' && spec.width === 5) throw new Error('image not usable as model input: corrupt');
        return base.tensor(i, spec);
      },
    };
    const out = await runImaging([model({ name: 'a', version: '1' }), model({ name: 'b', version: '1', input: { ...model().input, width: 5 } })], caseImages, flaky, { budgetMs: 1000 });
    assert.deepEqual(
      out.readings.map((r) => `${r.model.name}:${r.mediaId}`),
      ['a:m0', 'a:m2'],
    );
    assert.deepEqual(out.warnings, [
      'media m1 not read by a model: its bytes could not be fetched (The media store could not be read)',
      'imaging model b@1 failed (image not usable as model input: corrupt): its readings are missing from this answer',
    ]);
  });

  it('names the models that could not read an image some other model read', async () => {
    const rt = new FakeModelRuntime().set('a', '1', { rows: () => [0.1, 0.9] }).set('b', '1', { rows: () => [0.1, 0.9] });
    const base = ports(rt);
    const partial: ImagingPorts = { ...base, tensor: async (i, spec) => (i.mediaId === 'm0' && spec.width === 5 ? null : base.tensor(i, spec)) };
    const out = await runImaging([model({ name: 'a', version: '1' }), model({ name: 'b', version: '1', input: { ...model().input, width: 5 } })], caseImages.slice(0, 1), partial, { budgetMs: 1000 });
    assert.deepEqual(out.read, ['m0']);
    assert.deepEqual(out.warnings, ['media m0 not read by imaging model b@1: its bytes are not in the media store']);
  });
});

describe('image findings feed the differential', () => {
  const agents = new AgentRegistry(kb, null, { default: 1000, narrative: 1000 });
  const base: CaseInput = { species: 'dog', breed: null, ageYears: 6, sex: 'male', neutered: true, weightKg: 20, complaint: 'he is licking a spot on his leg', signs: [], vitals: {}, labs: [], mediaIds: ['m1'], treatments: [] };
  const finding = (weight: number) => ({ code: 'skin_mass', present: true, weight, source: { kind: 'media' as const, ref: 'm1', value: 0.9, model: { name: 'x', version: '1', sha256: SHA } } });
  const massConditions = kb.conditions.dog.filter((c) => c.findings.some((f) => f.code === 'skin_mass')).map((c) => c.code);

  it('moves the conditions that list the finding, more with more weight, and names the media as its source', async () => {
    assert.ok(massConditions.length > 0, 'the knowledge base has a dog condition listing skin_mass');
    const prob = (r: Awaited<ReturnType<typeof orchestrate>>) => r.outputs.differential!.differentials.filter((d) => massConditions.includes(d.code)).reduce((s, d) => s + d.probability, 0);
    const none = await orchestrate(agents, base);
    const half = await orchestrate(agents, { ...base, imageFindings: [finding(0.4)], imagesRead: ['m1'] });
    const full = await orchestrate(agents, { ...base, imageFindings: [finding(1)], imagesRead: ['m1'] });
    assert.ok(prob(none) < prob(half) && prob(half) < prob(full), `${prob(none)} < ${prob(half)} < ${prob(full)}`);
    const top = full.outputs.differential!.differentials.find((d) => massConditions.includes(d.code))!;
    const item = top.evidence.find((e) => e.finding === 'skin_mass')!;
    const itemHalf = half.outputs.differential!.differentials.find((d) => d.code === top.code)!.evidence.find((e) => e.finding === 'skin_mass')!;
    assert.ok(Math.abs(itemHalf.weight - 0.4 * item.weight) < 0.002, `${itemHalf.weight} is 0.4 x ${item.weight}`);
    assert.equal(full.findings.find((f) => f.code === 'skin_mass')!.source.ref, 'm1');
    // The differential's input digest covers the image findings.
    assert.notEqual(half.chainDigest, full.chainDigest);
  });

  it('keeps the "not interpreted" warning for images no model read, and drops it for those one did', async () => {
    const unread = (r: Awaited<ReturnType<typeof orchestrate>>) => r.warnings.filter((w) => w.includes('not interpreted'));
    assert.deepEqual(unread(await orchestrate(agents, base)), ['1 media item(s) attached to the case; images are stored and linked but not interpreted']);
    assert.deepEqual(unread(await orchestrate(agents, { ...base, imageFindings: [], imagesRead: ['m1'] })), []);
    assert.deepEqual(unread(await orchestrate(agents, { ...base, mediaIds: ['m1', 'm2'], imageFindings: [], imagesRead: ['m1'] })), [
      '1 media item(s) attached to the case; images are stored and linked but not interpreted',
    ]);
  });
});

function registered(name: string, version: string, status: RegisteredModel['status'], canaryShare = 0): RegisteredModel {
  const m = model({ name, version });
  const at = new Date();
  return { id: uuidv7(), ...m, input: { ...m.input }, status, canaryShare, activatedAt: status === 'active' ? at : null, createdAt: at, updatedAt: at };
}

describe('canary choice', () => {
  it('hashes to a uniform [0, 1)', () => {
    const xs = Array.from({ length: 5000 }, (_, i) => unitHash(`k${i}`));
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
  });

  it('honours the share: 2,000 diagnoses at share 0.2 pick the canary within 4.5 binomial standard deviations', () => {
    const serving = [registered('m', '1', 'active'), registered('m', '2', 'canary', 0.2), registered('other', '1', 'active')];
    const n = 2000;
    const picks = Array.from({ length: n }, () => chooseVersions(serving, uuidv7()));
    const canary = picks.filter((p) => p.some((m) => m.name === 'm' && m.version === '2')).length;
    const sd = Math.sqrt(n * 0.2 * 0.8); // 17.9
    assert.ok(Math.abs(canary - n * 0.2) <= 4.5 * sd, `${canary} canary picks of ${n}, expected ${n * 0.2} +- ${4.5 * sd}`);
    // Every diagnosis runs exactly one version per name, and the other name's active one.
    assert.ok(picks.every((p) => p.length === 2 && p.filter((m) => m.name === 'm').length === 1 && p.some((m) => m.name === 'other')));
    // The same diagnosis id always picks the same version.
    const id = uuidv7();
    assert.deepEqual(chooseVersions(serving, id), chooseVersions(serving, id));
    // A canary without an active version serves its share and nothing for the rest.
    const alone = Array.from({ length: n }, () => chooseVersions([registered('m', '2', 'canary', 0.2)], uuidv7()).length).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(alone - n * 0.2) <= 4.5 * sd, `${alone}`);
    assert.equal(chooseVersions([registered('m', '1', 'retired'), registered('m', '2', 'registered')], id).length, 0);
  });
});

describe('serving set cache', () => {
  it('loads once, reloads after invalidation or the TTL, and a change published on the bus reaches another instance', async () => {
    let loads = 0;
    const catalog = { servingModels: async () => (loads++, [registered('m', String(loads), 'active')]) };
    const listeners: Array<() => void> = [];
    const bus: ModelChangeBus = { publish: async () => listeners.forEach((l) => l()), onChange: (l) => listeners.push(l) };
    let now = 0;
    const a = new ServingModels(catalog, 30_000, bus, () => now);
    assert.equal((await a.current())[0]!.version, '1');
    await a.current();
    assert.equal(loads, 1);
    await bus.publish();
    assert.equal((await a.current())[0]!.version, '2');
    now += 30_000;
    assert.equal((await a.current())[0]!.version, '3');
    const failing = new ServingModels({ servingModels: async () => Promise.reject(new Error('db down')) }, 30_000);
    await assert.rejects(failing.current(), /db down/);
  });
});

describe('a diagnosis without images does no imaging work', () => {
  it('never reads the registry, the runtime or the preprocessor; one with an image does, once while cached', async () => {
    const db = await PgliteExecutor.open({});
    try {
      await migrate(db);
      const store = new SqlClinicalStore(db, 'imaging-test');
      const ops = new Operations(store);
      const { clinicId } = (await store.createClinic('Imaging', { id: uuidv7(), keyHash: Buffer.alloc(32, 7), keyPrefix: 'apk_test' }))!;
      const ctx: RequestContext = { principal: { keyId: uuidv7(), clinicId, role: 'vet' }, requestId: 'r1', sourceIp: null };
      let loads = 0;
      const serving = new ServingModels({ servingModels: async () => (loads++, [registered('skin-lesion-test', '1.0.0', 'active')]) }, 60_000);
      const runtime = new FakeModelRuntime().set('skin-lesion-test', '1.0.0', { rows: () => [0.9, 0.1] });
      const pre = new FakePreprocessor();
      const blobs = new Map<string, Buffer>();
      const sessions = Object.assign(new MemorySessionStore(), { degraded: false });
      const service = new DiagnosesService(ops, new AgentRegistry(kb, null, { default: 1000, narrative: 1000 }), () => sessions, 60, undefined, undefined, {
        serving,
        runtime,
        preprocessor: pre,
        blobs: { put: async (_c, sha, b) => void blobs.set(sha, b), get: async (_c, sha) => blobs.get(sha) ?? null },
        tensors: new ImageTensorCache({ maxBytes: 1024 * 1024 }),
        budgetMs: 1000,
      });
      const plain = await service.diagnose(ctx, { patient: { species: 'dog' }, complaint: 'vomiting since this morning' });
      assert.equal(plain.response.status, 201);
      assert.deepEqual([loads, runtime.calls.length, pre.calls], [0, 0, 0]);
      assert.ok(!('imaging' in (plain.response.body as object)));
      assert.equal(plain.response.bodyJson, JSON.stringify(plain.response.body));
      // A media record holding an image: stored as the media service does (content and bytes).
      const mediaId = uuidv7();
      await store.inClinic(ctx, (tx) => tx.insertRecord('media', mediaId, { contentType: 'image/png', sizeBytes: 3, sha256: 'b'.repeat(64), patientId: null, encounterId: null, description: null, image: null }, new Date()));
      blobs.set('b'.repeat(64), Buffer.from('png'));
      for (let i = 0; i < 2; i++) {
        const withImage = await service.diagnose(ctx, { patient: { species: 'dog' }, complaint: 'vomiting since this morning', mediaIds: [mediaId] });
        const body = withImage.response.body as { imaging: { readings: unknown[] }; provenance: { models: unknown[] }; warnings: string[] };
        assert.equal(body.imaging.readings.length, 1);
        // The report's text is spliced from the agents' JSON: byte for byte what serialising it gives.
        assert.equal(withImage.response.bodyJson, JSON.stringify(withImage.response.body));
        assert.deepEqual(body.provenance.models, [{ name: 'skin-lesion-test', version: '1.0.0', sha256: SHA }]);
        assert.ok(!body.warnings.some((w) => w.includes('not interpreted')), body.warnings.join('; '));
      }
      // The second diagnosis's image comes from the tensor cache: prepared once, read twice.
      assert.deepEqual([loads, runtime.calls.length, pre.calls], [1, 2, 1]);
    } finally {
      await db.close();
    }
  });
});
