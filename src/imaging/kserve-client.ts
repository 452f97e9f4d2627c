/**
 * The ModelRuntime port over the KServe v2 / Open Inference Protocol, REST with JSON tensors
 * (what KServe, Triton and TorchServe serve; also this repo's own model server, model-server.ts):
 *
 *   POST {base}/v2/models/{name}/versions/{version}/infer
 *        {"id", "inputs": [{"name", "shape", "datatype", "data"}], "parameters": {"sha256"}}
 *     -> {"model_name", "model_version", "id", "outputs": [{"name", "shape", "datatype", "data"}]}
 *   GET  {base}/v2/health/ready, {base}/v2/models/{name}/versions/{version}/ready
 *
 * By default the inputs travel as raw FP32 bytes with the binary tensor data extension of
 * Triton's HTTP protocol (also read by this repo's server; see model-server.ts), not as JSON
 * numbers: printing and parsing a quarter of a million numbers per image is what a JSON request
 * costs. `binaryData: false` sends plain v2 JSON, for a server without the extension.
 *
 * The registry's SHA-256 travels as the request parameter `sha256` (the protocol's extension map);
 * this repo's server refuses a request whose digest is not its artefact's (409). A server that
 * ignores parameters (stock Triton) cannot make that check, so the digest is then only as good as
 * the image tag it was deployed from (immutable tags in ECR, infra/lib/model-service.ts).
 *
 * Every failure is a ModelRuntimeError, so the caller degrades the answer on one type: the budget
 * passing (AbortSignal.timeout) is 'timeout'; no connection, a reset or a 5xx is 'unavailable';
 * 404 'unknown-model'; 400 'bad-input'; 409 'integrity'; a body that is not a valid v2 response
 * 'failed'. Connections are kept alive and reused by fetch's (undici's) global pool.
 */
import { randomUUID } from 'node:crypto';
import { ModelRuntimeError } from '../clinical/errors.js';
import type { ModelRef, ModelRuntime, Tensor } from '../clinical/ports.js';
import { modelKey } from './onnx-runtime.js';

export interface KServeClientOptions {
  /** Base URL of the server, e.g. http://image-kind.models.internal:8080 (no trailing /v2). */
  baseUrl: string;
  /** Added to every request (an auth header in front of a managed endpoint, for one). */
  headers?: Record<string, string>;
  /** Inputs as raw bytes (binary tensor data extension); default true. Outputs are always asked for as JSON. */
  binaryData?: boolean;
}

/** One tensor of a v2 JSON response, before it is checked. */
interface WireTensor {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
}

const seg = (s: string) => encodeURIComponent(s);

export class KServeModelRuntime implements ModelRuntime {
  readonly kind = 'kserve-v2' as const;
  private readonly base: string;

  constructor(private readonly opts: KServeClientOptions) {
    if (!/^https?:\/\/[^/?#\s]+/.test(opts.baseUrl) || !URL.canParse(opts.baseUrl)) throw new Error(`model server URL must be http:// or https://, got ${JSON.stringify(opts.baseUrl)}`);
    this.base = opts.baseUrl.replace(/\/+$/, '');
  }

  private modelPath(m: { name: string; version: string }): string {
    return `${this.base}/v2/models/${seg(m.name)}/versions/${seg(m.version)}`;
  }

  async infer(model: ModelRef, inputs: Tensor[], opts: { timeoutMs: number }): Promise<Tensor[]> {
    const key = modelKey(model);
    const id = randomUUID();
    const parameters = { sha256: model.sha256.toLowerCase() };
    let init: RequestInit;
    if (this.opts.binaryData === false) {
      const body = JSON.stringify({ id, inputs: inputs.map((t) => ({ name: t.name, shape: t.shape, datatype: t.datatype, data: Array.from(t.data) })), parameters });
      init = { method: 'POST', body, headers: { 'content-type': 'application/json' } };
    } else {
      const header = Buffer.from(JSON.stringify({ id, inputs: inputs.map((t) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: t.data.byteLength } })), parameters }));
      // Little-endian FP32, as the extension specifies (every platform Node runs on here is little-endian).
      const body = Buffer.concat([header, ...inputs.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
      init = { method: 'POST', body, headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) } };
    }
    const res = await this.request(key, `${this.modelPath(model)}/infer`, init, opts.timeoutMs);
    const payload = await this.json(key, res, opts.timeoutMs);
    if (!res.ok) throw errorFor(key, res.status, payload);
    return parseOutputs(key, payload, { model, id });
  }

  /** GET /v2/health/ready: true when the server says every model it serves is ready. */
  async ready(timeoutMs = 1000): Promise<boolean> {
    return this.probe(`${this.base}/v2/health/ready`, timeoutMs);
  }

  /** GET /v2/models/{name}/versions/{version}/ready. */
  async modelReady(model: { name: string; version: string }, timeoutMs = 1000): Promise<boolean> {
    return this.probe(`${this.modelPath(model)}/ready`, timeoutMs);
  }

  private async probe(url: string, timeoutMs: number): Promise<boolean> {
    try {
      const res = await fetch(url, { headers: this.opts.headers, signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  private async request(key: string, url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
    try {
      return await fetch(url, { ...init, headers: { ...this.opts.headers, ...(init.headers as Record<string, string>) }, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw transportError(key, err, timeoutMs);
    }
  }

  private async json(key: string, res: Response, timeoutMs: number): Promise<unknown> {
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw transportError(key, err, timeoutMs);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      if (res.status >= 500) throw new ModelRuntimeError('unavailable', key, `model server answered ${res.status} with a body that is not JSON`);
      throw new ModelRuntimeError('failed', key, `model server answered ${res.status} with a body that is not JSON`);
    }
  }

  async close(): Promise<void> {
    // The connections belong to fetch's global pool; idle ones close on their own keep-alive timeout.
  }
}

function transportError(key: string, err: unknown, timeoutMs: number): ModelRuntimeError {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return new ModelRuntimeError('timeout', key, `${key}: the model server did not answer within ${timeoutMs} ms`, err);
  return new ModelRuntimeError('unavailable', key, `${key}: model server unreachable (${e.cause?.code ?? e.cause?.message ?? e.message})`, err);
}

function errorFor(key: string, status: number, payload: unknown): ModelRuntimeError {
  const detail = typeof (payload as { error?: unknown })?.error === 'string' ? (payload as { error: string }).error.slice(0, 300) : `status ${status}`;
  const message = `${key}: model server answered ${status}: ${detail}`;
  if (status === 404) return new ModelRuntimeError('unknown-model', key, message);
  if (status === 409) return new ModelRuntimeError('integrity', key, message);
  if (status === 504) return new ModelRuntimeError('timeout', key, message);
  if (status >= 400 && status < 500) return new ModelRuntimeError('bad-input', key, message);
  return new ModelRuntimeError('unavailable', key, message);
}

/** The response's outputs as Tensors, each checked (FP32, whole shape, as many values as it says). */
export function parseOutputs(key: string, payload: unknown, expect: { model: { name: string; version: string }; id: string }): Tensor[] {
  const fail = (why: string) => new ModelRuntimeError('failed', key, `${key}: not a v2 inference response: ${why}`);
  const p = payload as { model_name?: unknown; model_version?: unknown; id?: unknown; outputs?: unknown };
  if (typeof p !== 'object' || p === null || !Array.isArray(p.outputs) || p.outputs.length === 0) throw fail('no outputs');
  if (p.model_name !== expect.model.name) throw fail(`model_name is ${JSON.stringify(p.model_name)}`);
  if (p.model_version !== undefined && p.model_version !== expect.model.version) throw fail(`model_version is ${JSON.stringify(p.model_version)}`);
  if (p.id !== undefined && p.id !== expect.id) throw fail('id does not echo the request');
  return (p.outputs as WireTensor[]).map((o) => {
    if (typeof o.name !== 'string') throw fail('an output has no name');
    if (o.datatype !== 'FP32') throw fail(`output ${o.name} is ${JSON.stringify(o.datatype)}, only FP32 is read`);
    if (!Array.isArray(o.shape) || !o.shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail(`output ${o.name} has no valid shape`);
    const shape = o.shape as number[];
    const size = shape.reduce((a, b) => a * b, 1);
    if (!Array.isArray(o.data) || o.data.length !== size || !o.data.every((v) => typeof v === 'number')) throw fail(`output ${o.name} does not hold ${size} numbers`);
    return { name: o.name, shape, datatype: 'FP32' as const, data: Float32Array.from(o.data as number[]) };
  });
}
