/**
 * The repo's own model server: the in-process ONNX runtime (onnx-runtime.ts) behind the KServe
 * v2 / Open Inference Protocol REST API, so a model runs in its own container and the API reaches
 * it with kserve-client.ts (`agenticpet model-server`, deploy/model-server.Dockerfile).
 *
 *   GET  /v2                                         server metadata
 *   GET  /v2/health/live, /v2/health/ready           ready: every model loaded and checked
 *   GET  /v2/models/{name}/versions/{version}        model metadata (inputs, outputs, platform)
 *   GET  /v2/models/{name}/versions/{version}/ready
 *   POST /v2/models/{name}/versions/{version}/infer  JSON tensors in and out
 *
 * It serves the models found under --models at start (<name>/<version>/model.onnx, each with a
 * card.json whose sha256 the artefact must match, else the server refuses to start). Errors are
 * JSON `{"error": "..."}` as the protocol has them: 400 for a request that does not fit the model
 * (schema, names, shapes, sizes), 404 for a model it does not serve, 409 when the request's
 * `parameters.sha256` is not the served artefact's digest, 504 past the run budget, 500 otherwise.
 *
 * Inputs come as JSON numbers (`data`), or, with the binary tensor data extension of Triton's
 * HTTP protocol (what kserve-client.ts sends by default), as raw little-endian FP32 bytes after
 * the JSON header: Content-Type application/octet-stream, the header's length in
 * `Inference-Header-Content-Length`, each input's byte count in `parameters.binary_data_size`.
 * JSON numbers cost about 0.25 MB and tens of milliseconds of printing and parsing per 64 x 64 RGB
 * image; the bytes cost 48 KB and a copy (bench/imaging.ts). Outputs are always JSON.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { ModelRuntimeError } from '../clinical/errors.js';
import type { ModelRef, Tensor } from '../clinical/ports.js';
import { checkInputs, modelKey, OnnxModelRuntime, type ModelMetadata } from './onnx-runtime.js';

export interface ModelServerOptions {
  modelsDir: string;
  /** ONNX Runtime threads per run (default 1). */
  intraOpThreads?: number;
  /** Budget of one inference on the server, ms (default 10 s). */
  timeoutMs?: number;
  /** Largest request body, bytes (default 32 MiB: a batch of 64 images of 3 x 64 x 64 in JSON is ~10 MiB). */
  bodyLimit?: number;
  logger?: boolean | { level: string };
}

interface Served {
  ref: ModelRef;
  metadata: ModelMetadata;
}

/** Every <name>/<version>/model.onnx under dir, with the sha256 of its card.json (checked against the file). */
export function discoverModels(dir: string): ModelRef[] {
  const refs: ModelRef[] = [];
  for (const name of fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []) {
    const nameDir = path.join(dir, name);
    if (!fs.statSync(nameDir).isDirectory()) continue;
    for (const version of fs.readdirSync(nameDir).sort()) {
      const file = path.join(nameDir, version, 'model.onnx');
      if (!fs.existsSync(file)) continue;
      const cardFile = path.join(nameDir, version, 'card.json');
      if (!fs.existsSync(cardFile)) throw new Error(`${name}@${version}: ${file} has no card.json beside it`);
      const card = JSON.parse(fs.readFileSync(cardFile, 'utf8')) as { sha256?: unknown };
      if (typeof card.sha256 !== 'string') throw new Error(`${cardFile} has no sha256`);
      const digest = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
      if (digest !== card.sha256) throw new Error(`${name}@${version}: model.onnx has SHA-256 ${digest}, its card says ${card.sha256}`);
      refs.push({ name, version, sha256: card.sha256 });
    }
  }
  return refs;
}

const tensorSchema = {
  type: 'object',
  required: ['name', 'shape', 'datatype'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 256 },
    shape: { type: 'array', minItems: 1, maxItems: 8, items: { type: 'integer', minimum: 1, maximum: 1_000_000 } },
    datatype: { type: 'string', enum: ['FP32'] },
    data: { type: 'array', items: { type: 'number' } },
    parameters: { type: 'object', properties: { binary_data_size: { type: 'integer', minimum: 0 } } },
  },
} as const;

/** Where the binary extension's tensors sit on the parsed body: a symbol, so schema validation never sees them. */
const BINARY = Symbol('binary tensor data');

class BadRequest extends Error {
  readonly statusCode = 400;
}

/** Splits an application/octet-stream body into its JSON header and one Float32Array per binary input. */
function parseBinaryBody(body: Buffer, headerLength: unknown): Record<string | symbol, unknown> {
  const len = Number(headerLength);
  if (!Number.isInteger(len) || len < 2 || len > body.length) throw new BadRequest('Inference-Header-Content-Length must give the length of the JSON header at the start of the body');
  let header: { inputs?: Array<{ parameters?: { binary_data_size?: unknown } }> } & Record<string | symbol, unknown>;
  try {
    header = JSON.parse(body.subarray(0, len).toString('utf8')) as typeof header;
  } catch {
    throw new BadRequest('the inference header is not JSON');
  }
  if (typeof header !== 'object' || header === null || !Array.isArray(header.inputs)) throw new BadRequest('the inference header has no inputs');
  let offset = len;
  header[BINARY] = header.inputs.map((input, i) => {
    const size = input?.parameters?.binary_data_size;
    if (size === undefined) return undefined;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || size % 4 !== 0 || offset + size > body.length) {
      throw new BadRequest(`inputs[${i}].parameters.binary_data_size must be a multiple of 4 within the body`);
    }
    // A copy: the slice of the body need not be 4-byte aligned.
    const data = new Float32Array(size / 4);
    new Uint8Array(data.buffer).set(body.subarray(offset, offset + size));
    offset += size;
    return data;
  });
  if (offset !== body.length) throw new BadRequest(`${body.length - offset} bytes after the last binary input`);
  return header;
}

const inferSchema = {
  type: 'object',
  required: ['inputs'],
  properties: {
    id: { type: 'string', maxLength: 256 },
    inputs: { type: 'array', minItems: 1, maxItems: 16, items: tensorSchema },
    outputs: { type: 'array', maxItems: 16, items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } },
    parameters: { type: 'object', properties: { sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' } } },
  },
} as const;

interface InferBody {
  id?: string;
  inputs: Array<{ name: string; shape: number[]; datatype: 'FP32'; data?: number[] }>;
  [BINARY]?: Array<Float32Array | undefined>;
  outputs?: Array<{ name: string }>;
  parameters?: { sha256?: string };
}

type Params = { name: string; version: string };

const STATUS: Record<ModelRuntimeError['reason'], number> = { 'bad-input': 400, 'unknown-model': 404, integrity: 409, timeout: 504, unavailable: 503, failed: 500 };

/** Builds the server and loads every model under modelsDir (a model that does not load fails the build). */
export async function buildModelServer(opts: ModelServerOptions): Promise<{ app: FastifyInstance; models: ModelRef[]; runtime: OnnxModelRuntime }> {
  const runtime = new OnnxModelRuntime({ modelsDir: opts.modelsDir, intraOpThreads: opts.intraOpThreads });
  const served = new Map<string, Served>();
  const models = discoverModels(opts.modelsDir);
  for (const ref of models) served.set(modelKey(ref), { ref, metadata: await runtime.metadata(ref) });
  const timeoutMs = opts.timeoutMs ?? 10_000;

  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: opts.bodyLimit ?? 32 * 1024 * 1024, ajv: { customOptions: { allErrors: false, coerceTypes: false } } });
  app.addHook('onClose', () => runtime.close());
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, _req, reply) => {
    if (err instanceof ModelRuntimeError) return reply.code(STATUS[err.reason]).send({ error: err.message });
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    return reply.code(status).send({ error: status === 500 ? 'internal error' : err.message });
  });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (req, body, done) => {
    try {
      done(null, parseBinaryBody(body as Buffer, req.headers['inference-header-content-length']));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` }));

  const find = (p: Params): Served => {
    const s = served.get(modelKey(p));
    if (s === undefined) throw new ModelRuntimeError('unknown-model', modelKey(p), `model ${modelKey(p)} is not served here (serving: ${[...served.keys()].join(', ') || 'none'})`);
    return s;
  };

  app.get('/v2', async () => ({ name: 'agenticpet-model-server', version: '1', extensions: [] }));
  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async (_req, reply) => (served.size > 0 ? { ready: true } : reply.code(503).send({ ready: false, error: 'no model loaded' })));
  app.get<{ Params: Params }>('/v2/models/:name/versions/:version', async (req) => {
    const { ref, metadata } = find(req.params);
    return { name: ref.name, versions: [ref.version], platform: 'onnxruntime_onnx', inputs: metadata.inputs, outputs: metadata.outputs, parameters: { sha256: ref.sha256 } };
  });
  app.get<{ Params: Params }>('/v2/models/:name/versions/:version/ready', async (req) => {
    const { ref } = find(req.params);
    return { name: ref.name, version: ref.version, ready: true };
  });
  app.post<{ Params: Params; Body: InferBody }>('/v2/models/:name/versions/:version/infer', { schema: { body: inferSchema } }, async (req) => {
    const { ref, metadata } = find(req.params);
    const key = modelKey(ref);
    const asked = req.body.parameters?.sha256?.toLowerCase();
    if (asked !== undefined && asked !== ref.sha256) throw new ModelRuntimeError('integrity', key, `${key} here is the artefact with SHA-256 ${ref.sha256}, the request asks for ${asked}`);
    const binary = req.body[BINARY];
    const inputs: Tensor[] = req.body.inputs.map((t, i) => {
      const data = binary?.[i] ?? (t.data === undefined ? undefined : Float32Array.from(t.data));
      if (data === undefined) throw new ModelRuntimeError('bad-input', key, `inputs[${i}] (${t.name}) has neither data nor parameters.binary_data_size`);
      return { name: t.name, shape: t.shape, datatype: 'FP32', data };
    });
    checkInputs(key, metadata, inputs);
    const wanted = req.body.outputs?.map((o) => o.name);
    for (const name of wanted ?? []) if (!metadata.outputs.some((o) => o.name === name)) throw new ModelRuntimeError('bad-input', key, `${key} has no output ${name}`);
    const outputs = await runtime.infer(ref, inputs, { timeoutMs });
    return {
      model_name: ref.name,
      model_version: ref.version,
      ...(req.body.id !== undefined ? { id: req.body.id } : {}),
      outputs: outputs.filter((o) => wanted === undefined || wanted.includes(o.name)).map((o) => ({ name: o.name, shape: o.shape, datatype: o.datatype, data: Array.from(o.data) })),
    };
  });
  return { app, models, runtime };
}
