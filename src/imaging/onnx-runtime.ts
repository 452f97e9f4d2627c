/**
 * The ModelRuntime port in process, on ONNX Runtime for Node (onnxruntime-node, CPU execution
 * provider). A model is the file <modelsDir>/<name>/<version>/model.onnx; before a session is
 * created its bytes are hashed and compared with ModelRef.sha256, and the session is created from
 * those same bytes (so the file cannot change between the check and the load). A mismatch is
 * refused, never run.
 *
 * Sessions are cached per name, version and digest. intraOpNumThreads defaults to 1: the API runs
 * one worker process per core, and a session that spread over every core would compete with the
 * other workers (a model server may give it more, --threads).
 *
 * Timeouts: onnxruntime-node runs a session on the JavaScript thread (its run() is a setImmediate
 * around a synchronous native call), so a run cannot be interrupted. The call is raced against a
 * timer (which fires when the loop is free, e.g. while a session is still loading) and a result
 * that arrives after the budget is discarded as a timeout, so a caller never waits on a slow model
 * past its budget by more than one run. Models too heavy for that belong on a model server
 * (kserve-client.ts).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelRuntimeError } from '../clinical/errors.js';
import type { ModelRef, ModelRuntime, Tensor } from '../clinical/ports.js';

export interface OnnxRuntimeOptions {
  /** Holds <name>/<version>/model.onnx. */
  modelsDir: string;
  /** Threads one run may use (ONNX Runtime's intra-op pool); default 1. */
  intraOpThreads?: number;
}

/** One input or output as the model declares it; a string dimension is symbolic (the batch). */
export interface TensorSpec {
  name: string;
  datatype: string;
  shape: Array<number | string>;
}

export interface ModelMetadata {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** A registry name or version: letters, digits, dots, dashes, underscores; never a path. */
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function modelKey(m: { name: string; version: string }): string {
  return `${m.name}@${m.version}`;
}

/** The artefact's path, refusing names that would leave modelsDir. */
export function modelFile(modelsDir: string, m: { name: string; version: string }): string {
  if (!SEGMENT.test(m.name) || !SEGMENT.test(m.version) || m.name.includes('..') || m.version.includes('..')) {
    throw new ModelRuntimeError('unknown-model', modelKey(m), `model name and version must be 1-128 letters, digits, dots, dashes or underscores (got ${JSON.stringify(modelKey(m))})`);
  }
  return path.join(modelsDir, m.name, m.version, 'model.onnx');
}

interface Loaded {
  session: ort.InferenceSession;
  metadata: ModelMetadata;
}

const ORT_TO_KSERVE: Record<string, string> = { float32: 'FP32', float64: 'FP64', int64: 'INT64', int32: 'INT32', uint8: 'UINT8', int8: 'INT8', bool: 'BOOL', string: 'BYTES' };

function specs(list: readonly ort.InferenceSession.ValueMetadata[]): TensorSpec[] {
  return list.map((m) => (m.isTensor ? { name: m.name, datatype: ORT_TO_KSERVE[m.type] ?? m.type, shape: [...m.shape] } : { name: m.name, datatype: 'NON_TENSOR', shape: [] }));
}

/** Throws 'bad-input' unless `inputs` are exactly the model's inputs, FP32, with matching fixed dimensions. */
export function checkInputs(key: string, metadata: ModelMetadata, inputs: Tensor[]): void {
  const fail = (why: string) => new ModelRuntimeError('bad-input', key, why);
  const names = inputs.map((t) => t.name).sort();
  const expected = metadata.inputs.map((t) => t.name).sort();
  if (names.join('\n') !== expected.join('\n')) throw fail(`inputs ${JSON.stringify(names)} do not match the model's ${JSON.stringify(expected)}`);
  for (const t of inputs) {
    const spec = metadata.inputs.find((s) => s.name === t.name)!;
    if (spec.datatype !== 'FP32' || t.datatype !== 'FP32') throw fail(`input ${t.name} is ${t.datatype}, the model takes ${spec.datatype} (only FP32 is served)`);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 1)) throw fail(`input ${t.name} has shape ${JSON.stringify(t.shape)}: every dimension must be a positive integer`);
    if (t.shape.length !== spec.shape.length || spec.shape.some((d, i) => typeof d === 'number' && d !== t.shape[i])) {
      throw fail(`input ${t.name} has shape ${JSON.stringify(t.shape)}, the model takes ${JSON.stringify(spec.shape)}`);
    }
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== size) throw fail(`input ${t.name} has ${t.data.length} values for shape ${JSON.stringify(t.shape)} (${size})`);
  }
}

export class OnnxModelRuntime implements ModelRuntime {
  readonly kind = 'onnx' as const;
  private readonly sessions = new Map<string, Promise<Loaded>>();
  private readonly threads: number;
  private closed = false;

  constructor(private readonly opts: OnnxRuntimeOptions) {
    this.threads = opts.intraOpThreads ?? 1;
    if (!Number.isInteger(this.threads) || this.threads < 1) throw new Error(`intraOpThreads must be a positive integer, got ${this.threads}`);
  }

  /** The model's declared inputs and outputs (loads and checks it). */
  async metadata(model: ModelRef): Promise<ModelMetadata> {
    return (await this.load(model)).metadata;
  }

  /** Loads (and checks) a model ahead of its first request. */
  async warm(model: ModelRef): Promise<void> {
    await this.load(model);
  }

  async infer(model: ModelRef, inputs: Tensor[], opts: { timeoutMs: number }): Promise<Tensor[]> {
    const key = modelKey(model);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ModelRuntimeError('timeout', key, `${key} did not answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    });
    try {
      const outputs = await Promise.race([this.run(model, inputs), deadline]);
      // The run held the thread (see the header): the timer could not fire during it.
      const elapsed = performance.now() - started;
      if (elapsed > opts.timeoutMs) throw new ModelRuntimeError('timeout', key, `${key} took ${Math.round(elapsed)} ms, over its ${opts.timeoutMs} ms budget`);
      return outputs;
    } finally {
      clearTimeout(timer);
    }
  }

  private async run(model: ModelRef, inputs: Tensor[]): Promise<Tensor[]> {
    const key = modelKey(model);
    const { session, metadata } = await this.load(model);
    checkInputs(key, metadata, inputs);
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) feeds[t.name] = new ort.Tensor('float32', t.data, t.shape);
    let results: ort.InferenceSession.OnnxValueMapType;
    try {
      results = await session.run(feeds);
    } catch (err) {
      throw new ModelRuntimeError('failed', key, `${key} failed to run: ${(err as Error).message}`, err);
    }
    return session.outputNames.map((name) => {
      const value = results[name] as ort.Tensor;
      if (value.type !== 'float32') throw new ModelRuntimeError('failed', key, `${key} output ${name} is ${value.type}; only float32 outputs are served`);
      return { name, shape: value.dims.map(Number), datatype: 'FP32' as const, data: value.data as Float32Array };
    });
  }

  private load(model: ModelRef): Promise<Loaded> {
    if (this.closed) return Promise.reject(new ModelRuntimeError('unavailable', modelKey(model), 'the model runtime is closed'));
    const cacheKey = `${modelKey(model)}#${model.sha256.toLowerCase()}`;
    let loading = this.sessions.get(cacheKey);
    if (loading === undefined) {
      loading = this.open(model);
      this.sessions.set(cacheKey, loading);
      // A failed load is not cached: the artefact may be put right without a restart.
      loading.catch(() => this.sessions.delete(cacheKey));
    }
    return loading;
  }

  private async open(model: ModelRef): Promise<Loaded> {
    const key = modelKey(model);
    if (!/^[0-9a-fA-F]{64}$/.test(model.sha256)) throw new ModelRuntimeError('integrity', key, `${key}: sha256 must be 64 hex digits`);
    const file = modelFile(this.opts.modelsDir, model);
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ModelRuntimeError(code === 'ENOENT' ? 'unknown-model' : 'unavailable', key, `${key}: no readable artefact at ${file} (${code ?? (err as Error).message})`, err);
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== model.sha256.toLowerCase()) {
      throw new ModelRuntimeError('integrity', key, `${key}: the artefact's SHA-256 is ${digest}, the registry expects ${model.sha256.toLowerCase()}; refusing to load it`);
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        executionProviders: ['cpu'],
        intraOpNumThreads: this.threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw new ModelRuntimeError('failed', key, `${key}: ONNX Runtime could not load the artefact: ${(err as Error).message}`, err);
    }
    return { session, metadata: { inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) } };
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const loading of all) {
      const loaded = await loading.catch(() => null);
      await loaded?.session.release();
    }
  }
}
