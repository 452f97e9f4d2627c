/**
 * Test doubles of the model runtime port and the image preprocessing (issue 13 §4 tests). The
 * real adapters (ONNX Runtime, KServe v2) and sharp's preprocessing are tested on their own; these
 * let a test decide what a "model" answers, how slowly, or that it fails.
 *
 * The fake preprocessor fills each image's tensor with one value taken from the bytes' SHA-256
 * (imageValue), so a fake model can answer per image: its behaviour gets the value of each row.
 */
import { createHash } from 'node:crypto';
import type { ImageInputSpec, ImagePreprocessor, ModelRef, ModelRuntime, Tensor } from '../../src/clinical/ports.js';

/** The value the fake preprocessor fills an image's tensor with: the first byte of its SHA-256, over 255. */
export function imageValue(bytes: Buffer): number {
  return createHash('sha256').update(bytes).digest()[0]! / 255;
}

export class FakePreprocessor implements ImagePreprocessor {
  calls = 0;
  async toTensor(bytes: Buffer, spec: ImageInputSpec): Promise<Tensor> {
    this.calls++;
    const size = spec.channels * spec.width * spec.height;
    const shape = spec.layout === 'NCHW' ? [1, spec.channels, spec.height, spec.width] : [1, spec.height, spec.width, spec.channels];
    return { name: spec.name, shape, datatype: 'FP32', data: new Float32Array(size).fill(Math.fround(imageValue(bytes))) };
  }
}

/** What a fake model answers: per image row (its tensor's first value), one number per label. */
export type FakeModel = { rows: (value: number) => number[]; delayMs?: number; fail?: string; output?: string };

export class FakeModelRuntime implements ModelRuntime {
  readonly kind = 'onnx' as const;
  readonly models = new Map<string, FakeModel>();
  readonly calls: Array<{ model: ModelRef; shape: number[]; timeoutMs: number }> = [];
  closed = false;

  set(name: string, version: string, model: FakeModel): this {
    this.models.set(`${name}@${version}`, model);
    return this;
  }

  async infer(model: ModelRef, inputs: Tensor[], opts: { timeoutMs: number }): Promise<Tensor[]> {
    const input = inputs[0]!;
    this.calls.push({ model, shape: input.shape, timeoutMs: opts.timeoutMs });
    const fake = this.models.get(`${model.name}@${model.version}`);
    if (fake === undefined) throw new Error(`model ${model.name}@${model.version} is not loaded`);
    if (fake.delayMs !== undefined) await new Promise((r) => setTimeout(r, fake.delayMs));
    if (fake.fail !== undefined) throw new Error(fake.fail);
    const n = input.shape[0]!;
    const per = input.data.length / n;
    const rows = Array.from({ length: n }, (_, i) => fake.rows(input.data[i * per]!));
    const width = rows[0]?.length ?? 0;
    return [{ name: fake.output ?? 'probabilities', shape: [n, width], datatype: 'FP32', data: Float32Array.from(rows.flat()) }];
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
