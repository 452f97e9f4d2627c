/**
 * Real, small images for the tests, generated with sharp (every upload is decoded now, so a PNG
 * header followed by filler is refused): a synthetic scene (dark background, bright ellipse,
 * bar, disc and a diagonal line) that passes the quality checks, and the unusable kinds: tiny,
 * uniform, blurred. `mark` moves a small square so that two images differ in their bytes.
 */
import sharp from 'sharp';

export interface SceneOptions {
  width?: number;
  height?: number;
  mark?: number;
}

/** The scene's greyscale pixels, one byte each. */
export function scenePixels({ width = 200, height = 150, mark = 0 }: SceneOptions = {}): Buffer {
  const px = Buffer.alloc(width * height, 32);
  const m = mark % Math.max(1, width - 8);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x / width;
      const v = y / height;
      let g = 32;
      if (((u - 0.5) / 0.3) ** 2 + ((v - 0.5) / 0.2) ** 2 <= 1) g = 176;
      if (u >= 0.2 && u < 0.25 && v >= 0.1 && v < 0.9) g = 224;
      if ((u - 0.7) ** 2 * width * width + (v - 0.3) ** 2 * height * height <= (0.08 * width) ** 2) g = 96;
      if (Math.abs(u + v - 1) < 2 / Math.min(width, height)) g = 144;
      if (mark > 0 && x >= m && x < m + 6 && y < 6) g = 255;
      px[y * width + x] = g;
    }
  }
  return px;
}

function scene(o: SceneOptions) {
  const width = o.width ?? 200;
  const height = o.height ?? 150;
  return sharp(scenePixels({ ...o, width, height }), { raw: { width, height, channels: 1 } });
}

export const scenePng = (o: SceneOptions = {}): Promise<Buffer> => scene(o).png().toBuffer();
export const sceneJpeg = (o: SceneOptions = {}): Promise<Buffer> => scene(o).jpeg({ quality: 90 }).toBuffer();
/** The scene blurred with a Gaussian of this sigma (pixels of the image). */
export const blurredPng = (sigma: number, o: SceneOptions = {}): Promise<Buffer> => scene(o).blur(sigma).png().toBuffer();
/** One grey level everywhere. */
export const uniformPng = (width = 400, height = 300, grey = 122): Promise<Buffer> =>
  sharp({ create: { width, height, channels: 3, background: { r: grey, g: grey, b: grey } } }).png().toBuffer();

/** The default fixture: a 200 x 150 PNG of the scene, usable. */
export const PNG = await scenePng();
/** The same scene as a JPEG. */
export const JPEG = await sceneJpeg();
