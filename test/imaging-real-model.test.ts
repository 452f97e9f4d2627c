/**
 * The committed image-kind model end to end, with nothing faked: registered from its registry
 * spec (models/image-kind/1.0.0/registry.json, which must agree with its card), activated, and
 * run by the service's own runtime (ONNX Runtime in process, sharp preprocessing) on images the
 * model's generator draws from a seed it was not trained on. Its labels are kinds of image, not
 * findings: the answer says what each image was read as, and adds no clinical finding.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generate } from '../scripts/models/image-kind-data.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';

const dir = path.resolve(import.meta.dirname, '..', 'models', 'image-kind', '1.0.0');
const spec = JSON.parse(fs.readFileSync(path.join(dir, 'registry.json'), 'utf8'));
const card = JSON.parse(fs.readFileSync(path.join(dir, 'card.json'), 'utf8'));

describe('the image-kind model through the service (real runtime)', () => {
  let rt: TestRuntime;
  let db: PgliteExecutor;
  let admin: Call;

  before(async () => {
    db = await PgliteExecutor.open();
    rt = await startRuntime(db);
    admin = client(rt, (await rt.newClinic('Imaging clinic')).key);
  });
  after(async () => {
    await rt?.close();
    await db?.close();
  });

  it('its registry spec names the card\'s artefact, input and labels', () => {
    assert.equal(spec.sha256, card.sha256);
    assert.deepEqual([spec.name, spec.version], [card.name, card.version]);
    const { preprocessing: _p, ...input } = card.input;
    const { maxBatch: _m, ...specInput } = spec.input;
    assert.deepEqual(specInput, input);
    assert.deepEqual(spec.labels.map((l: { label: string }) => l.label), card.labels.map((l: { label: string }) => l.label));
    assert.equal(spec.output.name, card.output.name);
  });

  it('reads each attached image as the kind it is, records the model version, and adds no finding', async () => {
    assert.equal((await admin('POST', '/v1/models', { body: spec })).statusCode, 201);
    assert.equal((await admin('POST', '/v1/models/image-kind/versions/1.0.0/activate')).statusCode, 200);
    const samples = await generate(4242, 6); // a seed neither training (1) nor held-out evaluation (2, 9001) used
    const ids: Array<{ id: string; label: string }> = [];
    for (const s of samples) {
      const res = await admin('POST', '/v1/media', { raw: s.bytes, contentType: s.bytes[0] === 0xff ? 'image/jpeg' : 'image/png' });
      assert.equal(res.statusCode, 201, res.body);
      ids.push({ id: res.json().id, label: s.label });
    }
    const res = await admin('POST', '/v1/diagnoses', { body: { patient: { species: 'dog' }, complaint: 'limping on the left fore since yesterday', mediaIds: ids.map((i) => i.id) } });
    assert.equal(res.statusCode, 201, res.body);
    const d = res.json();
    assert.deepEqual(d.provenance.models, [{ name: 'image-kind', version: '1.0.0', sha256: card.sha256 }]);
    const readAs = new Map(d.imaging.readings.map((r: { mediaId: string; readAs: string[] }) => [r.mediaId, r.readAs]));
    // The generator draws some images under 128 px a side: flagged at upload and not used, the
    // answer says so per image. Every other image is read, and read as its kind.
    const read = ids.filter((i) => readAs.has(i.id));
    assert.ok(read.length >= 4, `${read.length} of 12 images read`);
    for (const i of ids.filter((x) => !readAs.has(x.id))) assert.ok(d.warnings.some((w: string) => w.includes(i.id)), `image ${i.id} neither read nor named as unused: ${d.warnings.join('; ')}`);
    const right = read.filter((i) => (readAs.get(i.id) as string[]).includes(i.label)).length;
    assert.ok(right >= read.length - 1, `${right} of ${read.length} read images read as their kind: ${JSON.stringify(d.imaging.readings)}`);
    assert.ok(d.findings.every((f: { source: { kind: string } }) => f.source.kind !== 'media'), 'an image-kind label is not a clinical finding');
    // Only the images no model read are counted as not interpreted.
    const unread = ids.length - read.length;
    assert.ok(d.warnings.includes(`${unread} media item(s) attached to the case; images are stored and linked but not interpreted`), d.warnings.join('; '));
  });
});
