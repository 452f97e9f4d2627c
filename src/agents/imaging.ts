/**
 * The imaging agent: runs the chosen model versions on the case's images and turns each label's
 * probability into what the rest of the agents can use. A label that maps to a knowledge-base
 * finding and reaches its threshold becomes a finding (present, from that media item, read by
 * that model version) whose weight tempers its evidence in the differential; a label that maps to
 * no finding (what kind of image it is) is reported as what the image was read as, never as a
 * clinical finding.
 *
 * Pure: the runtime and the prepared images come in as functions, so it imports no runtime,
 * decoder, store or cache. Each model asks for each image as its input spec wants it (the caller
 * fetches, preprocesses and caches) and gets the images in batches as large as its input takes
 * (N of NCHW), all within one time budget. A model that is missing, slow or failing costs its
 * readings and a warning naming it, never the answer; an image whose bytes are gone costs its
 * readings and a warning naming it.
 */
import type { FindingEvidence } from './types.js';

export const IMAGING_VERSION = '1.0.0';

/** A tensor as the Open Inference Protocol names one (FP32, row-major). */
export interface ImagingTensor {
  name: string;
  shape: number[];
  datatype: 'FP32';
  data: Float32Array;
}

export interface ImagingModelRef {
  name: string;
  version: string;
  sha256: string;
}

export interface ImagingInputSpec {
  name: string;
  width: number;
  height: number;
  channels: 1 | 3;
  layout: 'NCHW' | 'NHWC';
  mean: number[];
  std: number[];
  /** The largest N the model takes in one call; absent: 1 (a fixed batch of one). */
  maxBatch?: number;
}

/** A model version as the agent runs it: the registry's entry. */
export interface ImagingModel extends ImagingModelRef {
  input: ImagingInputSpec;
  output: { name?: string; activation: 'none' | 'softmax' | 'sigmoid' };
  labels: Array<{ label: string; finding: string | null; threshold: number; weight: number }>;
}

/** A usable image of the case: its media item and the SHA-256 its bytes are stored under. */
export interface CaseImage {
  mediaId: string;
  sha256: string;
}

export interface ImagingPorts {
  infer(model: ImagingModelRef, inputs: ImagingTensor[], opts: { timeoutMs: number }): Promise<ImagingTensor[]>;
  /**
   * One image as the model's input wants it: shape [1, C, H, W] (NCHW) or [1, H, W, C], not to be
   * written to (it may be shared). Null when the media store has no bytes under its hash; rejects
   * with ImageBytesUnavailable when they could not be fetched (either way the image is left out
   * with a warning); any other rejection is the preprocessing's and fails that model's readings.
   */
  tensor(image: CaseImage, spec: ImagingInputSpec): Promise<ImagingTensor | null>;
}

/** The image's bytes could not be fetched (the store failed, as opposed to not holding them). */
export class ImageBytesUnavailable extends Error {}

/** What one model version read on one image. */
export interface ImageReading {
  mediaId: string;
  model: ImagingModelRef;
  /** Every label's probability, in the model's label order (rounded to 4 decimals). */
  labels: Array<{ label: string; probability: number }>;
  /** Labels that map to no finding and reached their threshold: what the image was read as. */
  readAs: string[];
  /** Finding codes this reading reported present. */
  findings: string[];
}

export interface ImagingOutput {
  findings: FindingEvidence[];
  readings: ImageReading[];
  /** The versions whose readings were used (what the diagnosis's provenance records). */
  models: ImagingModelRef[];
  /** Media a model read. */
  read: string[];
  warnings: string[];
}

const round4 = (x: number) => Math.round(x * 10000) / 10000;

class OutOfTime extends Error {}

/** Probabilities from a row of the model's output, by its card's activation. */
function activate(row: Float32Array, activation: ImagingModel['output']['activation']): number[] {
  const v = Array.from(row);
  if (activation === 'sigmoid') return v.map((x) => 1 / (1 + Math.exp(-x)));
  if (activation === 'softmax') {
    const max = Math.max(...v);
    const e = v.map((x) => Math.exp(x - max));
    const total = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / total);
  }
  return v;
}

/** Tensors of batch 1 stacked along N into one. */
export function stack(tensors: ImagingTensor[], name: string): ImagingTensor {
  const per = tensors[0]!.data.length;
  const data = new Float32Array(per * tensors.length);
  tensors.forEach((t, i) => {
    if (t.data.length !== per) throw new Error(`image tensors differ in size (${t.data.length} and ${per} values)`);
    data.set(t.data, i * per);
  });
  return { name, shape: [tensors.length, ...tensors[0]!.shape.slice(1)], datatype: 'FP32', data };
}

/** Why an image was left out, and by which models (named name@version). */
type Unavailable = Map<string, { why: string; models: string[] }>;

async function readWithModel(
  model: ImagingModel,
  all: readonly CaseImage[],
  ports: ImagingPorts,
  deadline: number,
  now: () => number,
  leftOut: (image: CaseImage, why: string) => void,
): Promise<ImageReading[]> {
  const prepared = await Promise.all(
    all.map(async (image) => {
      try {
        const tensor = await ports.tensor(image, model.input);
        if (tensor === null) leftOut(image, 'its bytes are not in the media store');
        return tensor === null ? null : { image, tensor };
      } catch (err) {
        if (!(err instanceof ImageBytesUnavailable)) throw err;
        leftOut(image, `its bytes could not be fetched (${err.message})`);
        return null;
      }
    }),
  );
  const ready = prepared.filter((p): p is { image: CaseImage; tensor: ImagingTensor } => p !== null);
  const images = ready.map((p) => p.image);
  const tensors = ready.map((p) => p.tensor);
  const maxBatch = Math.max(1, Math.floor(model.input.maxBatch ?? 1));
  const ref = { name: model.name, version: model.version, sha256: model.sha256 };
  const readings: ImageReading[] = [];
  for (let start = 0; start < images.length; start += maxBatch) {
    const batch = tensors.slice(start, start + maxBatch);
    const left = deadline - now();
    if (left <= 0) throw new OutOfTime();
    const outputs = await ports.infer(ref, [stack(batch, model.input.name)], { timeoutMs: Math.ceil(left) });
    const out = model.output.name === undefined ? outputs[0] : outputs.find((t) => t.name === model.output.name);
    if (out === undefined) throw new Error(`no output ${model.output.name ?? ''} in its answer`.replace('  ', ' '));
    const width = model.labels.length;
    if (out.data.length !== batch.length * width) {
      throw new Error(`its output has shape [${out.shape.join(', ')}] for ${batch.length} image(s), the registry names ${width} labels`);
    }
    batch.forEach((_, k) => {
      const p = activate(out.data.subarray(k * width, (k + 1) * width), model.output.activation);
      if (p.some((x) => !Number.isFinite(x))) throw new Error('its output is not a number');
      const mediaId = images[start + k]!.mediaId;
      const labels = model.labels.map((l, j) => ({ label: l.label, probability: round4(p[j]!) }));
      const passed = model.labels.filter((l, j) => p[j]! >= l.threshold);
      readings.push({ mediaId, model: ref, labels, readAs: passed.filter((l) => l.finding === null).map((l) => l.label), findings: passed.flatMap((l) => (l.finding === null ? [] : [l.finding])) });
    });
  }
  return readings;
}

/**
 * Runs every model on every image within budgetMs. Never throws: what failed is a warning, and
 * what the others read is kept.
 */
export async function runImaging(models: readonly ImagingModel[], images: readonly CaseImage[], ports: ImagingPorts, opts: { budgetMs: number; now?: () => number }): Promise<ImagingOutput> {
  const now = opts.now ?? (() => performance.now());
  const deadline = now() + opts.budgetMs;
  const warnings: string[] = [];
  const unavailable: Unavailable = new Map();
  const byModel =
    images.length === 0
      ? []
      : await Promise.all(
          models.map(async (model) => {
            const name = `${model.name}@${model.version}`;
            // What a model that lost the race to the budget still learns is not reported.
            let settled = false;
            const leftOut = (image: CaseImage, why: string) => {
              if (settled) return;
              const seen = unavailable.get(image.mediaId) ?? { why, models: [] };
              seen.models.push(name);
              unavailable.set(image.mediaId, seen);
            };
            let timer: NodeJS.Timeout | undefined;
            try {
              const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new OutOfTime()), Math.max(0, deadline - now()))));
              return await Promise.race([readWithModel(model, images, ports, deadline, now, leftOut), limit]);
            } catch (err) {
              const why = err instanceof OutOfTime ? `did not answer within the ${opts.budgetMs} ms imaging budget` : `failed (${(err as Error).message})`;
              warnings.push(`imaging model ${name} ${why}: its readings are missing from this answer`);
              return [];
            } finally {
              settled = true;
              clearTimeout(timer);
            }
          }),
        );
  const readings = byModel.flat();
  // One finding per code: the strongest reading of it (the others stay in `readings`).
  const findings = new Map<string, FindingEvidence>();
  for (const r of readings) {
    const model = models.find((m) => m.name === r.model.name && m.version === r.model.version)!;
    for (const l of model.labels) {
      if (l.finding === null || !r.findings.includes(l.finding)) continue;
      const probability = r.labels.find((x) => x.label === l.label)!.probability;
      const weight = round4(Math.min(1, Math.max(0, l.weight)) * probability);
      const seen = findings.get(l.finding);
      if (seen !== undefined && (seen.weight ?? 0) >= weight) continue;
      findings.set(l.finding, { code: l.finding, present: true, weight, source: { kind: 'media', ref: r.mediaId, text: `${l.label} (${r.model.name}@${r.model.version})`, value: probability, model: r.model } });
    }
  }
  const used = byModel.flatMap((rs, i) => (rs.length > 0 ? [{ name: models[i]!.name, version: models[i]!.version, sha256: models[i]!.sha256 }] : []));
  const read = [...new Set(readings.map((r) => r.mediaId))];
  // An image left out is named once, before the models' warnings; "by a model" when none read it.
  const imageWarnings = images.flatMap((image) => {
    const u = unavailable.get(image.mediaId);
    if (u === undefined) return [];
    return [`media ${image.mediaId} not read by ${read.includes(image.mediaId) ? `imaging model ${u.models.join(', ')}` : 'a model'}: ${u.why}`];
  });
  return { findings: [...findings.values()], readings, models: used, read, warnings: [...imageWarnings, ...warnings] };
}
