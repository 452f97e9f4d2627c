/**
 * Fuzzing every operation of the OpenAPI document (issue 14 §3), shared by the CI test
 * (test/fuzz-openapi.test.ts) and the bench (bench/fuzz.ts). Requests are generated from the
 * document itself: path and query parameters, header parameters and JSON bodies from their
 * schemas (valid-ish or mutated in one place, see fuzz-schema.ts), plus what the document does
 * not say: content-type variations, invalid JSON text, stray bodies, Idempotency-Key, If-Match,
 * Accept and keys of every role or none. Each answer must be below 500 and, from 400 up,
 * problem+json; the heap after GC is sampled as the run goes.
 *
 * Records the run creates feed an id pool (bounded), so later requests name records that
 * exist and get past the 404s to the code behind them.
 */
import fc from 'fast-check';
import { MEDIA_TYPES } from '../../src/contract/schemas.js';
import { JPEG, PNG } from './images.js';
import { encodeJson, mutantValue, RawJson, validValue, wildBody, type SchemaContext } from './fuzz-schema.js';
import { operationsOf, type OpenApiDoc, type Operation, type Schema } from './openapi.js';

export interface FuzzRequest {
  /** The operation it was generated for ("POST /v1/owners"), whatever method it was sent with. */
  op: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

export interface FuzzResponse {
  status: number;
  contentType: string;
  body: string;
}

export type Sender = (req: FuzzRequest) => Promise<FuzzResponse>;

/** An Authorization header to send, with how often (undefined: no header). */
export interface FuzzKey {
  label: string;
  authorization: string | undefined;
  weight: number;
}

/** Ids of records the run has seen, by the collection they came from; a ring per collection. */
export class IdPool {
  private readonly byTag = new Map<string, string[]>();
  constructor(private readonly perTag = 32) {}

  add(tag: string, id: string): void {
    const ring = this.byTag.get(tag) ?? [];
    if (ring.includes(id)) return;
    ring.push(id);
    if (ring.length > this.perTag) ring.shift();
    this.byTag.set(tag, ring);
  }

  /** The i-th (mod size) id of the first listed collection holding any, that `fits`. */
  pick(tags: string[], fits: (id: string) => boolean, i: number): string | undefined {
    for (const tag of tags) {
      const ids = (this.byTag.get(tag) ?? []).filter(fits);
      if (ids.length > 0) return ids[i % ids.length];
    }
    return undefined;
  }

  get size(): number {
    let n = 0;
    for (const ring of this.byTag.values()) n += ring.length;
    return n;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Collections a field or segment name may refer to: patientId -> patients, mediaIds -> media. */
function tagsOf(hint: string | undefined): string[] {
  if (hint === undefined) return [];
  const base = hint.replace(/Ids?$/, '');
  const kebab = base.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return [...new Set([hint, `${base}s`, base, `${kebab}s`, kebab])];
}

/** The collection a response's ids belong to: the last literal segment of the operation's path. */
export function collectionOf(path: string): string {
  const literal = path.split('/').filter((s) => s !== '' && !s.startsWith('{'));
  return literal[literal.length - 1] ?? '';
}

/** Adds the ids in a 2xx JSON answer (a record, or a page of items) to the pool. */
export function harvestIds(pool: IdPool, req: FuzzRequest, res: FuzzResponse): void {
  if (res.status >= 300 || !res.contentType.startsWith('application/json')) return;
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    return;
  }
  const tag = collectionOf(req.op.split(' ')[1] ?? '');
  const record = body as { id?: unknown; items?: { id?: unknown }[] };
  if (typeof record.id === 'string') pool.add(tag, record.id);
  if (Array.isArray(record.items)) for (const item of record.items.slice(0, 4)) if (typeof item?.id === 'string') pool.add(tag, item.id);
}

function schemaContext(doc: OpenApiDoc, pool: IdPool): SchemaContext {
  return {
    doc,
    known: (schema: Schema, hint) => {
      const fits = schema.format === 'uuid' ? (v: string) => UUID.test(v) : schema.pattern !== undefined ? (v: string) => new RegExp(schema.pattern!).test(v) : undefined;
      const tags = tagsOf(hint);
      if (fits === undefined || tags.length === 0) return undefined;
      return fc.nat().map((i) => pool.pick(tags, fits, i));
    },
  };
}

/** Percent-encodes any string, lone surrogates too (as the invalid UTF-8 a careless client sends). */
export function percentEncode(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return [...value].map((ch) => {
      try {
        return encodeURIComponent(ch);
      } catch {
        const c = ch.charCodeAt(0);
        return [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
      }
    }).join('');
  }
}

/** `arb` one time in `every`, else null. */
const sometimes = <T>(arb: fc.Arbitrary<T>, every: number): fc.Arbitrary<T | null> => fc.oneof({ weight: 1, arbitrary: arb }, { weight: every - 1, arbitrary: fc.constant(null) });

const textOf = (v: unknown): string => (typeof v === 'string' ? v : v instanceof RawJson ? v.text : encodeJson(v));

/** Header-safe text: visible ASCII and Latin-1, which any HTTP client can put in a header. */
const headerText = (maxLength: number): fc.Arbitrary<string> =>
  fc.string({ maxLength, unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff })).map((c) => String.fromCharCode(c)) });

/** Path segments sent as is (already encoded, or deliberately not). */
const RAW_SEGMENTS = ['', '.', '..', '%', '%zz', '%00', '%2e%2e%2f', '%2F', '%C0%AE', '%FF%FE', '%ED%A0%80', '*', ';', 'a;b=c', '~', 'null', '-1', '1e400', '%20'];
const RAW_QUERIES = ['unknown=1', 'limit=1&limit=2', '%zz=1', '&&', '=', 'a[b]=1', '__proto__[polluted]=1', 'constructor[prototype][x]=1', `x=${'y'.repeat(3000)}`, '%00=%00', 'limit=%00'];
const BROKEN_JSON = ['', ' ', 'null', 'undefined', "{'a':1}", '{"a":1,}', 'NaN', '[', '{"a":', '{"a":1}}', '\uFEFF{}', '{"x":1,"x":2}', '{"__proto__":{"polluted":1}}', '1e400', '"\\ud800"', '{"a":"\\u0000"}', '[][]', '\u0000', '{"a":1}garbage'];
const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/merge-patch+json', 'application/json; charset=utf-16', 'application/json;', 'application/vnd.api+json'];
const OTHER_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'multipart/form-data', 'application/octet-stream', 'text/html', ';', 'a/b/c', 'image/svg+xml', 'application/xml', ...MEDIA_TYPES];
const REAL_IMAGES: Record<string, Buffer> = { 'image/png': PNG, 'image/jpeg': JPEG };
const MAGIC: Record<string, number[]> = { 'image/png': [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'image/jpeg': [0xff, 0xd8, 0xff], 'application/pdf': [0x25, 0x50, 0x44, 0x46, 0x2d] };

/** A body and its content type (either may be absent). */
type Body = { body?: string | Buffer; contentType?: string };

function jsonBodyArb(schema: Schema, ctx: SchemaContext, documentedTypes: string[], mode: Mode): fc.Arbitrary<Body> {
  if (mode === 'valid') return fc.record({ body: validValue(schema, ctx).map(encodeJson), contentType: fc.constantFrom(...documentedTypes) });
  const value = fc.oneof({ weight: 4, arbitrary: validValue(schema, ctx) }, { weight: 5, arbitrary: mutantValue(schema, ctx) }, { weight: 1, arbitrary: wildBody });
  const type = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...documentedTypes) }, { weight: 2, arbitrary: fc.constantFrom(...JSON_TYPES) }, { weight: 1, arbitrary: fc.constantFrom(...OTHER_TYPES) }, { weight: 1, arbitrary: fc.constant(undefined) });
  const text = fc.oneof(
    { weight: 12, arbitrary: value.map(encodeJson) },
    { weight: 1, arbitrary: fc.constantFrom(...BROKEN_JSON) },
    // Truncated or padded valid-ish JSON.
    { weight: 1, arbitrary: fc.tuple(value.map(encodeJson), fc.nat(), fc.constantFrom('', ',', '}', ']', ' x', '\u0000', '\n{}')).map(([t, cut, tail]) => t.slice(0, cut % (t.length + 1)) + tail) },
  );
  const bytes: fc.Arbitrary<string | Buffer> = fc.oneof(
    { weight: 12, arbitrary: text },
    // Not UTF-8 at all: Latin-1 bytes of the text, or bytes with invalid sequences.
    { weight: 1, arbitrary: text.map((t) => Buffer.from(t, 'latin1')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.concat([Buffer.from('{"a":"'), Buffer.from(b), Buffer.from('"}')])) },
  );
  return fc.oneof({ weight: 15, arbitrary: fc.record({ body: bytes, contentType: type }) }, { weight: 1, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: type.map((contentType) => ({ contentType })) });
}

/** Bodies for operations that document none: none mostly, else file bytes, JSON or noise. */
function strayBodyArb(method: string, mode: Mode): fc.Arbitrary<Body> {
  const writes = method === 'POST' || method === 'PUT' || method === 'PATCH';
  // An image upload is decoded: a valid request sends a real image (trailing bytes after its end
  // are ignored by the decoder), others sometimes only its magic bytes (refused with 422).
  const file = fc.tuple(fc.constantFrom(...Object.keys(MAGIC)), fc.uint8Array({ maxLength: 256 }), fc.boolean(), fc.constantFrom(...MEDIA_TYPES, ...OTHER_TYPES, ...JSON_TYPES), fc.boolean()).map(([kind, rest, matching, other, real]) => ({
    body: Buffer.concat([(real || mode === 'valid') && REAL_IMAGES[kind] !== undefined ? REAL_IMAGES[kind]! : Buffer.from(MAGIC[kind]!), Buffer.from(rest)]),
    contentType: matching || mode === 'valid' ? kind : other,
  }));
  if (mode === 'valid') return writes ? file : fc.constant({});
  const json = fc.tuple(fc.oneof(fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? 'null'), fc.constantFrom(...BROKEN_JSON)), fc.constantFrom(...JSON_TYPES)).map(([body, contentType]) => ({ body, contentType }));
  return fc.oneof({ weight: writes ? 2 : 12, arbitrary: fc.constant({}) }, { weight: writes ? 6 : 1, arbitrary: file }, { weight: 1, arbitrary: json }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ body: Buffer.from(b) })) });
}

function authorizationArb(keys: FuzzKey[]): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    ...keys.map((k) => ({ weight: k.weight, arbitrary: fc.constant(k.authorization) })),
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('Bearer ', 'bearer ', 'Basic ', 'Bearer  ', '', 'Bearer apk_'), headerText(220)).map(([a, b]) => a + b) },
  );
}

function paramValue(schema: Schema, ctx: SchemaContext, hint: string | undefined, mode: Mode): fc.Arbitrary<unknown> {
  if (mode === 'valid') return validValue(schema, ctx, hint);
  return fc.oneof({ weight: 6, arbitrary: validValue(schema, ctx, hint) }, { weight: 3, arbitrary: mutantValue(schema, ctx, hint) });
}

/**
 * 'valid': every part valid-ish and sent with the first key, so requests reach the handlers and
 * the storage behind them; 'chaos': any part may be mutated, any key or none.
 */
export type Mode = 'valid' | 'chaos';

/** Requests for one operation of the document. */
export function requestArb(op: Operation, ctx: SchemaContext, keys: FuzzKey[], mode: Mode): fc.Arbitrary<FuzzRequest> {
  const chaos = mode === 'chaos';
  const segments = op.path.split('/');
  const pathParts = segments.map((seg, i) => {
    if (!seg.startsWith('{')) return fc.constant(seg);
    const name = seg.slice(1, -1);
    const schema = op.params.find((p) => p.in === 'path' && p.name === name)?.schema ?? { type: 'string' };
    const encoded = paramValue(schema, ctx, segments[i - 1], mode).map((v) => percentEncode(textOf(v)));
    return chaos ? fc.oneof({ weight: 12, arbitrary: encoded }, { weight: 1, arbitrary: fc.constantFrom(...RAW_SEGMENTS) }) : encoded;
  });
  const queryParts = op.params
    .filter((p) => p.in === 'query')
    .map((p) =>
      fc.option(
        fc.oneof(
          { weight: 8, arbitrary: paramValue(p.schema, ctx, p.name, mode).map((v) => (Array.isArray(v) ? v.map((x) => `${p.name}=${percentEncode(textOf(x))}`).join('&') : `${p.name}=${percentEncode(textOf(v))}`)) },
          { weight: chaos ? 1 : 0, arbitrary: fc.constantFrom(`${p.name}`, `${p.name}=`, `${p.name}[]=1`, `${p.name}=1&${p.name}=2`, `${p.name}=%zz`, `${p.name}=%00`) },
        ),
        { freq: p.required === true ? 8 : 2 },
      ),
    );
  const extraQuery = chaos ? sometimes(fc.constantFrom(...RAW_QUERIES), 8) : fc.constant(null);
  const headerParams = op.params.filter((p) => p.in === 'header' && p.name.toLowerCase() !== 'if-match');
  const documentsIfMatch = op.params.some((p) => p.in === 'header' && p.name.toLowerCase() === 'if-match');
  const validIfMatch = fc.constantFrom('"1"', '"2"', '*', 'W/"1"', '"1", "2"');
  const ifMatch = chaos
    ? sometimes(fc.oneof(validIfMatch, fc.constantFrom('"3"', '', '"', 'W/', '"-1"', '"1e400"', `"${'9'.repeat(40)}"`), headerText(60)), documentsIfMatch ? 1 : 6)
    : documentsIfMatch ? validIfMatch : fc.constant(null);
  const validIdempotencyKey = fc.stringMatching(/^[\x21-\x7e]{1,40}$/);
  const idempotencyKey = sometimes(chaos ? fc.oneof(validIdempotencyKey, fc.constantFrom('', ' ', 'a'.repeat(255), 'a'.repeat(256), 'key with spaces', Buffer.from('ключ').toString('latin1')), headerText(80)) : validIdempotencyKey, op.method === 'POST' ? 2 : 8);
  const accept = sometimes(chaos ? fc.constantFrom('application/json', 'text/event-stream', '*/*', 'application/problem+json', 'text/html', 'application/json, text/event-stream', ';;', 'image/png') : fc.constantFrom('application/json', 'text/event-stream'), 3);
  const requestId = sometimes(chaos ? fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), headerText(200)) : fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), 8);
  const validTraceparent = fc.tuple(fc.stringMatching(/^[0-9a-f]{32}$/), fc.stringMatching(/^[0-9a-f]{16}$/)).map(([t, s]) => `00-${t}-${s}-01`);
  const traceparent = sometimes(chaos ? fc.oneof(validTraceparent, fc.constantFrom('00-00000000000000000000000000000000-0000000000000000-00', 'ff-zz', ''), headerText(80)) : validTraceparent, 10);
  const others = headerParams.map((p) => sometimes(paramValue(p.schema, ctx, p.name, mode).map((v) => [p.name, textOf(v).replace(/[^\x20-\x7e]/g, '?')] as const), 3));
  const body = op.body === undefined ? strayBodyArb(op.method, mode) : jsonBodyArb(Object.values(op.body)[0]!, ctx, Object.keys(op.body), mode);
  const method = chaos ? fc.oneof({ weight: 40, arbitrary: fc.constant(op.method) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD') }) : fc.constant(op.method);

  return fc
    .record({
      method,
      path: fc.tuple(...pathParts),
      query: fc.tuple(fc.tuple(...queryParts), extraQuery),
      authorization: chaos ? authorizationArb(keys) : fc.constant(keys[0]!.authorization),
      ifMatch,
      idempotencyKey,
      accept,
      requestId,
      traceparent,
      others: fc.tuple(...others),
      body,
    })
    .map((r) => {
      const query = [...r.query[0], r.query[1]].filter((q): q is string => q !== null && q !== undefined).join('&');
      const headers: Record<string, string> = {};
      if (r.authorization !== undefined) headers.authorization = r.authorization;
      if (r.ifMatch !== null) headers['if-match'] = r.ifMatch;
      if (r.idempotencyKey !== null) headers['idempotency-key'] = r.idempotencyKey;
      if (r.accept !== null) headers.accept = r.accept;
      if (r.requestId !== null) headers['x-request-id'] = r.requestId;
      if (r.traceparent !== null) headers.traceparent = r.traceparent;
      for (const o of r.others) if (o !== null) headers[o[0]] = o[1];
      if (r.body.contentType !== undefined) headers['content-type'] = r.body.contentType;
      const req: FuzzRequest = { op: op.label, method: r.method, url: r.path.join('/') + (query === '' ? '' : `?${query}`), headers };
      if (r.body.body !== undefined) req.body = r.body.body;
      return req;
    });
}

/**
 * Requests for every operation of the document, each operation as likely as the next; two in
 * five valid-ish (sent with keys[0]), the rest chaos.
 */
export function documentArb(doc: OpenApiDoc, pool: IdPool, keys: FuzzKey[]): { arb: fc.Arbitrary<FuzzRequest>; operations: Operation[] } {
  const operations = operationsOf(doc);
  const ctx = schemaContext(doc, pool);
  const perOperation = operations.map((op) => fc.oneof({ weight: 2, arbitrary: requestArb(op, ctx, keys, 'valid') }, { weight: 3, arbitrary: requestArb(op, ctx, keys, 'chaos') }));
  return { arb: fc.oneof(...perOperation), operations };
}

