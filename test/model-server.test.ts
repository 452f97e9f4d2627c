/**
 * The remote path over a real socket: the repo's model server on 127.0.0.1 (ephemeral port) with
 * the committed image-kind model, reached by the KServe v2 client. Same answers as in process;
 * 4xx JSON errors for requests that do not fit; a server that is down, or that accepts and never
 * answers, is a ModelRuntimeError the caller can degrade on, within its budget.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { ModelRuntimeError } from '../src/clinical/errors.js';
import type { ImageInputSpec, ModelRef, Tensor } from '../src/clinical/ports.js';
import { KServeModelRuntime } from '../src/imaging/kserve-client.js';
import { buildModelServer } from '../src/imaging/model-server.js';
import { OnnxModelRuntime } from '../src/imaging/onnx-runtime.js';
import { SharpImageDecoder } from '../src/imaging/sharp-decoder.js';
import { stack } from '../scripts/models/image-kind-eval.js';
import { JPEG, PNG } from './support/images.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const modelsDir = path.join(root, 'models');
const card = JSON.parse(fs.readFileSync(path.join(modelsDir, 'image-kind/1.0.0/card.json'), 'utf8')) as { sha256: string; input: ImageInputSpec };
const ref: ModelRef = { name: 'image-kind', version: '1.0.0', sha256: card.sha256 };
const spec: ImageInputSpec = { name: 'image', width: 64, height: 64, channels: 3, layout: 'NCHW', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

async function rejectsWith(p: Promise<unknown>, reason: ModelRuntimeError['reason']): Promise<ModelRuntimeError> {
  const err = await p.then(
    () => assert.fail(`expected a ModelRuntimeError ${reason}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ModelRuntimeError, `a ModelRuntimeError, got ${String(err)}`);
  assert.equal(err.reason, reason, err.message);
  return err;
}

describe('model server (KServe v2 over loopback)', () => {
  let app: FastifyInstance;
  let base: string;
  let client: KServeModelRuntime;
  let input: Tensor;

  before(async () => {
    ({ app } = await buildModelServer({ modelsDir }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address() as net.AddressInfo;
    base = `http://127.0.0.1:${address.port}`;
    client = new KServeModelRuntime({ baseUrl: base });
    const decoder = new SharpImageDecoder();
    input = stack([await decoder.toTensor(PNG, spec), await decoder.toTensor(JPEG, spec), await decoder.toTensor(PNG, spec)]);
  });
  after(async () => {
    await client.close();
    await app.close();
  });

  it('answers what the in-process runtime answers, for a batch', async () => {
    const remote = await client.infer(ref, [input], { timeoutMs: 5000 });
    const local = new OnnxModelRuntime({ modelsDir });
    const [expected] = await local.infer(ref, [input], { timeoutMs: 5000 });
    await local.close();
    assert.equal(remote.length, 1);
    assert.equal(remote[0]!.name, 'probabilities');
    assert.deepEqual(remote[0]!.shape, [3, 2]);
    // JSON carries each float32 exactly (as its shortest double), so the values are identical.
    assert.deepEqual(Array.from(remote[0]!.data), Array.from(expected!.data));
  });

  it('inputs as plain v2 JSON numbers give the same answer as the binary tensor extension (the default)', async () => {
    const json = new KServeModelRuntime({ baseUrl: base, binaryData: false });
    const [a] = await json.infer(ref, [input], { timeoutMs: 5000 });
    const [b] = await client.infer(ref, [input], { timeoutMs: 5000 });
    assert.deepEqual(Array.from(a!.data), Array.from(b!.data));
  });

  it('a binary body whose header length or sizes do not add up is a 400 JSON error', async () => {
    const post = async (header: unknown, tail: Buffer, headerLength?: number) => {
      const h = Buffer.from(JSON.stringify(header));
      const res = await fetch(`${base}/v2/models/image-kind/versions/1.0.0/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength ?? h.length) },
        body: Buffer.concat([h, tail]),
      });
      return { status: res.status, error: ((await res.json()) as { error: string }).error };
    };
    const bytes = Buffer.alloc(3 * 64 * 64 * 4);
    const good = { inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', parameters: { binary_data_size: bytes.length } }] };
    assert.equal((await post(good, bytes)).status, 200);
    assert.match((await post(good, bytes, 100_000_000)).error, /Inference-Header-Content-Length/);
    assert.match((await post(good, Buffer.concat([bytes, Buffer.alloc(4)]))).error, /bytes after the last binary input/);
    assert.match((await post({ inputs: [{ ...good.inputs[0], parameters: { binary_data_size: bytes.length + 4 } }] }, bytes)).error, /binary_data_size/);
    assert.match((await post({ inputs: [{ ...good.inputs[0], parameters: { binary_data_size: bytes.length - 4 } }] }, bytes.subarray(4))).error, /values for shape/);
    assert.match((await post({ inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32' }] }, Buffer.alloc(0))).error, /neither data nor/);
  });

  it('health, readiness and metadata endpoints', async () => {
    assert.equal(await client.ready(), true);
    assert.equal(await client.modelReady(ref), true);
    assert.equal(await client.modelReady({ name: 'image-kind', version: '0.0.1' }), false);
    const live = await fetch(`${base}/v2/health/live`);
    assert.equal(live.status, 200);
    const meta = (await (await fetch(`${base}/v2/models/image-kind/versions/1.0.0`)).json()) as Record<string, unknown>;
    assert.deepEqual(meta, {
      name: 'image-kind',
      versions: ['1.0.0'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'image', datatype: 'FP32', shape: ['batch', 3, 64, 64] }],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: ['batch', 2] }],
      parameters: { sha256: card.sha256 },
    });
  });

  it('an unknown model or version is a 404 JSON error, and unknown-model to the client', async () => {
    const res = await fetch(`${base}/v2/models/nope/versions/1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'FP32', data: [0] }] }) });
    assert.equal(res.status, 404);
    assert.match(((await res.json()) as { error: string }).error, /not served here/);
    await rejectsWith(client.infer({ ...ref, version: '2.0.0' }, [input], { timeoutMs: 5000 }), 'unknown-model');
    assert.equal((await fetch(`${base}/v2/models/nope/versions/1`)).status, 404);
  });

  it('requests that do not fit the model are 400 JSON errors naming why (shape, size, name, datatype, schema)', async () => {
    const post = async (body: unknown) => {
      const res = await fetch(`${base}/v2/models/image-kind/versions/1.0.0/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      return { status: res.status, error: ((await res.json()) as { error: string }).error };
    };
    const data = Array.from({ length: 3 * 64 * 64 }, () => 0);
    assert.deepEqual((await post({ inputs: [{ name: 'image', shape: [1, 3, 32, 128], datatype: 'FP32', data }] })).status, 400);
    const wrongSize = await post({ inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', data: data.slice(1) }] });
    assert.equal(wrongSize.status, 400);
    assert.match(wrongSize.error, /values for shape/);
    assert.match((await post({ inputs: [{ name: 'pixels', shape: [1, 3, 64, 64], datatype: 'FP32', data }] })).error, /do not match/);
    assert.equal((await post({ inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'INT8', data }] })).status, 400);
    assert.equal((await post({ inputs: [] })).status, 400);
    assert.equal((await post({ inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', data: ['x'] }] })).status, 400);
    assert.match((await post({ inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', data }], outputs: [{ name: 'logits' }] })).error, /no output logits/);
    const res = await fetch(`${base}/v2/models/image-kind/versions/1.0.0/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"inputs": [' });
    assert.equal(res.status, 400);
    await rejectsWith(client.infer(ref, [{ ...input, shape: [3, 3, 64, 32] }], { timeoutMs: 5000 }), 'bad-input');
  });

  it('a digest that is not the served artefact\'s is refused (409), integrity to the client', async () => {
    const err = await rejectsWith(client.infer({ ...ref, sha256: 'ab'.repeat(32) }, [input], { timeoutMs: 5000 }), 'integrity');
    assert.match(err.message, /409/);
  });

  it('a server that is down is unavailable, at once', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const down = new KServeModelRuntime({ baseUrl: `http://127.0.0.1:${port}` });
    const t0 = performance.now();
    await rejectsWith(down.infer(ref, [input], { timeoutMs: 2000 }), 'unavailable');
    assert.ok(performance.now() - t0 < 1500, 'refused connection, not the timeout');
    assert.equal(await down.ready(), false);
  });

  it('a server that accepts and never answers is a timeout within the budget', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const stuck = new KServeModelRuntime({ baseUrl: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}` });
      const t0 = performance.now();
      await rejectsWith(stuck.infer(ref, [input], { timeoutMs: 300 }), 'timeout');
      const took = performance.now() - t0;
      assert.ok(took >= 250 && took < 1500, `rejected after ${Math.round(took)} ms for a 300 ms budget`);
      assert.equal(await stuck.ready(200), false);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('a response that is not a v2 inference response is failed, not trusted', async () => {
    const fake = (await import('fastify')).default();
    fake.post('/v2/models/:name/versions/:version/infer', async () => ({ model_name: 'image-kind', outputs: [{ name: 'probabilities', shape: [3, 2], datatype: 'FP32', data: [0.5, 0.5] }] }));
    await fake.listen({ host: '127.0.0.1', port: 0 });
    try {
      const liar = new KServeModelRuntime({ baseUrl: `http://127.0.0.1:${(fake.server.address() as net.AddressInfo).port}`, binaryData: false });
      await rejectsWith(liar.infer(ref, [input], { timeoutMs: 2000 }), 'failed');
    } finally {
      await fake.close();
    }
  });
});
