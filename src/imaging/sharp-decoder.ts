/**
 * The ImageDecoder port over sharp (libvips): decodes PNG and JPEG in libvips' worker threads
 * (sharp's calls are asynchronous and run on the libuv pool), never on the event loop, within
 * bounds set before any pixel is decoded:
 *
 * - the header is read first (metadata(), no pixel decode); more than maxPixels pixels or a side
 *   over maxSidePx is refused as too large, so a small file that inflates to a huge bitmap (a
 *   decompression bomb) costs one header read; limitInputPixels enforces the same bound inside
 *   libvips;
 * - failOn 'error': corrupt or truncated pixel data is a refusal, not a partly grey image;
 * - one greyscale copy, fitted in analysisSidePx x analysisSidePx (never enlarged), is all that
 *   is measured: the JavaScript pass over it is at most 512 x 512 = 262,144 pixels (about a
 *   millisecond);
 * - at most maxConcurrent decodes at once (the rest wait in order), so uploads cannot take every
 *   libuv thread from file and crypto work; and a decode that outlasts timeoutSeconds is refused.
 *
 * Only this folder imports sharp (test/layout.test.ts); app.ts gives the decoder to MediaService.
 */
import sharp from 'sharp';
import { ModelRuntimeError } from '../clinical/errors.js';
import type { DecodedImage, ImageDecoder, ImageInputSpec, ImageMeasures, Tensor } from '../clinical/ports.js';

// libvips' operation cache keeps recent inputs and results in memory: an upload is decoded once,
// so it would only hold memory.
sharp.cache(false);

export interface SharpDecoderOptions {
  /** Pixels (width x height) above which an image is refused before decoding. */
  maxPixels: number;
  /** Longest side in pixels above which an image is refused before decoding. */
  maxSidePx: number;
  /** Side of the square the greyscale analysis copy is fitted in (the quality thresholds assume 512). */
  analysisSidePx: number;
  maxConcurrent: number;
  timeoutSeconds: number;
}

export const DEFAULT_SHARP_DECODER: Readonly<SharpDecoderOptions> = Object.freeze({
  maxPixels: 50_000_000,
  maxSidePx: 12_000,
  analysisSidePx: 512,
  maxConcurrent: 2,
  timeoutSeconds: 10,
});

type Refusal = { refused: 'undecodable' | 'too-large'; detail: string };

export class SharpImageDecoder implements ImageDecoder {
  private readonly opts: SharpDecoderOptions;
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(opts: Partial<SharpDecoderOptions> = {}) {
    this.opts = { ...DEFAULT_SHARP_DECODER, ...opts };
  }

  decode(bytes: Buffer): Promise<DecodedImage | Refusal> {
    return this.inSlot(() => this.decodeNow(bytes));
  }

  /**
   * The model's input tensor [1, C, H, W] or [1, H, W, C] from an image, as its card says:
   * EXIF orientation applied, alpha flattened on black, resized to exactly width x height with
   * fit 'fill' (stretched, aspect ratio not kept: nothing is cropped away and no padding is
   * invented; the image-kind model is trained on images prepared the same way), greyscale for
   * 1 channel or sRGB for 3 (a greyscale file is expanded to 3 equal channels), scaled to 0..1,
   * then (v - mean[c]) / std[c]. Same pixel bounds, timeout and concurrency as decode().
   * Bytes that do not decode reject with ModelRuntimeError 'bad-input'.
   */
  async toTensor(bytes: Buffer, spec: ImageInputSpec): Promise<Tensor> {
    checkSpec(spec);
    return this.inSlot(() => this.tensorNow(bytes, spec));
  }

  private async tensorNow(bytes: Buffer, spec: ImageInputSpec): Promise<Tensor> {
    const { width, height, channels, layout, mean, std } = spec;
    let data: Buffer;
    let info: sharp.OutputInfo;
    try {
      const img = sharp(bytes, { failOn: 'error', limitInputPixels: this.opts.maxPixels })
        .timeout({ seconds: this.opts.timeoutSeconds })
        .rotate()
        .flatten({ background: '#000000' })
        .resize(width, height, { fit: 'fill' });
      ({ data, info } = await (channels === 1 ? img.greyscale() : img.toColourspace('srgb')).raw().toBuffer({ resolveWithObject: true }));
    } catch (err) {
      throw new ModelRuntimeError('bad-input', spec.name, `image not usable as model input: ${reasonOf(err)}`, err);
    }
    if (info.channels !== channels || info.width !== width || info.height !== height) {
      throw new ModelRuntimeError('bad-input', spec.name, `decoded ${info.width} x ${info.height} x ${info.channels}, expected ${width} x ${height} x ${channels}`);
    }
    const plane = width * height;
    const out = new Float32Array(plane * channels);
    const scale = std.map((s) => 1 / (255 * s));
    const offset = mean.map((m, c) => m / std[c]!);
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < channels; c++) {
        const v = data[p * channels + c]! * scale[c]! - offset[c]!;
        out[layout === 'NCHW' ? c * plane + p : p * channels + c] = v;
      }
    }
    return { name: spec.name, shape: layout === 'NCHW' ? [1, channels, height, width] : [1, height, width, channels], datatype: 'FP32', data: out };
  }

  private async inSlot<T>(work: () => Promise<T>): Promise<T> {
    // A finishing decode hands its slot to the next waiter, so the bound holds exactly.
    if (this.running >= this.opts.maxConcurrent) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.running--;
    }
  }

  private async decodeNow(bytes: Buffer): Promise<DecodedImage | Refusal> {
    const { maxPixels, maxSidePx, analysisSidePx, timeoutSeconds } = this.opts;
    const input = { failOn: 'error', limitInputPixels: maxPixels } as const;
    let meta: sharp.Metadata;
    try {
      meta = await sharp(bytes, { ...input, limitInputPixels: false }).metadata();
    } catch (err) {
      return { refused: 'undecodable', detail: reasonOf(err) };
    }
    if ((meta.format !== 'png' && meta.format !== 'jpeg') || !meta.width || !meta.height) {
      return { refused: 'undecodable', detail: `not a PNG or JPEG image (${meta.format ?? 'unknown format'})` };
    }
    const { width, height } = meta.autoOrient ?? meta;
    if (width * height > maxPixels || Math.max(width, height) > maxSidePx) {
      return { refused: 'too-large', detail: `${width} x ${height} px is over the bound of ${maxPixels} pixels and ${maxSidePx} px a side` };
    }
    let data: Buffer;
    let info: sharp.OutputInfo;
    try {
      ({ data, info } = await sharp(bytes, input)
        .timeout({ seconds: timeoutSeconds })
        .rotate()
        .flatten({ background: '#000000' })
        .greyscale()
        .resize(analysisSidePx, analysisSidePx, { fit: 'inside', withoutEnlargement: true })
        .raw()
        .toBuffer({ resolveWithObject: true }));
    } catch (err) {
      return { refused: 'undecodable', detail: reasonOf(err) };
    }
    return { width, height, measures: measure(data, info.width, info.height, info.channels) };
  }
}

/** Luminance spread and Laplacian variance of a raw 8-bit image (first channel of each pixel). */
export function measure(data: Uint8Array, w: number, h: number, channels: number): ImageMeasures {
  const n = w * h;
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    const v = data[i * channels]!;
    sum += v;
    sumSq += v * v;
  }
  const mean = sum / n;
  let lSum = 0;
  let lSumSq = 0;
  let m = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      const l = data[(i - w) * channels]! + data[(i + w) * channels]! + data[(i - 1) * channels]! + data[(i + 1) * channels]! - 4 * data[i * channels]!;
      lSum += l;
      lSumSq += l * l;
      m++;
    }
  }
  const lMean = m === 0 ? 0 : lSum / m;
  return {
    luminanceStdDev: Math.sqrt(Math.max(0, sumSq / n - mean * mean)),
    laplacianVariance: m === 0 ? 0 : Math.max(0, lSumSq / m - lMean * lMean),
    analysedWidth: w,
    analysedHeight: h,
  };
}

function checkSpec(spec: ImageInputSpec): void {
  const side = (n: number) => Number.isInteger(n) && n >= 1 && n <= 4096;
  const ok =
    side(spec.width) &&
    side(spec.height) &&
    (spec.channels === 1 || spec.channels === 3) &&
    (spec.layout === 'NCHW' || spec.layout === 'NHWC') &&
    spec.mean.length === spec.channels &&
    spec.std.length === spec.channels &&
    spec.mean.every(Number.isFinite) &&
    spec.std.every((s) => Number.isFinite(s) && s > 0);
  if (!ok) throw new ModelRuntimeError('bad-input', spec.name, `input spec ${JSON.stringify(spec)} is not valid (sides 1..4096, 1 or 3 channels, one mean and one positive std per channel)`);
}

/** libvips' message without the buffer-loader prefix noise, bounded in length. */
function reasonOf(err: unknown): string {
  const text = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
