/**
 * The in-process ModelRuntime (ONNX Runtime) and the image -> tensor preparation (sharp), on
 * real images and the committed image-kind model: digest checked before a session exists, errors
 * of one type with a stable reason, tensors laid out as the spec says (orientation, channels,
 * normalisation, layout).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { openModelRuntime } from '../src/app.js';
import { ModelRuntimeError } from '../src/clinical/errors.js';
import { ConfigError, loadConfig } from '../src/config.js';
import type { ImageInputSpec, ModelRef } from '../src/clinical/ports.js';
import { OnnxModelRuntime } from '../src/imaging/onnx-runtime.js';
import { SharpImageDecoder } from '../src/imaging/sharp-decoder.js';
import { stack } from '../scripts/models/image-kind-eval.js';
import { encodeModel, FLOAT } from '../scripts/models/onnx-writer.js';
import { PNG } from './support/images.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const modelsDir = path.join(root, 'models');
const card = JSON.parse(fs.readFileSync(path.join(modelsDir, 'image-kind/1.0.0/card.json'), 'utf8')) as { sha256: string; input: ImageInputSpec };
const ref: ModelRef = { name: 'image-kind', version: '1.0.0', sha256: card.sha256 };
const spec: ImageInputSpec = { name: card.input.name, width: card.input.width, height: card.input.height, channels: card.input.channels, layout: card.input.layout, mean: card.input.mean, std: card.input.std };
const decoder = new SharpImageDecoder();

async function rejectsWith(p: Promise<unknown>, reason: ModelRuntimeError['reason']): Promise<ModelRuntimeError> {
  const err = await p.then(
    () => assert.fail(`expected a ModelRuntimeError ${reason}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ModelRuntimeError, `a ModelRuntimeError, got ${String(err)}`);
  assert.equal(err.reason, reason, err.message);
  return err;
}

const solid = (width: number, height: number, r: number, g: number, b: number) => sharp({ create: { width, height, channels: 3, background: { r, g, b } } }).png().toBuffer();

describe('SharpImageDecoder.toTensor', () => {
  it('scales to 0..1, applies (v - mean) / std per channel and lays out NCHW', async () => {
    const t = await decoder.toTensor(await solid(30, 20, 255, 0, 51), { name: 'x', width: 4, height: 2, channels: 3, layout: 'NCHW', mean: [0.5, 0.5, 0.2], std: [0.5, 0.25, 0.1] });
    assert.deepEqual(t.shape, [1, 3, 2, 4]);
    assert.equal(t.datatype, 'FP32');
    const plane = 8;
    for (let p = 0; p < plane; p++) {
      assert.ok(Math.abs(t.data[p]! - 1) < 1e-5, `R: (1 - 0.5) / 0.5 = 1, got ${t.data[p]}`);
      assert.ok(Math.abs(t.data[plane + p]! - -2) < 1e-5, `G: (0 - 0.5) / 0.25 = -2, got ${t.data[plane + p]}`);
      assert.ok(Math.abs(t.data[2 * plane + p]! - 0) < 1e-5, `B: (0.2 - 0.2) / 0.1 = 0, got ${t.data[2 * plane + p]}`);
    }
  });

  it('NHWC interleaves the channels of each pixel', async () => {
    const t = await decoder.toTensor(await solid(10, 10, 255, 0, 0), { name: 'x', width: 3, height: 3, channels: 3, layout: 'NHWC', mean: [0, 0, 0], std: [1, 1, 1] });
    assert.deepEqual(t.shape, [1, 3, 3, 3]);
    assert.deepEqual(Array.from(t.data.subarray(0, 6)), [1, 0, 0, 1, 0, 0]);
  });

  it('1 channel is the greyscale image; a greyscale file given 3 channels has three equal ones', async () => {
    const grey = await decoder.toTensor(await solid(10, 10, 200, 200, 200), { name: 'x', width: 5, height: 5, channels: 1, layout: 'NCHW', mean: [0], std: [1] });
    assert.deepEqual(grey.shape, [1, 1, 5, 5]);
    assert.ok(grey.data.every((v) => Math.abs(v - 200 / 255) < 0.01));
    const expanded = await decoder.toTensor(PNG, { ...spec });
    const plane = spec.width * spec.height;
    let spread = 0;
    for (let p = 0; p < plane; p++) spread = Math.max(spread, Math.abs(expanded.data[p]! - expanded.data[plane + p]!), Math.abs(expanded.data[p]! - expanded.data[2 * plane + p]!));
    assert.equal(spread, 0, 'R = G = B');
    const values = new Set(Array.from(expanded.data.subarray(0, plane)).map((v) => v.toFixed(2)));
    assert.ok(values.size > 3, 'the scene, not a flat image');
  });

  it('applies the EXIF orientation before resizing (a phone photo stored sideways)', async () => {
    // Stored 20 wide x 10 tall, left half white; orientation 6 displays it rotated 90 degrees
    // clockwise: 10 wide x 20 tall, the white half on top.
    const raw = Buffer.alloc(20 * 10, 0);
    for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) raw[y * 20 + x] = 255;
    const jpeg = await sharp(raw, { raw: { width: 20, height: 10, channels: 1 } }).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
    const t = await decoder.toTensor(jpeg, { name: 'x', width: 10, height: 20, channels: 1, layout: 'NCHW', mean: [0], std: [1] });
    const at = (x: number, y: number) => t.data[y * 10 + x]!;
    assert.ok(at(5, 2) > 0.9 && at(5, 17) < 0.1, `top white, bottom black (got ${at(5, 2)}, ${at(5, 17)})`);
    assert.ok(Math.abs(at(1, 10) - at(8, 10)) < 0.2 || at(1, 10) === at(8, 10), 'no left/right split as in the stored pixels');
  });

  it('refuses bytes that do not decode and specs that make no sense, as bad-input', async () => {
    const header = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(64, 7)]);
    await rejectsWith(decoder.toTensor(header, spec), 'bad-input');
    await rejectsWith(decoder.toTensor(PNG, { ...spec, mean: [0.5] }), 'bad-input');
    await rejectsWith(decoder.toTensor(PNG, { ...spec, std: [0.5, 0, 0.5] }), 'bad-input');
    await rejectsWith(decoder.toTensor(PNG, { ...spec, width: 0 }), 'bad-input');
  });
});

describe('OnnxModelRuntime', () => {
  const runtime = new OnnxModelRuntime({ modelsDir });
  after(() => runtime.close());

  it('runs the committed model on a batch: one probability row per image, each summing to 1', async () => {
    const batch = stack([await decoder.toTensor(PNG, spec), await decoder.toTensor(await solid(80, 60, 220, 120, 40), spec)]);
    const [out, ...rest] = await runtime.infer(ref, [batch], { timeoutMs: 5000 });
    assert.equal(rest.length, 0);
    assert.equal(out!.name, 'probabilities');
    assert.deepEqual(out!.shape, [2, 2]);
    for (const r of [0, 1]) assert.ok(Math.abs(out!.data[2 * r]! + out!.data[2 * r + 1]! - 1) < 1e-5);
    // The greyscale scene looks like the radiograph kind, the flat orange image does not.
    assert.ok(out!.data[0]! > out!.data[1]!, `scene: ${Array.from(out!.data.subarray(0, 2))}`);
    assert.ok(out!.data[3]! > out!.data[2]!, `orange: ${Array.from(out!.data.subarray(2, 4))}`);
  });

  it('reports the declared inputs and outputs, with the batch dimension symbolic', async () => {
    const meta = await runtime.metadata(ref);
    assert.deepEqual(meta.inputs, [{ name: 'image', datatype: 'FP32', shape: ['batch', 3, 64, 64] }]);
    assert.deepEqual(meta.outputs, [{ name: 'probabilities', datatype: 'FP32', shape: ['batch', 2] }]);
  });

  it('refuses an artefact whose SHA-256 is not the registry\'s, and loads it once the digest is right (failures are not cached)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'models-'));
    try {
      const bytes = fs.readFileSync(path.join(modelsDir, 'image-kind/1.0.0/model.onnx'));
      fs.mkdirSync(path.join(dir, 'm', '2'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'm', '2', 'model.onnx'), bytes);
      const local = new OnnxModelRuntime({ modelsDir: dir });
      const input = stack([await decoder.toTensor(PNG, spec)]);
      const wrong = createHash('sha256').update('another artefact').digest('hex');
      const err = await rejectsWith(local.infer({ name: 'm', version: '2', sha256: wrong }, [input], { timeoutMs: 5000 }), 'integrity');
      assert.match(err.message, new RegExp(card.sha256));
      // A tampered byte is caught the same way.
      const tampered = Buffer.from(bytes);
      tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
      fs.writeFileSync(path.join(dir, 'm', '2', 'model.onnx'), tampered);
      await rejectsWith(local.infer({ name: 'm', version: '2', sha256: card.sha256 }, [input], { timeoutMs: 5000 }), 'integrity');
      fs.writeFileSync(path.join(dir, 'm', '2', 'model.onnx'), bytes);
      const [out] = await local.infer({ name: 'm', version: '2', sha256: card.sha256 }, [input], { timeoutMs: 5000 });
      assert.deepEqual(out!.shape, [1, 2]);
      await local.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names an unknown model, a name that is a path, and inputs that do not fit, with stable reasons', async () => {
    const input = stack([await decoder.toTensor(PNG, spec)]);
    await rejectsWith(runtime.infer({ ...ref, version: '9.9.9' }, [input], { timeoutMs: 5000 }), 'unknown-model');
    await rejectsWith(runtime.infer({ ...ref, name: '../models/image-kind' }, [input], { timeoutMs: 5000 }), 'unknown-model');
    await rejectsWith(runtime.infer(ref, [{ ...input, shape: [1, 3, 32, 32], data: new Float32Array(3 * 32 * 32) }], { timeoutMs: 5000 }), 'bad-input');
    await rejectsWith(runtime.infer(ref, [{ ...input, name: 'pixels' }], { timeoutMs: 5000 }), 'bad-input');
    await rejectsWith(runtime.infer(ref, [{ ...input, data: input.data.subarray(0, 100) }], { timeoutMs: 5000 }), 'bad-input');
  });

  it('a run that outlasts its budget is a timeout even though ONNX Runtime cannot be interrupted (the late result is dropped)', async () => {
    // A deliberately slow model: 24 chained 512 x 512 matrix products (~6 GFLOP a run).
    const side = 512;
    const nodes = Array.from({ length: 24 }, (_, i) => ({ op: 'MatMul', inputs: [i === 0 ? 'x' : `h${i - 1}`, 'w'], outputs: [i === 23 ? 'y' : `h${i}`] }));
    const w = new Float32Array(side * side).map((_, i) => ((i % 7) - 3) / (side * 4));
    const bytes = encodeModel(
      { name: 'slow', nodes, initializers: [{ name: 'w', dims: [side, side], float: w }], inputs: [{ name: 'x', elemType: FLOAT, shape: [side, side] }], outputs: [{ name: 'y', elemType: FLOAT, shape: [side, side] }] },
      { opset: 13, irVersion: 7, producer: 'test', doc: 'slow on purpose', metadata: {} },
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'models-'));
    fs.mkdirSync(path.join(dir, 'slow', '1'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'slow', '1', 'model.onnx'), bytes);
    const slow = new OnnxModelRuntime({ modelsDir: dir });
    try {
      const m = { name: 'slow', version: '1', sha256: createHash('sha256').update(bytes).digest('hex') };
      const x = { name: 'x', shape: [side, side], datatype: 'FP32' as const, data: new Float32Array(side * side).fill(0.5) };
      await slow.warm(m);
      const t0 = performance.now();
      const [y] = await slow.infer(m, [x], { timeoutMs: 60_000 });
      const took = performance.now() - t0;
      assert.deepEqual(y!.shape, [side, side]);
      assert.ok(took >= 8, `a warm run takes ${took.toFixed(1)} ms: too fast to test a budget below it`);
      const budget = Math.floor(took / 4);
      const err = await rejectsWith(slow.infer(m, [x], { timeoutMs: budget }), 'timeout');
      assert.match(err.message, /over its \d+ ms budget|did not answer within/);
    } finally {
      await slow.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a budget shorter than the work is a timeout, not a late answer', async () => {
    // A cold runtime must read, hash and load the artefact first: more than 1 ms of work.
    const cold = new OnnxModelRuntime({ modelsDir });
    const input = stack([await decoder.toTensor(PNG, spec)]);
    await rejectsWith(cold.infer(ref, [input], { timeoutMs: 1 }), 'timeout');
    // The load went on and is cached; a sane budget now answers.
    const [out] = await cold.infer(ref, [input], { timeoutMs: 5000 });
    assert.deepEqual(out!.shape, [1, 2]);
    await cold.close();
    await rejectsWith(cold.infer(ref, [input], { timeoutMs: 5000 }), 'unavailable');
  });
});

describe('MODELS_DIR and MODEL_SERVER_URL', () => {
  it('default: in process, from the repo\'s models/; MODEL_SERVER_URL set: the KServe v2 client', async () => {
    const config = loadConfig({});
    assert.equal(config.models.dir, modelsDir);
    assert.equal(config.models.serverUrl, undefined);
    assert.equal(config.models.intraOpThreads, 1);
    const local = openModelRuntime(config);
    assert.equal(local.kind, 'onnx');
    await local.close();
    const remote = openModelRuntime(loadConfig({ MODEL_SERVER_URL: 'http://image-kind.models.internal:8080', MODELS_DIR: '/srv/models' }));
    assert.equal(remote.kind, 'kserve-v2');
    assert.equal(loadConfig({ MODELS_DIR: '/srv/models' }).models.dir, '/srv/models');
  });

  it('a MODEL_SERVER_URL that is not an http(s) base URL, or a thread count out of range, fails at start naming the variable', () => {
    for (const bad of ['image-kind:8080', 'ftp://x', 'http://x/v2?debug=1']) {
      assert.throws(() => loadConfig({ MODEL_SERVER_URL: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'MODEL_SERVER_URL');
    }
    assert.throws(() => loadConfig({ MODEL_INTRA_OP_THREADS: '0' }), (e: unknown) => e instanceof ConfigError && e.variable === 'MODEL_INTRA_OP_THREADS');
  });
});
