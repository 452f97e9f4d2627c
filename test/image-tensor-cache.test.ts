/**
 * The cache of prepared images (src/clinical/diagnoses/image-tensor-cache.ts): bounded by bytes
 * with least-recently-used eviction, keyed by clinic, bytes' hash and every spec field that shapes
 * the tensor, one preparation for concurrent misses; and, through the whole service (real routes,
 * sharp, ONNX Runtime and the image-kind model), that a clinic can neither name another clinic's
 * media nor get its prepared image by uploading the same bytes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ImagingModel } from '../src/agents/imaging.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { readCaseImages, type CaseImagingDeps } from '../src/clinical/diagnoses/case-imaging.js';
import { ImageTensorCache } from '../src/clinical/diagnoses/image-tensor-cache.js';
import { uuidv7 } from '../src/clinical/ids.js';
import { ServingModels } from '../src/clinical/models/serving.js';
import type { ImageInputSpec, ImagePreprocessor, RegisteredModel, Tensor } from '../src/clinical/ports.js';
import { SharpImageDecoder } from '../src/imaging/sharp-decoder.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { scenePng } from './support/images.js';
import { FakeModelRuntime, FakePreprocessor } from './support/model-runtime.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';

const SPEC: ImageInputSpec = { name: 'image', width: 4, height: 4, channels: 3, layout: 'NCHW', mean: [0, 0, 0], std: [1, 1, 1], maxBatch: 8 };
const CLINIC_A = '0190f000-0000-7000-8000-00000000000a';
const CLINIC_B = '0190f000-0000-7000-8000-00000000000b';
const sha = (c: string) => c.repeat(64);
const tensor = (spec: ImageInputSpec = SPEC, fill = 0.5): Tensor => ({ name: spec.name, shape: [1, spec.channels, spec.height, spec.width], datatype: 'FP32', data: new Float32Array(spec.channels * spec.width * spec.height).fill(fill) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ImageTensorCache', () => {
  it('is sized by AGENTICPET_IMAGE_TENSOR_CACHE_MB: 64 MiB by default, 0 keeps none, a bad value names the variable', () => {
    assert.equal(loadConfig({}).imageTensorCacheBytes, 64 * 1024 * 1024);
    assert.equal(loadConfig({ AGENTICPET_IMAGE_TENSOR_CACHE_MB: '0' }).imageTensorCacheBytes, 0);
    assert.equal(loadConfig({ AGENTICPET_IMAGE_TENSOR_CACHE_MB: '256' }).imageTensorCacheBytes, 256 * 1024 * 1024);
    for (const bad of ['-1', '1.5', 'lots', '16385']) {
      assert.throws(() => loadConfig({ AGENTICPET_IMAGE_TENSOR_CACHE_MB: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'AGENTICPET_IMAGE_TENSOR_CACHE_MB');
    }
  });

  it('keys by clinic, hash and every field that shapes the tensor; maxBatch shapes none', async () => {
    const cache = new ImageTensorCache({ maxBytes: 1024 * 1024 });
    let made = 0;
    const make = async () => (made++, tensor());
    await cache.get(CLINIC_A, sha('a'), SPEC, make);
    await cache.get(CLINIC_A, sha('a'), { ...SPEC, maxBatch: 1 }, make);
    assert.equal(made, 1);
    const others: ImageInputSpec[] = [
      { ...SPEC, name: 'input' },
      { ...SPEC, width: 5 },
      { ...SPEC, height: 5 },
      { ...SPEC, channels: 1, mean: [0], std: [1] },
      { ...SPEC, layout: 'NHWC' },
      { ...SPEC, mean: [0.5, 0, 0] },
      { ...SPEC, std: [1, 1, 0.5] },
    ];
    for (const spec of others) await cache.get(CLINIC_A, sha('a'), spec, make);
    assert.equal(made, 1 + others.length, 'a spec that differs in any field that shapes the tensor is prepared again');
    await cache.get(CLINIC_A, sha('b'), SPEC, make);
    await cache.get(CLINIC_B, sha('a'), SPEC, make);
    assert.equal(made, 3 + others.length, 'other bytes, or the same bytes in another clinic, are prepared again');
    assert.deepEqual(cache.counts, { hits: 1, joined: 0, misses: 3 + others.length });
  });

  it('keeps at most maxBytes, dropping the least recently used first; an entry over the bound is returned, not kept', async () => {
    const probe = new ImageTensorCache({ maxBytes: 1024 * 1024 });
    await probe.get(CLINIC_A, sha('0'), SPEC, async () => tensor());
    const entry = probe.size.bytes;
    assert.ok(entry > 4 * 4 * 3 * 4, `an entry accounts its ${4 * 4 * 3 * 4} data bytes and more: ${entry}`);
    const cache = new ImageTensorCache({ maxBytes: Math.floor(entry * 2.5) });
    const made: string[] = [];
    const get = (c: string) => cache.get(CLINIC_A, sha(c), SPEC, async () => (made.push(c), tensor()));
    await get('a');
    await get('b');
    await get('a'); // a is now the most recently used
    await get('c'); // over the bound: b goes
    assert.deepEqual(cache.size, { entries: 2, bytes: 2 * entry });
    await get('a');
    await get('c');
    assert.deepEqual(made, ['a', 'b', 'c']);
    await get('b');
    assert.deepEqual(made, ['a', 'b', 'c', 'b']);
    const big = { ...SPEC, width: 64, height: 64 };
    const t = await cache.get(CLINIC_A, sha('d'), big, async () => tensor(big));
    assert.equal(t!.data.length, 64 * 64 * 3);
    assert.ok(cache.size.bytes <= Math.floor(entry * 2.5));
    let again = 0;
    await cache.get(CLINIC_A, sha('d'), big, async () => (again++, tensor(big)));
    assert.equal(again, 1);
    // 0 keeps nothing.
    const off = new ImageTensorCache({ maxBytes: 0 });
    let n = 0;
    for (let i = 0; i < 3; i++) await off.get(CLINIC_A, sha('a'), SPEC, async () => (n++, tensor()));
    assert.deepEqual([n, off.size.entries], [3, 0]);
    assert.throws(() => new ImageTensorCache({ maxBytes: -1 }), RangeError);
  });

  it('gives concurrent misses on one key one preparation; a failure or missing bytes is not kept', async () => {
    for (const maxBytes of [1024 * 1024, 0]) {
      const cache = new ImageTensorCache({ maxBytes });
      let made = 0;
      const slow = async () => (made++, await sleep(30), tensor());
      const all = await Promise.all(Array.from({ length: 8 }, () => cache.get(CLINIC_A, sha('a'), SPEC, slow)));
      assert.equal(made, 1, `maxBytes ${maxBytes}`);
      assert.ok(all.every((t) => t === all[0]));
      assert.deepEqual(cache.counts, { hits: 0, joined: 7, misses: 1 });
    }
    const cache = new ImageTensorCache({ maxBytes: 1024 * 1024 });
    let attempts = 0;
    const failing = async () => {
      attempts++;
      await sleep(10);
      throw new Error('libvips: corrupt');
    };
    const results = await Promise.allSettled([0, 1, 2].map(() => cache.get(CLINIC_A, sha('a'), SPEC, failing)));
    assert.ok(results.every((r) => r.status === 'rejected' && /corrupt/.test(String(r.reason))));
    assert.equal(attempts, 1);
    await assert.rejects(cache.get(CLINIC_A, sha('a'), SPEC, failing));
    assert.equal(attempts, 2, 'a failed preparation is tried again by the next lookup');
    let nulls = 0;
    assert.equal(await cache.get(CLINIC_A, sha('b'), SPEC, async () => (nulls++, null)), null);
    assert.equal(await cache.get(CLINIC_A, sha('b'), SPEC, async () => (nulls++, tensor())), (await cache.get(CLINIC_A, sha('b'), SPEC, async () => tensor(SPEC, 9))));
    assert.equal(nulls, 2, 'bytes found missing once are looked for again');
    assert.equal(cache.size.entries, 1);
  });
});

function registered(name: string, version: string, input: ImageInputSpec = SPEC): RegisteredModel {
  const at = new Date();
  const m: ImagingModel = { name, version, sha256: sha('e'), input, output: { activation: 'none' }, labels: [{ label: 'photograph', finding: null, threshold: 0.5, weight: 0 }] };
  return { id: uuidv7(), ...m, status: 'active', canaryShare: 0, activatedAt: at, createdAt: at, updatedAt: at };
}

/** A blob store of two clinics that counts reads, a preprocessor that counts and can be slowed. */
function deps(serving: RegisteredModel[], delayMs = 0): CaseImagingDeps & { reads: string[]; pre: FakePreprocessor; runtime: FakeModelRuntime } {
  const stored = new Map<string, Buffer>([[`${CLINIC_A}/${sha('1')}`, Buffer.from('clinic A image')]]);
  const reads: string[] = [];
  const pre = new FakePreprocessor();
  const slowPre: ImagePreprocessor = { toTensor: async (b, s) => (await sleep(delayMs), pre.toTensor(b, s)) };
  const runtime = new FakeModelRuntime();
  for (const m of serving) runtime.set(m.name, m.version, { rows: () => [0.9] });
  return {
    serving: new ServingModels({ servingModels: async () => serving }, 60_000),
    runtime,
    preprocessor: slowPre,
    blobs: { put: async () => undefined, get: async (clinic, s) => (reads.push(clinic), stored.get(`${clinic}/${s}`) ?? null) },
    tensors: new ImageTensorCache({ maxBytes: 1024 * 1024 }),
    budgetMs: 2000,
    reads,
    pre,
  };
}

describe('readCaseImages with the cache', () => {
  const image = { mediaId: 'media-a', sha256: sha('1') };

  it('prepares an image once for models that share a spec, again for one whose spec differs, and fetches its bytes once', async () => {
    const d = deps([registered('first', '1'), registered('second', '1'), registered('third', '2', { ...SPEC, mean: [0.5, 0.5, 0.5] })]);
    const out = await readCaseImages(d, CLINIC_A, [image], uuidv7());
    assert.equal(out.output!.readings.length, 3);
    assert.deepEqual(out.warnings, []);
    assert.equal(d.pre.calls, 2);
    assert.deepEqual(d.reads, [CLINIC_A]);
    await readCaseImages(d, CLINIC_A, [image], uuidv7());
    assert.deepEqual([d.pre.calls, d.reads.length, d.runtime.calls.length], [2, 1, 6]);
  });

  it('joins concurrent diagnoses of one image to one fetch and one preparation', async () => {
    const d = deps([registered('first', '1')], 40);
    const outs = await Promise.all(Array.from({ length: 8 }, () => readCaseImages(d, CLINIC_A, [image], uuidv7())));
    assert.ok(outs.every((o) => o.output!.readings.length === 1));
    assert.deepEqual([d.pre.calls, d.reads.length], [1, 1]);
  });

  it('never serves a clinic the image another clinic prepared, even for the same hash', async () => {
    const d = deps([registered('first', '1')]);
    assert.equal((await readCaseImages(d, CLINIC_A, [image], uuidv7())).output!.readings.length, 1);
    // Clinic B names the same hash (the diagnosis service would have refused A's media id before
    // this step; here the step itself is asked): its own blob namespace is read, and holds nothing.
    const b = await readCaseImages(d, CLINIC_B, [{ mediaId: 'media-b', sha256: sha('1') }], uuidv7());
    assert.deepEqual(b.output!.readings, []);
    assert.deepEqual(b.warnings, ['media media-b not read by a model: its bytes are not in the media store']);
    assert.deepEqual(d.reads, [CLINIC_A, CLINIC_B]);
    assert.equal(d.pre.calls, 1);
  });
});

describe('tenant isolation of prepared images through the service', () => {
  const dir = path.resolve(import.meta.dirname, '..', 'models', 'image-kind', '1.0.0');
  const spec = JSON.parse(fs.readFileSync(path.join(dir, 'registry.json'), 'utf8'));
  let db: PgliteExecutor;
  let rt: TestRuntime;
  let a: Call;
  let b: Call;
  const decoder = new SharpImageDecoder();
  let prepared = 0;

  before(async () => {
    db = await PgliteExecutor.open();
    rt = await startRuntime(db, {}, { imagePreprocessor: { toTensor: (bytes, s) => (prepared++, decoder.toTensor(bytes, s)) } });
    a = client(rt, (await rt.newClinic('Clinic A')).key);
    b = client(rt, (await rt.newClinic('Clinic B')).key);
    assert.equal((await a('POST', '/v1/models', { body: spec })).statusCode, 201);
    assert.equal((await a('POST', '/v1/models/image-kind/versions/1.0.0/activate')).statusCode, 200);
  });
  after(async () => {
    await rt?.close();
    await db?.close();
  });

  const tensorLookups = async (): Promise<number> => {
    const text = (await rt.runtime.app.inject({ method: 'GET', url: '/metrics' })).body;
    return [...text.matchAll(/^agenticpet_cache_requests_total\{[^}]*cache="image_tensor"[^}]*\} (\d+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
  };
  const diagnose = (call: Call, mediaId: string) => call('POST', '/v1/diagnoses', { body: { patient: { species: 'dog' }, complaint: 'limping on the left fore since yesterday', mediaIds: [mediaId] } });

  it('refuses a second clinic a first clinic\'s media id before the cache is consulted, and prepares the same bytes again for their uploader', async () => {
    const png = await scenePng({ width: 256, height: 192, mark: 17 });
    const up = await a('POST', '/v1/media', { raw: png, contentType: 'image/png' });
    assert.equal(up.statusCode, 201, up.body);
    const mediaA = up.json().id as string;
    for (let i = 0; i < 2; i++) {
      const res = await diagnose(a, mediaA);
      assert.equal(res.statusCode, 201, res.body);
      assert.deepEqual(res.json().imaging.readings.map((r: { mediaId: string }) => r.mediaId), [mediaA]);
    }
    assert.deepEqual([prepared, await tensorLookups()], [1, 2], 'clinic A: prepared once, served from the cache the second time');

    const refused = await diagnose(b, mediaA);
    assert.equal(refused.statusCode, 422, refused.body);
    assert.match(refused.body, /does not name media of this clinic/);
    assert.ok(!refused.body.includes('imaging'), refused.body);
    assert.deepEqual([prepared, await tensorLookups()], [1, 2], 'the refusal came before any cache lookup or preparation');

    // The same bytes uploaded by clinic B are B's media: B's diagnosis prepares them from B's own
    // blob, not from A's cache entry.
    const upB = await b('POST', '/v1/media', { raw: png, contentType: 'image/png' });
    assert.equal(upB.statusCode, 201, upB.body);
    const mediaB = upB.json().id as string;
    assert.notEqual(mediaB, mediaA);
    const res = await diagnose(b, mediaB);
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().imaging.readings.map((r: { mediaId: string }) => r.mediaId), [mediaB]);
    assert.deepEqual([prepared, await tensorLookups()], [2, 3]);
  });
});
