/**
 * Images are decoded at upload (issue 13 §2): bytes that do not decode are refused with 422 and
 * nothing is stored; a decodable image is stored with its size and quality checks, and one
 * flagged unusable (too small, blank, blurred) is named, with the reason, in the warnings of a
 * diagnosis that cites it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { assessImage, DEFAULT_IMAGE_QUALITY, unusableImageWarning } from '../src/clinical/records/image-quality.js';
import { measure, SharpImageDecoder } from '../src/imaging/sharp-decoder.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { blurredPng, JPEG, PNG, sceneJpeg, scenePng, uniformPng } from './support/images.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';

interface ImageInfo {
  width: number;
  height: number;
  quality: { usable: boolean; reasons: { code: string; detail: string }[]; measures: { luminanceStdDev: number; laplacianVariance: number } };
}

describe('image measures and quality (pure)', () => {
  it('measures a uniform image as spread 0 and Laplacian variance 0, and a checkerboard exactly', () => {
    assert.deepEqual(measure(new Uint8Array(16).fill(9), 4, 4, 1), { luminanceStdDev: 0, laplacianVariance: 0, analysedWidth: 4, analysedHeight: 4 });
    // 4 x 4 checkerboard of 0 and 100: mean 50, spread 50; at each of the 4 inner pixels the
    // Laplacian is +-400 (4 neighbours of the other colour), two of each sign: variance 160000.
    const board = Uint8Array.from({ length: 16 }, (_, i) => ((i % 4) + Math.floor(i / 4)) % 2 === 0 ? 0 : 100);
    assert.deepEqual(measure(board, 4, 4, 1), { luminanceStdDev: 50, laplacianVariance: 160000, analysedWidth: 4, analysedHeight: 4 });
    // Only the first channel of each pixel counts.
    assert.deepEqual(measure(Uint8Array.from([0, 255, 100, 255, 0, 255, 100, 255]), 2, 2, 2).luminanceStdDev, 50);
  });

  it('flags each threshold it misses, and a blank image as blank only', () => {
    const ok = assessImage({ width: 640, height: 480, measures: { luminanceStdDev: 60, laplacianVariance: 400, analysedWidth: 512, analysedHeight: 384 } });
    assert.deepEqual([ok.quality.usable, ok.quality.reasons], [true, []]);
    const bad = assessImage({ width: 100, height: 400, measures: { luminanceStdDev: 60, laplacianVariance: 4.9, analysedWidth: 100, analysedHeight: 400 } });
    assert.deepEqual(bad.quality.reasons, [
      { code: 'too-small', detail: 'shorter side 100 px < 128 px' },
      { code: 'blurred', detail: 'Laplacian variance 4.9 < 5' },
    ]);
    // The judgement is on the measure as stored (two decimals), so the reason never reads "5 < 5".
    const edge = assessImage({ width: 400, height: 400, measures: { luminanceStdDev: 60, laplacianVariance: 4.999, analysedWidth: 400, analysedHeight: 400 } });
    assert.deepEqual([edge.quality.usable, edge.quality.measures.laplacianVariance], [true, 5]);
    const blank = assessImage({ width: 400, height: 300, measures: { luminanceStdDev: 0.5, laplacianVariance: 0.1, analysedWidth: 400, analysedHeight: 300 } });
    assert.deepEqual(blank.quality.reasons.map((r) => r.code), ['blank']);
    const strict = assessImage({ width: 640, height: 480, measures: { luminanceStdDev: 60, laplacianVariance: 400, analysedWidth: 512, analysedHeight: 384 } }, { ...DEFAULT_IMAGE_QUALITY, minLaplacianVariance: 500 });
    assert.deepEqual(strict.quality.reasons.map((r) => r.code), ['blurred']);
    assert.equal(unusableImageWarning('m1', ok), null);
    assert.equal(unusableImageWarning('m1', null), null);
    assert.equal(unusableImageWarning('m2', blank), 'media m2 not used: blank (luminance standard deviation 0.5 < 3)');
  });
});

describe('image decoding (sharp adapter)', () => {
  const decoder = new SharpImageDecoder();

  it('decodes the fixtures with their displayed size, and applies EXIF orientation to it', async () => {
    const png = await decoder.decode(PNG);
    assert.ok(!('refused' in png));
    assert.deepEqual([png.width, png.height], [200, 150]);
    // Orientation 6 (rotate 90): a 200 x 150 JPEG displays as 150 x 200.
    const rotated = await sharp(await sceneJpeg()).withMetadata({ orientation: 6 }).jpeg().toBuffer();
    const r = await decoder.decode(rotated);
    assert.ok(!('refused' in r));
    assert.deepEqual([r.width, r.height], [150, 200]);
  });

  it('the measures documented in image-quality.ts hold: sigma 2 passes, sigma 3 and beyond is blurred', async () => {
    const at = async (bytes: Buffer) => {
      const r = await decoder.decode(bytes);
      assert.ok(!('refused' in r));
      return assessImage(r);
    };
    const sharpScene = await at(await scenePng({ width: 640, height: 480 }));
    assert.equal(sharpScene.quality.usable, true);
    assert.ok(Math.abs(sharpScene.quality.measures.laplacianVariance - 415) < 40, JSON.stringify(sharpScene.quality.measures));
    const verdicts = [];
    for (const sigma of [1, 2, 3, 4, 8]) verdicts.push((await at(await blurredPng(sigma, { width: 640, height: 480 }))).quality.reasons.map((r) => r.code).join());
    assert.deepEqual(verdicts, ['', '', 'blurred', 'blurred', 'blurred']);
  });

  it('refuses a decompression bomb from its header, before decoding its pixels', async () => {
    const bomb = await sharp({ create: { width: 15000, height: 15000, channels: 3, background: '#000' } }).png({ compressionLevel: 9 }).toBuffer();
    const started = performance.now();
    const r = await decoder.decode(bomb);
    assert.deepEqual('refused' in r && r.refused, 'too-large');
    assert.ok(performance.now() - started < 500, 'refused from the header');
    const small = new SharpImageDecoder({ maxPixels: 10_000 });
    assert.equal('refused' in (await small.decode(PNG)), true, '200 x 150 is over 10,000 pixels');
  });

  it('runs at most maxConcurrent decodes and finishes every queued one', async () => {
    for (const limit of [1, 2]) {
      const d = new SharpImageDecoder({ maxConcurrent: limit });
      // Count the decodes in flight by wrapping the private step the queue guards.
      const inner = d as unknown as { decodeNow(b: Buffer): Promise<unknown> };
      const step = inner.decodeNow.bind(d);
      let inFlight = 0;
      let most = 0;
      inner.decodeNow = async (b) => {
        most = Math.max(most, ++inFlight);
        try {
          return await step(b);
        } finally {
          inFlight--;
        }
      };
      const inputs = [PNG, JPEG, PNG, Buffer.from('not an image'), JPEG, PNG];
      const results = await Promise.all(inputs.map((b) => d.decode(b)));
      assert.deepEqual(results.map((r) => ('refused' in r ? r.refused : r.width)), [200, 200, 200, 'undecodable', 200, 200]);
      assert.equal(most, limit, `at most ${limit} at once`);
      // The queue is empty afterwards: a new decode starts at once.
      assert.ok(!('refused' in (await d.decode(PNG))));
    }
  });
});

describe('POST /v1/media decodes images', () => {
  let rt: TestRuntime;
  let api: Call;
  let patientId: string;

  const mediaCreates = async (): Promise<number> => {
    const res = await api('GET', '/v1/audit?entityType=media&limit=500');
    assert.equal(res.statusCode, 200);
    return (res.json().items as { action: string }[]).filter((e) => e.action === 'create').length;
  };
  const blobFiles = (): string[] => fs.readdirSync(rt.dataDir, { recursive: true }).map(String);
  const upload = async (bytes: Buffer, type = 'image/png') => {
    const res = await api('POST', `/v1/media?patientId=${patientId}`, { raw: bytes, contentType: type });
    assert.equal(res.statusCode, 201, res.body);
    const m = res.json() as { id: string; image: ImageInfo | null };
    assert.deepEqual((await api('GET', `/v1/media/${m.id}`)).json().image, m.image, 'GET shows what the upload answered');
    return m;
  };

  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open());
    api = client(rt, (await rt.newClinic('Imaging clinic')).key);
    const owner = await api('POST', '/v1/owners', { body: { name: 'Owner' } });
    const patient = await api('POST', '/v1/patients', { body: { ownerId: owner.json().id, name: 'Rex', species: 'dog', sex: 'male', neutered: true, birthDate: '2020-01-01' } });
    assert.equal(patient.statusCode, 201, patient.body);
    patientId = patient.json().id;
  });
  after(async () => {
    await rt?.close();
  });

  it('refuses header-only, corrupt and truncated images with 422 naming the body; nothing is stored', async () => {
    const before = await mediaCreates();
    const filesBefore = blobFiles();
    const refused: [string, Buffer][] = [
      ['image/png', Buffer.concat([PNG.subarray(0, 8), Buffer.from('rest of a png')])],
      ['image/png', PNG.subarray(0, PNG.length - 30)],
      ['image/png', Buffer.concat([PNG.subarray(0, 40), Buffer.alloc(200, 0xab), PNG.subarray(240)])],
      ['image/jpeg', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from('rest of a jpeg')])],
      ['image/jpeg', JPEG.subarray(0, JPEG.length >> 1)],
    ];
    for (const [type, bytes] of refused) {
      const res = await api('POST', `/v1/media?patientId=${patientId}`, { raw: bytes, contentType: type });
      assert.equal(res.statusCode, 422, `${type} ${bytes.length} bytes: ${res.body}`);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      const problem = res.json();
      assert.equal(problem.type, 'urn:agenticpet:problem:undecodable-image');
      assert.equal(problem.field, 'body');
      assert.match(problem.detail, new RegExp(`^The body is not a decodable ${type.replace('/', '\\/')} image: `));
      const sha = createHash('sha256').update(bytes).digest('hex');
      assert.ok(!blobFiles().some((f) => f.endsWith(sha)), 'no blob');
    }
    assert.equal(await mediaCreates(), before, 'no record');
    assert.deepEqual(blobFiles(), filesBefore);
  });

  it('refuses an image over the pixel bound with 422 image-too-large; nothing is stored', async () => {
    const before = await mediaCreates();
    const wide = await sharp({ create: { width: 13000, height: 8, channels: 3, background: '#123456' } }).png().toBuffer();
    const res = await api('POST', '/v1/media', { raw: wide, contentType: 'image/png' });
    assert.equal(res.statusCode, 422, res.body);
    assert.equal(res.json().type, 'urn:agenticpet:problem:image-too-large');
    assert.equal(await mediaCreates(), before);
  });

  it('stores a good PNG and JPEG as usable, with their size and measures; a PDF has no image part', async () => {
    for (const [type, bytes] of [['image/png', await scenePng({ width: 640, height: 480 })], ['image/jpeg', await sceneJpeg({ width: 640, height: 480 })]] as const) {
      const m = await upload(bytes, type);
      assert.ok(m.image !== null);
      assert.deepEqual([m.image.width, m.image.height, m.image.quality.usable, m.image.quality.reasons], [640, 480, true, []]);
      assert.ok(m.image.quality.measures.laplacianVariance > 100, `${type}: ${JSON.stringify(m.image.quality.measures)}`);
      assert.ok(m.image.quality.measures.luminanceStdDev > 50);
    }
    const pdf = await upload(Buffer.from('%PDF-1.7\n%a pdf is not decoded\n'), 'application/pdf');
    assert.equal(pdf.image, null);
  });

  it('keeps a tiny, a uniform and a heavily blurred image, flagged with the reason', async () => {
    const cases: [string, Buffer, string][] = [
      ['tiny', await scenePng({ width: 32, height: 24 }), 'too-small'],
      ['uniform', await uniformPng(), 'blank'],
      ['uniform jpeg', await sharp(await uniformPng(300, 200, 40)).jpeg().toBuffer(), 'blank'],
      ['blurred', await blurredPng(8, { width: 640, height: 480 }), 'blurred'],
    ];
    for (const [name, bytes, code] of cases) {
      const m = await upload(bytes, name.endsWith('jpeg') ? 'image/jpeg' : 'image/png');
      assert.ok(m.image !== null);
      assert.equal(m.image.quality.usable, false, name);
      assert.deepEqual(m.image.quality.reasons.map((r) => r.code), [code], `${name}: ${JSON.stringify(m.image.quality)}`);
      assert.deepEqual((await api('GET', `/v1/media/${m.id}/content`)).rawPayload, bytes, 'the bytes are kept');
    }
  });

  it('a diagnosis citing a flagged image says which media and why, beside the not-interpreted warning', async () => {
    const good = await upload(await scenePng({ width: 640, height: 480, mark: 5 }));
    const blurred = await upload(await blurredPng(8, { width: 640, height: 480, mark: 6 }));
    const blank = await upload(await uniformPng(400, 300, 200));
    const res = await api('POST', '/v1/diagnoses', { body: { patientId, complaint: 'vomiting', mediaIds: [good.id, blurred.id, blank.id] } });
    assert.equal(res.statusCode, 201, res.body);
    const warnings = res.json().warnings as string[];
    assert.ok(warnings.includes('3 media item(s) attached to the case; images are stored and linked but not interpreted'), warnings.join(' | '));
    const v = blurred.image!.quality.measures.laplacianVariance;
    assert.ok(warnings.includes(`media ${blurred.id} not used: blurred (Laplacian variance ${v} < 5)`), warnings.join(' | '));
    assert.ok(warnings.includes(`media ${blank.id} not used: blank (luminance standard deviation 0 < 3)`), warnings.join(' | '));
    assert.ok(!warnings.some((w) => w.includes(good.id)), 'a usable image is not flagged');
    // The stored report says the same.
    assert.deepEqual((await api('GET', `/v1/diagnoses/${res.json().id}`)).json().warnings, warnings);
  });
});
