/**
 * Valid requests for every /v1 operation of the OpenAPI document, with the ids they carry taken
 * from a given set: the attack suites and the permission suite send them. An operation added
 * later is covered automatically, and a suite fails if it has no case generator here.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Call } from './runtime.js';
import type { OpenApiDoc } from './openapi.js';

// A real PNG: uploads are decoded, and a PNG header followed by filler is refused.
export { PNG } from './images.js';
import { PNG } from './images.js';

export type Kind = 'owner' | 'patient' | 'encounter' | 'observation' | 'media' | 'diagnosis' | 'consultation' | 'apiKey' | 'model' | 'modelVersion';

/** The collection segment before a path parameter names the kind of id it takes. */
export const KIND_OF_SEGMENT: Record<string, Kind> = {
  owners: 'owner',
  patients: 'patient',
  encounters: 'encounter',
  observations: 'observation',
  media: 'media',
  diagnoses: 'diagnosis',
  consultations: 'consultation',
  'api-keys': 'apiKey',
  // The model registry is global (no clinic owns a model): its names and versions are no tenant's secret.
  models: 'model',
  versions: 'modelVersion',
};

/** Body and query fields that take ids, by field name. */
export const KIND_OF_FIELD: Record<string, Kind> = {
  ownerId: 'owner',
  patientId: 'patient',
  encounterId: 'encounter',
  mediaIds: 'media',
  consultationId: 'consultation',
  entityId: 'patient',
};

export type Ids = Record<Kind, string>;

export const fresh = (): Ids => ({
  owner: randomUUID(),
  patient: randomUUID(),
  encounter: randomUUID(),
  observation: randomUUID(),
  media: randomUUID(),
  diagnosis: randomUUID(),
  consultation: `cs_${randomUUID().replace(/-/g, '').slice(0, 22)}`,
  apiKey: randomUUID(),
  model: `fresh-${randomUUID().slice(0, 8)}`,
  modelVersion: '0.0.1',
});

/**
 * A valid body for every operation that takes one, with every id field taken from `ids`.
 * An operation of the OpenAPI document with a request body and no entry here fails the suite.
 */
export const BODIES: Record<string, (ids: Ids) => unknown> = {
  'post /v1/owners': () => ({ name: 'Attacker owner' }),
  'post /v1/patients': (ids) => ({ name: 'Intruder', species: 'dog', sex: 'male', neutered: false, ownerId: ids.owner }),
  'patch /v1/patients/{id}': (ids) => ({ ownerId: ids.owner, name: 'Renamed by A' }),
  'post /v1/patients/{id}/encounters': () => ({ reason: 'cross-tenant visit' }),
  'post /v1/encounters/{id}/observations': () => ({ category: 'note', code: 'note', value: 'written by A' }),
  'post /v1/api-keys': () => ({ name: 'attacker', role: 'readonly' }),
  'post /v1/diagnoses': (ids) => ({ patientId: ids.patient, encounterId: ids.encounter, complaint: 'vomiting', mediaIds: [ids.media] }),
  'post /v1/consultations': (ids) => ({ patientId: ids.patient, encounterId: ids.encounter }),
  'post /v1/consultations/{id}/inputs': (ids) => ({ complaint: 'vomiting', mediaIds: [ids.media] }),
  'post /v1/consultations/{id}/diagnose': () => undefined,
  // Its own name, never the one of `ids` (a global registry: what one caller registers, all see).
  'post /v1/models': () => ({
    name: 'registered-by-suite',
    version: `1.0.0-${randomUUID().slice(0, 8)}`,
    sha256: 'c'.repeat(64),
    input: { name: 'image', width: 8, height: 8, channels: 1, layout: 'NCHW', mean: [0.5], std: [0.25] },
    output: { activation: 'none' },
    labels: [{ label: 'photograph', finding: null, threshold: 0.5, weight: 0 }],
  }),
  'post /v1/models/{name}/versions/{version}/canary': () => ({ share: 0.5 }),
};

export interface Operation {
  method: string;
  path: string;
  pathKinds: Kind[];
  queryIdFields: string[];
  hasBody: boolean;
  isMedia: boolean;
}

/** The document's types are the fuzzer's (support/openapi.ts): one description of it for every suite. */
export type { OpenApiDoc };

export function operationsOf(doc: OpenApiDoc): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    if (!path.startsWith('/v1/')) continue;
    for (const [method, op] of Object.entries(methods)) {
      const segments = path.split('/');
      const pathKinds = segments.flatMap((s, i) => {
        if (!s.startsWith('{')) return [];
        const kind = KIND_OF_SEGMENT[segments[i - 1] ?? ''];
        assert.ok(kind !== undefined, `no case generator for the path parameter ${s} of ${method.toUpperCase()} ${path}: add its collection to KIND_OF_SEGMENT`);
        return [kind];
      });
      const query = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      const isMedia = path === '/v1/media' && method === 'post';
      ops.push({ method, path, pathKinds, queryIdFields: query.filter((q) => KIND_OF_FIELD[q] !== undefined), hasBody: op.requestBody !== undefined, isMedia });
    }
  }
  return ops;
}

export function urlFor(op: Operation, ids: Ids): string {
  let i = 0;
  const path = op.path.replace(/\{[^}]+\}/g, () => encodeURIComponent(ids[op.pathKinds[i++]!]));
  const query = op.queryIdFields.map((f) => `${f}=${encodeURIComponent(ids[KIND_OF_FIELD[f]!])}`).join('&');
  return query === '' ? path : `${path}?${query}`;
}

export interface Answer {
  status: number;
  type: string | undefined;
  body: string;
  /** The URL and body sent: ids A itself sent may be echoed back (a problem's instance). */
  sent: string;
}

export async function send(call: Call, op: Operation, ids: Ids, ifMatch: string): Promise<Answer> {
  const headers: Record<string, string> = { 'if-match': ifMatch };
  const key = `${op.method} ${op.path}`;
  let res;
  let sent = urlFor(op, ids);
  if (op.isMedia) {
    res = await call('POST', urlFor(op, ids), { raw: PNG, contentType: 'image/png', headers });
  } else if (op.hasBody || key in BODIES) {
    const make = BODIES[key];
    assert.ok(make !== undefined, `no case generator for the body of ${op.method.toUpperCase()} ${op.path}: add it to BODIES`);
    const body = make(ids);
    sent += JSON.stringify(body ?? null);
    res = await call(op.method.toUpperCase(), urlFor(op, ids), body === undefined ? { headers } : { body, headers });
  } else {
    res = await call(op.method.toUpperCase(), urlFor(op, ids), { headers });
  }
  let type: string | undefined;
  try {
    type = (res.json() as { type?: string }).type;
  } catch {
    type = undefined;
  }
  return { status: res.statusCode, type, body: res.body, sent };
}
