/**
 * The image-kind model's data: synthetic images, generated deterministically from a seed, of two
 * kinds. Nothing here is a real radiograph or a real photograph; the generator only imitates the
 * gross statistics that tell them apart, and the model card says so.
 *
 * - `radiograph`: greyscale, a dark background, soft-tissue grey blobs and bright elongated
 *   "bones" (some with a darker medulla), sensor noise; one in five carries a faint colour cast
 *   (a phone photo of a film on a lightbox).
 * - `photograph`: a colour gradient background, coloured blobs (an animal-ish subject) and
 *   rectangles, texture noise; one in five is nearly desaturated and one in six is dark (indoor,
 *   night), so colour alone does not decide.
 *
 * Variety for both: size (40 to 260 px a side, any aspect), rotation, blur, brightness, JPEG or
 * PNG, and sometimes an EXIF orientation tag (the decoder must auto-orient).
 */
import sharp from 'sharp';

export const LABELS = ['radiograph', 'photograph'] as const;
export type Label = (typeof LABELS)[number];

export interface Sample {
  label: Label;
  bytes: Buffer;
}

/** mulberry32: a small, fast, seedable PRNG; the same seed gives the same images everywhere. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const between = (r: Rand, lo: number, hi: number) => lo + (hi - lo) * r();
const gauss = (r: Rand) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

interface Ellipse {
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  cos: number;
  sin: number;
}

function ellipse(r: Rand, w: number, h: number, minR: number, maxR: number, elongation = 1): Ellipse {
  const a = between(r, 0, Math.PI);
  const rx = between(r, minR, maxR) * Math.min(w, h);
  return { cx: between(r, 0.15, 0.85) * w, cy: between(r, 0.15, 0.85) * h, rx, ry: rx / between(r, 1, elongation), cos: Math.cos(a), sin: Math.sin(a) };
}

/** 0 outside, 1 at the centre: the squared elliptic radius, for soft edges. */
function inside(e: Ellipse, x: number, y: number): number {
  const dx = x - e.cx;
  const dy = y - e.cy;
  const u = (dx * e.cos + dy * e.sin) / e.rx;
  const v = (-dx * e.sin + dy * e.cos) / e.ry;
  return u * u + v * v;
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number) => {
    const k = (n + h * 6) % 6;
    return 255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1)));
  };
  return [f(5), f(3), f(1)];
}

function radiograph(r: Rand, w: number, h: number): Buffer {
  const px = Buffer.alloc(w * h * 3);
  const bg = between(r, 0, 45);
  const tissue = Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({ e: ellipse(r, w, h, 0.2, 0.45, 2.5), g: between(r, 50, 120) }));
  const bones = Array.from({ length: 2 + Math.floor(r() * 5) }, () => ({ e: ellipse(r, w, h, 0.15, 0.4, 7), g: between(r, 170, 255), medulla: r() < 0.5 }));
  const noise = between(r, 2, 14);
  const tint = r() < 0.2 ? [between(r, 0.9, 1.08), between(r, 0.93, 1.07), between(r, 0.92, 1.12)] : [1, 1, 1];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const vignette = 1 - 0.3 * (((x - w / 2) / w) ** 2 + ((y - h / 2) / h) ** 2);
      let g = bg * vignette;
      for (const t of tissue) {
        const d = inside(t.e, x, y);
        if (d < 1) g = Math.max(g, t.g * (1 - 0.4 * d));
      }
      for (const b of bones) {
        const d = inside(b.e, x, y);
        if (d < 1) g = b.medulla && d < 0.25 ? Math.max(g, b.g * 0.7) : Math.max(g, b.g * (1 - 0.15 * d));
      }
      g += noise * gauss(r);
      const i = (y * w + x) * 3;
      px[i] = clamp(g * tint[0]!);
      px[i + 1] = clamp(g * tint[1]!);
      px[i + 2] = clamp(g * tint[2]!);
    }
  }
  return px;
}

function photograph(r: Rand, w: number, h: number): Buffer {
  const px = Buffer.alloc(w * h * 3);
  const desaturate = r() < 0.2 ? between(r, 0, 0.15) : 1;
  const light = r() < 1 / 6 ? between(r, 0.2, 0.45) : between(r, 0.75, 1.1);
  const top = hsv(r(), between(r, 0.15, 0.9), between(r, 0.35, 1));
  const bottom = hsv(r(), between(r, 0.15, 0.9), between(r, 0.35, 1));
  // Animal-ish coats: brown, ginger, black, white, grey, plus any colour (toys, blankets).
  const coats: Array<[number, number, number]> = [hsv(0.07, 0.6, 0.45), hsv(0.08, 0.8, 0.85), hsv(0, 0, 0.12), hsv(0, 0, 0.92), hsv(0, 0, 0.55)];
  const blobs = Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({ e: ellipse(r, w, h, 0.12, 0.4, 2), c: r() < 0.6 ? coats[Math.floor(r() * coats.length)]! : hsv(r(), between(r, 0.3, 1), between(r, 0.3, 1)) }));
  const rects = Array.from({ length: Math.floor(r() * 3) }, () => ({ x0: r() * w, y0: r() * h, x1: r() * w, y1: r() * h, c: hsv(r(), between(r, 0.2, 0.8), between(r, 0.3, 0.9)) }));
  const texture = between(r, 3, 18);
  for (let y = 0; y < h; y++) {
    const t = y / h;
    for (let x = 0; x < w; x++) {
      let c: [number, number, number] = [top[0] * (1 - t) + bottom[0] * t, top[1] * (1 - t) + bottom[1] * t, top[2] * (1 - t) + bottom[2] * t];
      for (const q of rects) if (x >= Math.min(q.x0, q.x1) && x < Math.max(q.x0, q.x1) && y >= Math.min(q.y0, q.y1) && y < Math.max(q.y0, q.y1)) c = q.c;
      for (const b of blobs) {
        const d = inside(b.e, x, y);
        if (d < 1) c = [b.c[0] * (1 - 0.25 * d), b.c[1] * (1 - 0.25 * d), b.c[2] * (1 - 0.25 * d)];
      }
      const n = texture * gauss(r);
      const grey = (c[0] + c[1] + c[2]) / 3;
      const i = (y * w + x) * 3;
      for (let k = 0; k < 3; k++) px[i + k] = clamp((grey + (c[k]! - grey) * desaturate) * light + n);
    }
  }
  return px;
}

/** One encoded image of `label`, with the shared variety (rotation, blur, brightness, format, EXIF). */
async function render(r: Rand, label: Label): Promise<Buffer> {
  const w = Math.round(between(r, 40, 260));
  const h = Math.round(between(r, 40, 260));
  const raw = label === 'radiograph' ? radiograph(r, w, h) : photograph(r, w, h);
  let img = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
  // Rotation, with the background of the kind (black film edge, or a light wall).
  if (r() < 0.5) {
    const fill = label === 'radiograph' ? { r: 0, g: 0, b: 0 } : { r: 200, g: 200, b: 200 };
    img = sharp(await img.rotate(between(r, -30, 30), { background: fill }).png().toBuffer());
  }
  if (r() < 0.35) img = img.blur(between(r, 0.4, 2.5));
  img = img.modulate({ brightness: between(r, 0.75, 1.25) });
  const orientation = r() < 0.15 ? 6 : undefined;
  if (orientation !== undefined) img = img.withMetadata({ orientation });
  return r() < 0.5 ? img.jpeg({ quality: Math.round(between(r, 60, 95)) }).toBuffer() : img.png().toBuffer();
}

/** `perLabel` images of each label from `seed`, interleaved; the same seed gives the same bytes. */
export async function generate(seed: number, perLabel: number): Promise<Sample[]> {
  const r = rng(seed);
  const out: Sample[] = [];
  for (let i = 0; i < perLabel; i++) {
    for (const label of LABELS) out.push({ label, bytes: await render(r, label) });
  }
  return out;
}
