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
import type { DecodedImage, ImageDecoder, ImageMeasures } from '../clinical/ports.js';

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

  async decode(bytes: Buffer): Promise<DecodedImage | Refusal> {
    // A finishing decode hands its slot to the next waiter, so the bound holds exactly.
    if (this.running >= this.opts.maxConcurrent) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await this.decodeNow(bytes);
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

/** libvips' message without the buffer-loader prefix noise, bounded in length. */
function reasonOf(err: unknown): string {
  const text = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
