/**
 * Injection and protocol-abuse suite (issue 14 §3), against PostgreSQL: SQL in every string
 * field of every body schema and query parameter of the OpenAPI document, prototype pollution,
 * deeply nested JSON, path traversal and polyglot files in media, oversized headers, slow
 * bodies and oversized bodies. Nothing answers 5xx, nothing leaks, refused requests change no
 * table, and the process keeps serving.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import type { OpenApiDoc, Schema } from './support/openapi.js';
import { JPEG, scenePng } from './support/images.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason, type TestDatabase } from './support/services.js';

const PNG_HEAD = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
// A real image: uploads are decoded, and a PNG header followed by filler is refused with 422.
const PNG = await scenePng({ mark: 21 });

const SQL_PAYLOADS = [
  "' OR '1'='1",
  "'; DROP TABLE patients; --",
  '" OR 1=1 --',
  "1); DELETE FROM owners; --",
  "' UNION SELECT key_hash::text, null FROM api_keys --",
  "'; SELECT pg_sleep(5); --",
  "%' OR name LIKE '%",
  "\\'; SET row_security = off; --",
  "$$; RESET ROLE; $$",
  'Robert\u0000Tables',
];

/** Tables whose row counts a refused request must not change (the audit trail records refusals). */
const TABLES = ['api_keys', 'clinics', 'diagnoses', 'diagnosis_evidence', 'diagnosis_provenance', 'encounters', 'idempotency_keys', 'media', 'observations', 'owners', 'patient_weights', 'patients', 'record_versions', 'models'];

/** Every path (list of keys; '0' for an array item) to a string-typed leaf of a schema. */
function stringLeaves(schema: Schema, at: string[] = []): string[][] {
  if (schema.type === 'string') return [at];
  if (schema.anyOf) return schema.anyOf.some((s) => s.type === 'string') ? [at] : schema.anyOf.flatMap((s) => stringLeaves(s, at));
  if (schema.type === 'array' && schema.items) return stringLeaves(schema.items, [...at, '0']);
  if (schema.properties) return Object.entries(schema.properties).flatMap(([k, s]) => stringLeaves(s, [...at, k]));
  return [];
}

function withValue(base: unknown, at: string[], value: unknown): unknown {
  const copy = structuredClone(base) as Record<string, unknown>;
  let node: Record<string, unknown> = copy;
  for (const [i, key] of at.entries()) {
    if (i === at.length - 1) {
      node[key] = value;
      break;
    }
    const next = at[i + 1] === '0' ? [] : {};
    node[key] = (node[key] as Record<string, unknown> | undefined) ?? next;
    node = node[key] as Record<string, unknown>;
  }
  return copy;
}

describe('attack: injection and protocol abuse (PostgreSQL)', { skip: pgSkipReason() }, () => {
  let database: TestDatabase;
  let rt: TestRuntime;
  let admin: Call;
  let inspector: pg.Client;
  const a: Record<string, string> = {};
  let otherClinicName: string;

  const counts = async (): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const t of TABLES) out[t] = Number((await inspector.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n);
    return out;
  };

  before(async () => {
    database = await createTestDatabase();
    rt = await startRuntime(new PostgresExecutor({ connectionString: database.url, poolMax: 4 }), { AGENTICPET_BODY_MAX_BYTES: '65536', AGENTICPET_MEDIA_MAX_BYTES: '65536' });
    admin = client(rt, (await rt.newClinic('Injection clinic')).key);
    otherClinicName = 'Bystander Clinic Zeta';
    const other = client(rt, (await rt.newClinic(otherClinicName)).key);
    const otherOwner = (await other('POST', '/v1/owners', { body: { name: 'Zeta Owner' } })).json().id;
    assert.equal((await other('POST', '/v1/patients', { body: { name: 'Zetapet', species: 'cat', sex: 'male', neutered: true, ownerId: otherOwner } })).statusCode, 201);
    a.owner = (await admin('POST', '/v1/owners', { body: { name: 'Owner One' } })).json().id;
    const p = await admin('POST', '/v1/patients', { body: { name: 'Rex', species: 'dog', sex: 'male', neutered: false, ownerId: a.owner } });
    a.patient = p.json().id;
    a.encounter = (await admin('POST', `/v1/patients/${a.patient}/encounters`, { body: { reason: 'check' } })).json().id;
    a.consultation = (await admin('POST', '/v1/consultations', { body: { patientId: a.patient } })).json().id;
    inspector = new pg.Client({ connectionString: database.url });
    await inspector.connect();
  });
  after(async () => {
    await inspector?.end();
    await rt?.close();
    await database?.drop();
  });

  it('SQL payloads in every string field of every body and query: no 5xx, no leak, refused requests change no table', async () => {
    const doc = (await rt.runtime.app.inject({ method: 'GET', url: '/openapi.json' })).json() as OpenApiDoc;
    /** Valid bodies to start from; an operation with a JSON body and no entry fails the suite. */
    const bases: Record<string, () => unknown> = {
      'post /v1/owners': () => ({ name: 'Owner', email: 'o@example.org', phone: '+1 555 0100', address: '1 Road' }),
      'post /v1/patients': () => ({ name: 'Pet', species: 'dog', breed: 'Collie', sex: 'female', neutered: true, ownerId: a.owner, birthDate: '2020-01-02' }),
      'patch /v1/patients/{id}': () => ({ name: 'Pet' }),
      'post /v1/patients/{id}/encounters': () => ({ reason: 'visit', startedAt: '2026-01-01T10:00:00Z' }),
      'post /v1/encounters/{id}/observations': () => ({ category: 'note', code: 'note', display: 'Note', value: 'text', unit: 'mg' }),
      'post /v1/api-keys': () => ({ name: 'key', role: 'readonly' }),
      'post /v1/diagnoses': () => ({ patientId: a.patient, complaint: 'vomiting', signs: ['vomiting'], labs: [{ analyte: 'glucose', value: '2+', unit: '' }], treatments: ['maropitant'] }),
      'post /v1/consultations': () => ({ patientId: a.patient }),
      'post /v1/consultations/{id}/inputs': () => ({ complaint: 'vomiting', signs: ['vomiting'] }),
      // A fresh version each time, so an accepted payload is a registration, never a 409.
      'post /v1/models': () => ({
        name: 'injection-model',
        version: `1.0.0-${Math.random().toString(36).slice(2, 10)}`,
        sha256: 'e'.repeat(64),
        input: { name: 'image', width: 8, height: 8, channels: 1, layout: 'NCHW', mean: [0.5], std: [0.25] },
        output: { name: 'probabilities', activation: 'none' },
        labels: [{ label: 'mass', finding: 'skin_mass', threshold: 0.5, weight: 0.5 }],
      }),
      'post /v1/models/{name}/versions/{version}/canary': () => ({ share: 0.5 }),
    };
    const idFor = (p: string): string => {
      if (p.startsWith('/v1/consultations/')) return a.consultation!;
      if (p.startsWith('/v1/encounters/')) return a.encounter!;
      if (p.startsWith('/v1/owners/')) return a.owner!;
      return a.patient!;
    };
    let cases = 0;
    const failures: string[] = [];
    for (const [p, methods] of Object.entries(doc.paths)) {
      if (!p.startsWith('/v1/')) continue;
      for (const [method, op] of Object.entries(methods)) {
        const url = p.replace(/\{[^}]+\}/g, () => idFor(p));
        const jsonSchema = op.requestBody?.content['application/json']?.schema;
        const targets: { label: string; send: (payload: string) => Promise<{ statusCode: number; body: string }> }[] = [];
        if (jsonSchema !== undefined) {
          const base = bases[`${method} ${p}`];
          assert.ok(base !== undefined, `no base body for ${method.toUpperCase()} ${p}: add one to the suite`);
          for (const leaf of stringLeaves(jsonSchema)) {
            targets.push({
              label: `${method.toUpperCase()} ${p} body.${leaf.join('.')}`,
              send: async (payload) => {
                const etag = String((await admin('GET', `/v1/patients/${a.patient}`)).headers.etag);
                return admin(method.toUpperCase(), url, { body: withValue(base(), leaf, payload), headers: { 'if-match': etag } });
              },
            });
          }
        }
        for (const q of (op.parameters ?? []).filter((x) => x.in === 'query' && (x.schema.type === 'string' || x.schema.type === undefined))) {
          targets.push({
            label: `${method.toUpperCase()} ${p} ?${q.name}`,
            send: (payload) =>
              p === '/v1/media' && method === 'post'
                ? admin('POST', `${url}?${q.name}=${encodeURIComponent(payload)}`, { raw: PNG, contentType: 'image/png' })
                : admin(method.toUpperCase(), `${url}?${q.name}=${encodeURIComponent(payload)}`),
          });
        }
        for (const target of targets) {
          for (const payload of SQL_PAYLOADS) {
            cases++;
            const before = await counts();
            const res = await target.send(payload);
            const label = `${target.label} = ${JSON.stringify(payload)}`;
            if (res.statusCode >= 500) failures.push(`${label}: ${res.statusCode} ${res.body.slice(0, 300)}`);
            for (const secret of [otherClinicName, 'Zetapet', 'Zeta Owner', 'syntax error', 'PostgresError', 'relation "', 'invalid byte sequence']) {
              if (res.body.includes(secret)) failures.push(`${label}: the answer contains ${JSON.stringify(secret)}`);
            }
            if (res.statusCode >= 400 && JSON.stringify(await counts()) !== JSON.stringify(before)) failures.push(`${label}: refused with ${res.statusCode} but the tables changed`);
          }
        }
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(cases > 300, `${cases} injection cases`);
    // The tables are intact and still isolated by clinic.
    // (A's patient Rex was renamed to accepted payloads by the PATCH cases: stored as plain text.)
    const all = (await inspector.query('SELECT name FROM patients ORDER BY name')).rows.map((r) => r.name as string);
    assert.ok(all.includes('Zetapet') && all.includes("'; DROP TABLE patients; --") && all.length >= 3, JSON.stringify(all));
    const listed = (await admin('GET', '/v1/patients?limit=200')).json().items as { name: string }[];
    assert.ok(!listed.some((x) => x.name === 'Zetapet'));
    // A payload that was accepted is stored verbatim, as data.
    const res = await admin('POST', '/v1/owners', { body: { name: "'; DROP TABLE owners; --" } });
    assert.equal(res.statusCode, 201);
    assert.equal((await admin('GET', `/v1/owners/${res.json().id}`)).json().name, "'; DROP TABLE owners; --");
  });

  it('a NUL character (U+0000) in a body, query string or key is refused with 400, not a database 500', async () => {
    const before = await counts();
    for (const [method, url, body] of [
      ['POST', '/v1/owners', { name: 'Robert\u0000Tables' }],
      ['POST', '/v1/patients', { name: 'Rex', species: 'dog', sex: 'male', neutered: false, ownerId: a.owner, breed: '\u0000' }],
      ['POST', `/v1/consultations/${a.consultation}/inputs`, { complaint: 'vomiting\u0000' }],
      ['POST', '/v1/diagnoses', { patientId: a.patient, complaint: 'x\u0000y' }],
      ['GET', '/v1/patients?name=Re%00x', undefined],
      ['GET', '/v1/audit?entityType=patient%00', undefined],
    ] as const) {
      const res = await admin(method, url, body === undefined ? {} : { body });
      assert.equal(res.statusCode, 400, `${method} ${url}: ${res.body}`);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      assert.equal(res.json().type, 'urn:agenticpet:problem:validation');
    }
    const key = await admin('POST', '/v1/owners', { raw: '{"name":"x","a\\u0000b":1}', contentType: 'application/json' });
    assert.equal(key.statusCode, 400, key.body);
    const media = await admin('POST', '/v1/media?description=a%00b', { raw: PNG, contentType: 'image/png' });
    assert.equal(media.statusCode, 400, media.body);
    assert.deepEqual(await counts(), before);
  });

  it('prototype pollution: __proto__ and constructor.prototype keys are refused; Object.prototype stays clean', async () => {
    const bodies = [
      `{"name":"P","__proto__":{"polluted":"yes"}}`,
      `{"name":"P","constructor":{"prototype":{"polluted":"yes"}}}`,
      `{"name":"P","address":"x","nested":{"__proto__":{"polluted":"yes"}}}`,
    ];
    const before = await counts();
    for (const raw of bodies) {
      for (const [method, url] of [['POST', '/v1/owners'], ['POST', '/v1/diagnoses'], ['POST', `/v1/consultations/${a.consultation}/inputs`]] as const) {
        const res = await admin(method, url, { raw, contentType: 'application/json' });
        assert.equal(res.statusCode, 400, `${method} ${url} ${raw}: ${res.body}`);
        assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      }
    }
    const etag = String((await admin('GET', `/v1/patients/${a.patient}`)).headers.etag);
    const patch = await admin('PATCH', `/v1/patients/${a.patient}`, { raw: `{"name":"Rex","__proto__":{"polluted":"yes"}}`, contentType: 'application/merge-patch+json', headers: { 'if-match': etag } });
    assert.equal(patch.statusCode, 400, patch.body);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
    const stored = await inspector.query(`SELECT count(*)::int AS n FROM record_versions WHERE content::text LIKE '%polluted%'`);
    assert.equal(stored.rows[0].n, 0);
    assert.deepEqual(await counts(), before);
  });

  it('deeply nested JSON (10,000 levels) is answered 4xx quickly', async () => {
    for (const [open, close] of [['[', ']'], ['{"a":', '}']] as const) {
      const deep = `${open.repeat(10_000)}1${close.repeat(10_000)}`;
      for (const [method, url, wrap] of [
        ['POST', '/v1/owners', (d: string) => `{"name":"N","address":${d}}`],
        ['POST', '/v1/diagnoses', (d: string) => `{"patientId":"${a.patient}","vitals":${d}}`],
        ['POST', '/v1/owners', (d: string) => d],
      ] as const) {
        const started = performance.now();
        const res = await admin(method, url, { raw: wrap(deep), contentType: 'application/json' });
        const ms = performance.now() - started;
        assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${url}: ${res.statusCode} ${res.body.slice(0, 200)}`);
        assert.ok(ms < 1000, `answered in ${Math.round(ms)} ms`);
      }
    }
    assert.equal((await admin('GET', '/v1/patients')).statusCode, 200, 'still serving');
  });

  it('path traversal in media ids, descriptions and asset names is refused or stored inertly', async () => {
    for (const id of ['..%2F..%2Fetc%2Fpasswd', '../../etc/passwd', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..\\..\\windows\\win.ini', '00000000-0000-0000-0000-000000000000%00.png']) {
      for (const suffix of ['', '/content']) {
        const res = await admin('GET', `/v1/media/${id}${suffix}`);
        assert.ok([400, 404].includes(res.statusCode), `${id}${suffix}: ${res.statusCode}`);
        assert.ok(!res.body.includes('root:'), 'no file contents');
      }
    }
    for (const name of ['..%2F..%2Fpackage.json', '..%2f..%2f..%2fetc%2fpasswd', '%2e%2e%2fserver.ts']) {
      const res = await rt.runtime.app.inject({ method: 'GET', url: `/ops/assets/${name}` });
      assert.ok([400, 404, 503].includes(res.statusCode), `${name}: ${res.statusCode}`);
      assert.ok(!res.body.includes('"dependencies"') && !res.body.includes('root:'));
    }
    const description = '../../../../etc/passwd';
    const up = await admin('POST', `/v1/media?patientId=${a.patient}&description=${encodeURIComponent(description)}`, { raw: PNG, contentType: 'image/png' });
    assert.equal(up.statusCode, 201, up.body);
    const meta = up.json();
    assert.equal(meta.description, description, 'kept as text');
    const blobs = fs.readdirSync(rt.dataDir, { recursive: true }).map(String);
    assert.ok(blobs.every((f) => !f.includes('passwd') && !f.includes('..')), `files under the data dir: ${blobs.join(', ')}`);
    const content = await admin('GET', `/v1/media/${meta.id}/content`);
    assert.equal(content.statusCode, 200);
    assert.deepEqual(content.rawPayload, PNG);
  });

  it('polyglot files are stored inertly and served with their checked type and nosniff; a header over a payload is 422; a mismatch is 415', async () => {
    const html = Buffer.from('<html><script>alert(document.cookie)</script></html>');
    const zipTail = Buffer.from([0x50, 0x4b, 0x05, 0x06, ...Buffer.alloc(18)]);
    const jpegHead = Buffer.from([0xff, 0xd8, 0xff, 0xe0]);
    // A decodable image with a payload after its end is an image (the decoder stops at its end).
    const cases: [string, Buffer][] = [
      ['image/png', Buffer.concat([PNG, html])],
      ['image/png', Buffer.concat([PNG, Buffer.from('%PDF-1.7\n1 0 obj<</JS(app.alert(1))>>endobj')])],
      ['image/jpeg', Buffer.concat([JPEG, zipTail])],
      ['application/pdf', Buffer.concat([Buffer.from('%PDF-1.4\n'), html])],
    ];
    for (const [type, bytes] of cases) {
      const up = await admin('POST', '/v1/media', { raw: bytes, contentType: type });
      assert.equal(up.statusCode, 201, `${type}: ${up.body}`);
      const res = await admin('GET', `/v1/media/${up.json().id}/content`);
      assert.equal(res.statusCode, 200);
      assert.equal(String(res.headers['content-type']).split(';')[0], type);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.ok(!/^text\/html/.test(String(res.headers['content-type'])));
      assert.deepEqual(res.rawPayload, bytes);
    }
    // Only the magic bytes of an image in front of a payload: not an image, nothing stored.
    const before = await counts();
    for (const [type, bytes] of [['image/png', Buffer.concat([PNG_HEAD, html])], ['image/jpeg', Buffer.concat([jpegHead, Buffer.from('JFIF'), zipTail])]] as const) {
      const res = await admin('POST', '/v1/media', { raw: bytes, contentType: type });
      assert.equal(res.statusCode, 422, `${type}: ${res.body}`);
      assert.equal(res.json().type, 'urn:agenticpet:problem:undecodable-image');
    }
    assert.deepEqual(await counts(), before);
    for (const [type, bytes] of [['image/png', html], ['application/pdf', Buffer.concat([PNG_HEAD, html])], ['image/jpeg', Buffer.concat([PNG_HEAD, html])]] as const) {
      const res = await admin('POST', '/v1/media', { raw: bytes, contentType: type });
      assert.equal(res.statusCode, 415, `${type}: ${res.body}`);
    }
    const svg = await admin('POST', '/v1/media', { raw: '<svg onload="alert(1)"/>', contentType: 'image/svg+xml' });
    assert.equal(svg.statusCode, 415);
  });

  it('an oversized JSON body is 413 and an oversized media upload is 413; nothing is stored', async () => {
    const before = await counts();
    const big = await admin('POST', '/v1/owners', { raw: JSON.stringify({ name: 'x', address: 'a'.repeat(70_000) }), contentType: 'application/json' });
    assert.equal(big.statusCode, 413, big.body);
    assert.match(String(big.headers['content-type']), /^application\/problem\+json/);
    const media = await admin('POST', '/v1/media', { raw: Buffer.concat([PNG, Buffer.alloc(70_000)]), contentType: 'image/png' });
    assert.equal(media.statusCode, 413, media.body);
    assert.deepEqual(await counts(), before);
  });
});

/** A raw HTTP/1.1 exchange on a real socket: what the server wrote before it closed. */
function rawExchange(port: number, write: (socket: net.Socket) => void, waitMs: number): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ text, closed, ms: performance.now() - started });
    };
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', () => write(socket));
    setTimeout(() => finish(false), waitMs).unref();
  });
}

describe('attack: protocol abuse on a real socket (PostgreSQL)', { skip: pgSkipReason() }, () => {
  let database: TestDatabase;
  let rt: TestRuntime;
  let key: string;
  let port: number;

  before(async () => {
    database = await createTestDatabase();
    rt = await startRuntime(new PostgresExecutor({ connectionString: database.url, poolMax: 2 }), { AGENTICPET_HTTP_REQUEST_TIMEOUT_MS: '1000' });
    key = (await rt.newClinic('Socket clinic')).key;
    await rt.runtime.app.listen({ port: 0, host: '127.0.0.1' });
    port = (rt.runtime.app.server.address() as net.AddressInfo).port;
  });
  after(async () => {
    await rt?.close();
    await database?.drop();
  });

  it('the request timeout is configured (Fastify alone would disable it)', () => {
    assert.equal(rt.runtime.app.server.requestTimeout, 1000);
    // Node derives headersTimeout from requestTimeout only when both are given to createServer.
    assert.ok(rt.runtime.app.server.headersTimeout <= 1000, `headersTimeout ${rt.runtime.app.server.headersTimeout}`);
    // Node checks the deadlines on this interval (30 s by default): four times per timeout here.
    assert.equal((rt.runtime.app.server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval, 250);
  });

  it('oversized headers are answered 431 and the server keeps serving', async () => {
    const res = await rawExchange(port, (s) => s.write(`GET /v1/patients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`), 5000);
    assert.match(res.text, /^HTTP\/1\.1 431 /);
    const ok = await fetch(`http://127.0.0.1:${port}/v1/patients`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(ok.status, 200);
  });

  it('a body sent one byte at a time is cut off with 408 once the request timeout passes', async () => {
    const body = JSON.stringify({ name: 'Slow owner, sent one byte every 200 ms' });
    let timer: NodeJS.Timeout | undefined;
    const res = await rawExchange(
      port,
      (s) => {
        s.write(`POST /v1/owners HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
        let i = 0;
        timer = setInterval(() => (i < body.length && !s.destroyed ? s.write(body[i++]!) : clearInterval(timer)), 200);
      },
      8000,
    );
    clearInterval(timer);
    assert.ok(res.closed, 'the server closed the connection');
    assert.match(res.text, /^HTTP\/1\.1 408 /);
    assert.ok(res.ms < 4000, `cut off after ${Math.round(res.ms)} ms`);
    const owners = await fetch(`http://127.0.0.1:${port}/v1/audit?entityType=owner`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(owners.status, 200);
    assert.deepEqual(((await owners.json()) as { items: unknown[] }).items.filter((e) => (e as { action: string }).action === 'create'), [], 'the slow request stored nothing');
  });

  it('slow headers are cut off too', async () => {
    let timer: NodeJS.Timeout | undefined;
    const head = `GET /v1/patients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Slow: ${'b'.repeat(40)}\r\n\r\n`;
    const res = await rawExchange(
      port,
      (s) => {
        let i = 0;
        timer = setInterval(() => (i < head.length && !s.destroyed ? s.write(head[i++]!) : clearInterval(timer)), 100);
      },
      8000,
    );
    clearInterval(timer);
    assert.ok(res.closed, 'the server closed the connection');
    assert.match(res.text, /^HTTP\/1\.1 408 /);
    assert.ok(res.ms < 4000, `cut off after ${Math.round(res.ms)} ms`);
  });
});
