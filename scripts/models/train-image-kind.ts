/**
 * Rebuilds models/image-kind/1.0.0/{model.onnx,card.json} from generated images, no download:
 *
 *   node --import tsx scripts/models/train-image-kind.ts
 *
 * 1. generates the training split (seed 1) and the held-out split (seed 2) with
 *    image-kind-data.ts;
 * 2. runs the feature half of the graph (image-kind-graph.ts, exported to ONNX and run by ONNX
 *    Runtime) on the training images, prepared by the sharp decoder exactly as the card says, so
 *    the features fitted on are the ones the shipped graph computes;
 * 3. fits a standardised softmax regression (full-batch gradient descent, L2), in TypeScript;
 * 4. exports the whole graph, then measures it end to end (decoder + ONNX Runtime) on the held-out
 *    split and writes the card with that accuracy and the artefact's SHA-256.
 * Deterministic for a given sharp/libvips and onnxruntime-node: the same seeds give the same file.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImageInputSpec, ModelRef } from '../../src/clinical/ports.js';
import { OnnxModelRuntime } from '../../src/imaging/onnx-runtime.js';
import { SharpImageDecoder } from '../../src/imaging/sharp-decoder.js';
import { generate, LABELS } from './image-kind-data.js';
import { evaluate, outputsFor } from './image-kind-eval.js';
import { FEATURES, imageKindGraph, SIDE, type Head } from './image-kind-graph.js';
import { encodeModel } from './onnx-writer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const NAME = 'image-kind';
export const VERSION = '1.0.0';
export const TRAIN_SEED = 1;
export const HELD_OUT_SEED = 2;
const TRAIN_PER_LABEL = 400;
const HELD_OUT_PER_LABEL = 200;

export const SPEC: ImageInputSpec = { name: 'image', width: SIDE, height: SIDE, channels: 3, layout: 'NCHW', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
const OPTIONS = (doc: string) => ({ opset: 13, irVersion: 7, producer: 'agenticpet scripts/models/train-image-kind.ts', doc, metadata: { labels: LABELS.join(',') } });

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Softmax regression on standardised features; returns the head (standardisation folded in the graph). */
function fit(x: number[][], y: number[], k: number): Head {
  const d = x[0]!.length;
  const n = x.length;
  const mu = Array.from({ length: d }, (_, j) => x.reduce((s, r) => s + r[j]!, 0) / n);
  const sigma = Array.from({ length: d }, (_, j) => Math.sqrt(x.reduce((s, r) => s + (r[j]! - mu[j]!) ** 2, 0) / n) || 1);
  const z = x.map((r) => r.map((v, j) => (v - mu[j]!) / sigma[j]!));
  const w = new Float64Array(d * k);
  const b = new Float64Array(k);
  const rate = 0.5;
  const l2 = 1e-3;
  for (let epoch = 0; epoch < 3000; epoch++) {
    const gw = new Float64Array(d * k);
    const gb = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      const logits = Array.from({ length: k }, (_, c) => b[c]! + z[i]!.reduce((s, v, j) => s + v * w[j * k + c]!, 0));
      const m = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - m));
      const sum = e.reduce((a, c) => a + c, 0);
      for (let c = 0; c < k; c++) {
        const g = e[c]! / sum - (y[i] === c ? 1 : 0);
        gb[c] = gb[c]! + g / n;
        for (let j = 0; j < d; j++) gw[j * k + c] = gw[j * k + c]! + (g * z[i]![j]!) / n;
      }
    }
    for (let q = 0; q < w.length; q++) w[q] = w[q]! - rate * (gw[q]! + l2 * w[q]!);
    for (let c = 0; c < k; c++) b[c] = b[c]! - rate * gb[c]!;
  }
  return { mu, sigma, weights: Array.from(w), bias: Array.from(b) };
}

async function main(): Promise<void> {
  const decoder = new SharpImageDecoder();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'image-kind-'));
  try {
    const [train, heldOut] = await Promise.all([generate(TRAIN_SEED, TRAIN_PER_LABEL), generate(HELD_OUT_SEED, HELD_OUT_PER_LABEL)]);

    // The feature half, as a model of its own in a scratch models directory.
    const featureBytes = encodeModel(imageKindGraph(null, LABELS), OPTIONS('image-kind features (training only)'));
    fs.mkdirSync(path.join(scratch, 'features', '0'), { recursive: true });
    fs.writeFileSync(path.join(scratch, 'features', '0', 'model.onnx'), featureBytes);
    const scratchRuntime = new OnnxModelRuntime({ modelsDir: scratch });
    const features = await outputsFor(scratchRuntime, decoder, { name: 'features', version: '0', sha256: sha256(featureBytes) }, SPEC, train);
    await scratchRuntime.close();

    const head = fit(features, train.map((s) => LABELS.indexOf(s.label)), LABELS.length);
    const doc = 'Image kind (radiograph-like vs photograph-like), trained on synthetic images only; not a clinical model. See card.json.';
    const bytes = encodeModel(imageKindGraph(head, LABELS), OPTIONS(doc));
    const dir = path.join(root, 'models', NAME, VERSION);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'model.onnx'), bytes);
    const ref: ModelRef = { name: NAME, version: VERSION, sha256: sha256(bytes) };

    const runtime = new OnnxModelRuntime({ modelsDir: path.join(root, 'models') });
    const trainEval = await evaluate(runtime, decoder, ref, SPEC, train);
    const held = await evaluate(runtime, decoder, ref, SPEC, heldOut);
    await runtime.close();

    const card = {
      name: NAME,
      version: VERSION,
      sha256: ref.sha256,
      artefact: 'model.onnx',
      format: { onnxOpset: 13, irVersion: 7, bytes: bytes.length },
      task: 'Tells whether an image looks like a radiograph (greyscale, dark background, bright structures) or like a colour photograph. A routing and sanity check only.',
      notClinical: true,
      input: { ...SPEC, preprocessing: 'EXIF orientation applied; alpha flattened on black; resized to exactly 64 x 64 with fit "fill" (stretched, aspect ratio not kept); sRGB (greyscale files expanded to 3 equal channels); v/255, then (v - mean) / std per channel; NCHW, batch first' },
      output: { name: 'probabilities', shape: ['batch', LABELS.length], meaning: 'softmax probability of each label, in the order of labels' },
      labels: [
        { label: 'radiograph', meaning: 'the image has the gross statistics of the synthetic radiographs: little colour, dark background, bright elongated structures' },
        { label: 'photograph', meaning: 'the image has the gross statistics of the synthetic colour photographs' },
      ],
      method: {
        features: FEATURES,
        featuresNote: 'computed inside the ONNX graph from the input tensor (see scripts/models/image-kind-graph.ts)',
        classifier: 'softmax regression on standardised features, full-batch gradient descent (3000 epochs, rate 0.5, L2 1e-3), plain TypeScript',
      },
      training: {
        data: 'synthetic only, generated by scripts/models/image-kind-data.ts: radiograph-like images (greyscale, dark background, soft-tissue blobs, bright elongated "bones", sensor noise; 1 in 5 with a faint colour cast) and photograph-like images (colour gradients, coloured blobs and rectangles, texture; 1 in 5 nearly desaturated, 1 in 6 dark); sizes 40-260 px, rotation, blur, brightness, JPEG/PNG, some with an EXIF orientation tag',
        seed: TRAIN_SEED,
        perLabel: TRAIN_PER_LABEL,
        accuracy: round(trainEval.accuracy),
      },
      evaluation: {
        heldOut: { seed: HELD_OUT_SEED, perLabel: HELD_OUT_PER_LABEL, n: held.n, accuracy: round(held.accuracy), confusion: held.confusion },
        measuredWith: 'the shipped model.onnx through SharpImageDecoder.toTensor and OnnxModelRuntime (the production path)',
      },
      canTell: ['whether a generated image is of the synthetic radiograph kind or the synthetic photograph kind, at the held-out accuracy above'],
      cannotTell: [
        'anything clinical: no finding, no diagnosis, no body region, no species, no image quality',
        'real radiographs from real photographs reliably: it has never seen a real radiograph or a real photograph, and its accuracy is measured on synthetic images only',
        'other kinds (ultrasound, CT, microscopy, documents, screenshots): every image gets one of the two labels',
      ],
      rebuild: 'node --import tsx scripts/models/train-image-kind.ts',
    };
    fs.writeFileSync(path.join(dir, 'card.json'), `${JSON.stringify(card, null, 2)}\n`);
    console.log(`${NAME}@${VERSION}: ${bytes.length} bytes, sha256 ${ref.sha256}`);
    console.log(`train accuracy ${round(trainEval.accuracy)} (n=${trainEval.n}); held-out accuracy ${round(held.accuracy)} (n=${held.n}, seed ${HELD_OUT_SEED})`);
    console.log(JSON.stringify(held.confusion));
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

const round = (v: number) => Math.round(v * 10_000) / 10_000;

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
