/** The scenarios' data: the vignette cases, and patients created (or found) through the API. */
import fs from 'node:fs';
import sharp from 'sharp';
import path from 'node:path';
import type { HttpCall, ScenarioSpec } from './jobs.js';
import { mulberry32, pick } from './prng.js';
import { signalmentTemplate } from './vary.js';

export const SCENARIOS = ['healthz', 'diagnoses', 'diagnoses-image', 'patients', 'consultation'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const LABELS: Record<ScenarioName, string> = {
  healthz: 'GET /healthz',
  diagnoses: 'POST /v1/diagnoses',
  'diagnoses-image': 'POST /v1/diagnoses (1 image)',
  patients: 'GET /v1/patients/:id',
  consultation: 'consultation (3 req)',
};

interface VignetteRequest {
  patient: Record<string, unknown>;
  [field: string]: unknown;
}

export function loadVignettes(root: string): VignetteRequest[] {
  const file = JSON.parse(fs.readFileSync(path.join(root, 'test/vignettes/vignettes.json'), 'utf8')) as { vignettes: Array<{ request: VignetteRequest }> };
  return file.vignettes.map((v) => v.request);
}

async function api<T>(origin: string, key: string, method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(origin + url, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const BREEDS: Record<string, string[]> = {
  dog: ['Labrador Retriever', 'Beagle', 'German Shepherd', 'Border Collie', 'Dachshund', 'Great Dane'],
  cat: ['Domestic Shorthair', 'Maine Coon', 'Siamese', 'Persian'],
};

/**
 * `count` patient ids. Against an existing database the clinic's first patients are used (and
 * topped up if there are fewer); otherwise owners and patients are created through the API.
 */
export async function preparePatients(origin: string, key: string, count: number, useExisting: boolean, seed: number): Promise<{ ids: string[]; created: number }> {
  const ids: string[] = [];
  if (useExisting) {
    const page = await api<{ items: Array<{ id: string }> }>(origin, key, 'GET', `/v1/patients?limit=${Math.min(count, 200)}`);
    ids.push(...page.items.map((p) => p.id));
  }
  const random = mulberry32(seed);
  const todo = Array.from({ length: Math.max(0, count - ids.length) }, (_, i) => {
    const species = random() < 0.6 ? 'dog' : 'cat';
    return {
      owner: { name: `Bench Owner ${i + 1}`, email: `bench-owner-${i + 1}@example.com` },
      patient: {
        name: `Bench ${i + 1}`,
        species,
        breed: pick(random, BREEDS[species]!),
        sex: random() < 0.5 ? 'female' : 'male',
        neutered: random() < 0.7,
        ageYears: Math.round(random() * 150) / 10,
        weightKg: species === 'dog' ? Math.round((5 + random() * 55) * 10) / 10 : Math.round((2.5 + random() * 4) * 10) / 10,
      },
    };
  });
  let created = 0;
  let nextIndex = 0;
  const worker = async () => {
    while (nextIndex < todo.length) {
      const t = todo[nextIndex++]!;
      const owner = await api<{ id: string }>(origin, key, 'POST', '/v1/owners', t.owner);
      const patient = await api<{ id: string }>(origin, key, 'POST', '/v1/patients', { ...t.patient, ownerId: owner.id });
      ids.push(patient.id);
      created++;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { ids, created };
}

/**
 * One image uploaded for the "with one image" scenario: a 256 x 256 greyscale PNG of a gradient
 * with a grid of bars (it passes the upload's quality checks: not small, blank or blurred).
 * Its bytes are fixed, so every run reads the same image.
 */
export async function prepareImage(origin: string, key: string): Promise<string> {
  const side = 256;
  const px = Buffer.alloc(side * side);
  for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) px[y * side + x] = (x % 32 < 4 || y % 48 < 4 ? 230 : 40) + ((x + y) >> 3);
  const png = await sharp(px, { raw: { width: side, height: side, channels: 1 } }).png().toBuffer();
  const res = await fetch(`${origin}/v1/media`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'image/png' }, body: png, signal: AbortSignal.timeout(30_000) });
  if (res.status !== 201) throw new Error(`POST /v1/media: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/**
 * With a model spec (the body of POST /v1/models), registers it (an earlier run's registration
 * is kept) and activates it, so the image scenario measures a model reading the image; without
 * one, the image is linked and not interpreted (what the scenario then measures).
 */
export async function activateModel(origin: string, key: string, spec: { name: string; version: string }): Promise<void> {
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const reg = await fetch(`${origin}/v1/models`, { method: 'POST', headers, body: JSON.stringify(spec), signal: AbortSignal.timeout(30_000) });
  if (reg.status !== 201 && reg.status !== 409) throw new Error(`POST /v1/models: ${reg.status} ${await reg.text()}`);
  const act = await fetch(`${origin}/v1/models/${spec.name}/versions/${spec.version}/activate`, { method: 'POST', headers: { authorization: headers.authorization }, signal: AbortSignal.timeout(30_000) });
  if (act.status !== 200) throw new Error(`activate ${spec.name}@${spec.version}: ${act.status} ${await act.text()}`);
}

export function scenarioSpec(name: ScenarioName, vignettes: VignetteRequest[], patientIds: string[], mediaId?: string): ScenarioSpec {
  const label = LABELS[name];
  switch (name) {
    case 'healthz':
      return { name: label, kind: 'calls', auth: false, calls: [{ method: 'GET', path: '/healthz' }] };
    case 'diagnoses':
      return { name: label, kind: 'calls', auth: true, calls: vignettes.map((v): HttpCall => ({ method: 'POST', path: '/v1/diagnoses', body: signalmentTemplate(v), vary: true })) };
    case 'diagnoses-image':
      // The same cases as "diagnoses", each with the one uploaded image attached.
      if (mediaId === undefined) throw new Error('the diagnoses-image scenario needs an uploaded image (prepareImage)');
      return { name: label, kind: 'calls', auth: true, calls: vignettes.map((v): HttpCall => ({ method: 'POST', path: '/v1/diagnoses', body: signalmentTemplate({ ...v, mediaIds: [mediaId] }), vary: true })) };
    case 'patients':
      return { name: label, kind: 'calls', auth: true, calls: patientIds.map((id): HttpCall => ({ method: 'GET', path: `/v1/patients/${id}` })) };
    case 'consultation':
      // The patient opens the consultation; everything else about the case arrives as inputs.
      return {
        name: label,
        kind: 'flow',
        auth: true,
        cases: vignettes.map(({ patient, ...inputs }) => ({ start: signalmentTemplate({ patient }), inputs: JSON.stringify(inputs) })),
        vary: true,
      };
  }
}
