/**
 * The committed image-kind model against its card: the digest is the file's, the card describes
 * the model's real input and output and says what the model cannot do, and its accuracy holds on
 * freshly generated images from a seed that neither training (1) nor the card's held-out split (2)
 * used. Measured through the production path (sharp toTensor, then ONNX Runtime).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ImageInputSpec } from '../src/clinical/ports.js';
import { OnnxModelRuntime } from '../src/imaging/onnx-runtime.js';
import { SharpImageDecoder } from '../src/imaging/sharp-decoder.js';
import { generate, LABELS } from '../scripts/models/image-kind-data.js';
import { evaluate } from '../scripts/models/image-kind-eval.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'models/image-kind/1.0.0');
const bytes = fs.readFileSync(path.join(dir, 'model.onnx'));
const card = JSON.parse(fs.readFileSync(path.join(dir, 'card.json'), 'utf8')) as {
  name: string;
  version: string;
  sha256: string;
  notClinical: boolean;
  input: ImageInputSpec;
  labels: Array<{ label: string }>;
  training: { seed: number };
  evaluation: { heldOut: { seed: number; accuracy: number; n: number } };
  cannotTell: string[];
  rebuild: string;
};
const FRESH_SEED = 9001;
// The card's held-out accuracy is 0.965 (n = 400); on 160 fresh images its standard error is
// about 0.015, so 0.88 is more than five of them below: a broken model (0.5) fails it.
const FLOOR = 0.88;

describe('image-kind model and card', () => {
  const runtime = new OnnxModelRuntime({ modelsDir: path.join(root, 'models') });
  after(() => runtime.close());
  const spec: ImageInputSpec = { name: card.input.name, width: card.input.width, height: card.input.height, channels: card.input.channels, layout: card.input.layout, mean: card.input.mean, std: card.input.std };
  const ref = { name: card.name, version: card.version, sha256: card.sha256 };

  it("the card's sha256 is the committed file's, and the file is small", () => {
    assert.equal(createHash('sha256').update(bytes).digest('hex'), card.sha256);
    assert.ok(bytes.length < 64 * 1024, `${bytes.length} bytes`);
  });

  it('the card matches the model (input tensor, labels) and says honestly what it is', async () => {
    const meta = await runtime.metadata(ref);
    assert.deepEqual(meta.inputs[0]!.shape, ['batch', spec.channels, spec.height, spec.width]);
    assert.equal(meta.inputs[0]!.name, spec.name);
    assert.deepEqual(meta.outputs[0]!.shape, ['batch', card.labels.length]);
    assert.deepEqual(card.labels.map((l) => l.label), [...LABELS]);
    assert.equal(card.notClinical, true);
    assert.ok(card.cannotTell.some((c) => /clinical/.test(c)) && card.cannotTell.some((c) => /synthetic/.test(c)));
    assert.notEqual(card.training.seed, card.evaluation.heldOut.seed);
    assert.ok(![card.training.seed, card.evaluation.heldOut.seed].includes(FRESH_SEED));
    assert.match(card.rebuild, /scripts\/models\/train-image-kind\.ts/);
  });

  it(`classifies freshly generated images (seed ${FRESH_SEED}) above ${FLOOR}, every label above chance`, async () => {
    const samples = await generate(FRESH_SEED, 80);
    const result = await evaluate(runtime, new SharpImageDecoder(), ref, spec, samples);
    assert.equal(result.n, 160);
    assert.ok(result.accuracy >= FLOOR, `accuracy ${result.accuracy} below ${FLOOR}: ${JSON.stringify(result.confusion)}`);
    for (const label of LABELS) assert.ok(result.confusion[label][label] / 80 > 0.75, `${label}: ${JSON.stringify(result.confusion[label])}`);
  });
});
