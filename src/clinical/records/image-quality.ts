/**
 * Whether a decoded image is usable, from the measures an ImageDecoder took: too small, blank
 * or blurred images are kept (the bytes are the record) but flagged, and a diagnosis that cites
 * one says why it was not used.
 *
 * The thresholds are engineering choices, not clinical facts: no source gives a minimum size or
 * sharpness for a veterinary image. Each was set from measures on the images the tests generate
 * (test/support/images.ts: a synthetic scene of flat grey shapes and a thin line; measured with
 * src/imaging/sharp-decoder.ts, whose analysis copy is fitted in 512 x 512), and the margin on
 * either side is the reason for the value:
 *
 * - minSidePx 128 (estimate): the shorter side in pixels. Below it there is too little detail
 *   to look at; the 32 x 24 test image is flagged, the 200 x 150 fixture and 640 x 480 pass.
 * - minLuminanceStdDev 3 (estimate; luminance 0-255): a uniform image measures 0 (PNG and
 *   JPEG); the 640 x 480 scene 63.31 (PNG) and 63.30 (JPEG), and still 58.79 blurred at sigma 8.
 *   The spread is taken after the downscale, so fine noise over a flat frame averages out: a
 *   4000 x 3000 JPEG of Gaussian noise (sigma 30) over one grey measures 2.60 and is flagged
 *   blank, which is what it is.
 * - minLaplacianVariance 5 (estimate): on the 640 x 480 scene the variance is 415.02 sharp
 *   (424.19 as JPEG), then after a Gaussian blur of sigma 1: 88.77, sigma 2: 12.15, sigma 3:
 *   3.40, sigma 4: 1.59, sigma 8: 0.70. 5 flags sigma 3 and beyond and leaves sigma 2
 *   alone. The measure depends on the analysis size (the 200 x 150
 *   fixture, analysed at full size, measures 1825.72), so the decoder's fixed downscale is part
 *   of the threshold; and it depends on how much edge the content has, which is why it is set
 *   low: sharp content with few edges should not be flagged. It has not been measured on real
 *   clinical images (none ship with the repo). A blank image has no edges either: it is
 *   reported as blank only.
 *
 * Measures are rounded to two decimals and judged as stored, so a reason never reads "5 < 5".
 * The thresholds can be passed to MediaService; the defaults below are what app.ts uses.
 */
import type { DecodedImage } from '../ports.js';
import type { ImageInfo, ImageQualityReason } from '../../contract/schemas.js';

export interface ImageQualityThresholds {
  minSidePx: number;
  minLuminanceStdDev: number;
  minLaplacianVariance: number;
}

export const DEFAULT_IMAGE_QUALITY: Readonly<ImageQualityThresholds> = Object.freeze({
  minSidePx: 128,
  minLuminanceStdDev: 3,
  minLaplacianVariance: 5,
});

const round = (x: number): number => Math.round(x * 100) / 100;

/** The image part of a media record: size, measures, and whether (and why not) it is usable. */
export function assessImage(image: DecodedImage, t: ImageQualityThresholds = DEFAULT_IMAGE_QUALITY): ImageInfo {
  const m = image.measures;
  const measures = {
    luminanceStdDev: round(m.luminanceStdDev),
    laplacianVariance: round(m.laplacianVariance),
    analysedWidth: m.analysedWidth,
    analysedHeight: m.analysedHeight,
  };
  const reasons: ImageQualityReason[] = [];
  const side = Math.min(image.width, image.height);
  if (side < t.minSidePx) reasons.push({ code: 'too-small', detail: `shorter side ${side} px < ${t.minSidePx} px` });
  const blank = measures.luminanceStdDev < t.minLuminanceStdDev;
  if (blank) reasons.push({ code: 'blank', detail: `luminance standard deviation ${measures.luminanceStdDev} < ${t.minLuminanceStdDev}` });
  if (!blank && measures.laplacianVariance < t.minLaplacianVariance) {
    reasons.push({ code: 'blurred', detail: `Laplacian variance ${measures.laplacianVariance} < ${t.minLaplacianVariance}` });
  }
  return {
    width: image.width,
    height: image.height,
    quality: { usable: reasons.length === 0, reasons, measures, thresholds: { ...t } },
  };
}

/** The warning a diagnosis carries for an attached image flagged unusable, else null. */
export function unusableImageWarning(mediaId: string, image: ImageInfo | null | undefined): string | null {
  if (image === null || image === undefined || image.quality.usable) return null;
  return `media ${mediaId} not used: ${image.quality.reasons.map((r) => `${r.code} (${r.detail})`).join('; ')}`;
}
