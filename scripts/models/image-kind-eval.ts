/**
 * Runs the image-kind model over labelled samples through the real path (the sharp decoder's
 * toTensor, then a ModelRuntime) and counts: what the training script writes in the card, and
 * what test/model-image-kind.test.ts checks on images from a seed training never saw.
 */
import type { ImageDecoder, ImageInputSpec, ModelRef, ModelRuntime, Tensor } from '../../src/clinical/ports.js';
import { LABELS, type Label, type Sample } from './image-kind-data.js';

export interface Evaluation {
  n: number;
  accuracy: number;
  /** confusion[truth][predicted] counts. */
  confusion: Record<Label, Record<Label, number>>;
}

/** Stacks [1, ...] tensors of one input into one batch [N, ...]. */
export function stack(tensors: Tensor[]): Tensor {
  const first = tensors[0]!;
  const size = first.data.length;
  const data = new Float32Array(size * tensors.length);
  tensors.forEach((t, i) => data.set(t.data, i * size));
  return { name: first.name, shape: [tensors.length, ...first.shape.slice(1)], datatype: 'FP32', data };
}

/** Row-wise probabilities (or any [N, K] output) for the samples, in batches of `batch`. */
export async function outputsFor(runtime: ModelRuntime, decoder: ImageDecoder, model: ModelRef, spec: ImageInputSpec, samples: Sample[], batch = 64): Promise<number[][]> {
  const rows: number[][] = [];
  for (let i = 0; i < samples.length; i += batch) {
    const tensors = await Promise.all(samples.slice(i, i + batch).map((s) => decoder.toTensor(s.bytes, spec)));
    const [out] = await runtime.infer(model, [stack(tensors)], { timeoutMs: 30_000 });
    const k = out!.shape[1]!;
    for (let r = 0; r < out!.shape[0]!; r++) rows.push(Array.from(out!.data.subarray(r * k, (r + 1) * k)));
  }
  return rows;
}

export async function evaluate(runtime: ModelRuntime, decoder: ImageDecoder, model: ModelRef, spec: ImageInputSpec, samples: Sample[]): Promise<Evaluation> {
  const probs = await outputsFor(runtime, decoder, model, spec, samples);
  const confusion = Object.fromEntries(LABELS.map((t) => [t, Object.fromEntries(LABELS.map((p) => [p, 0]))])) as Evaluation['confusion'];
  let right = 0;
  samples.forEach((s, i) => {
    const p = probs[i]!;
    const predicted = LABELS[p.indexOf(Math.max(...p))]!;
    confusion[s.label][predicted]++;
    if (predicted === s.label) right++;
  });
  return { n: samples.length, accuracy: right / samples.length, confusion };
}
