/**
 * fast-check arbitraries from a JSON Schema of the OpenAPI document: values that satisfy it
 * (valid-ish: cross-field rules the schema cannot state are left to chance), and mutants that
 * break it in one place each (a wrong type, a missing required field, an unknown field, a length
 * just past a bound, odd Unicode, a huge number, deep nesting, null, an array for an object).
 * Number literals JSON.stringify cannot write (1e400, 30-digit integers, -0) travel as RawJson.
 */
import fc from 'fast-check';
import { resolveSchema, type OpenApiDoc, type Schema } from './openapi.js';

/** JSON text spliced into the encoded body as is. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** JSON text of a value that may hold RawJson leaves. */
export function encodeJson(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : encodeJson(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const parts: string[] = [];
    for (const [k, v] of Object.entries(value)) if (v !== undefined) parts.push(`${JSON.stringify(k)}:${encodeJson(v)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export interface SchemaContext {
  doc: OpenApiDoc;
  /**
   * Real values for a string field: ids of records that exist, so valid-ish requests get past
   * the 404s and reach the code behind them. `hint` is the field or parameter name.
   */
  known?: (schema: Schema, hint: string | undefined) => fc.Arbitrary<string | undefined> | undefined;
}

/** Strings that have broken parsers, databases and encoders before. */
export const NASTY_STRINGS: readonly string[] = [
  '', ' ', '\t\r\n', '\u0000', 'a\u0000b', '\uD800', '\uDFFF', 'x\uDBFFy', '\uDC00\uD800', '\uFEFF', '\u202Eabc', '\u200B', 'e\u0301',
  '\u{1F436}', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}', '\u{10FFFF}', '\uFFFF', '\uFFFE', '"', '\\', "'", '%', '%00', '%zz', '../../etc/passwd',
  "' OR '1'='1", '$$; RESET ROLE; $$', '${jndi:ldap://x/a}', '{{7*7}}', '<script>alert(1)</script>', 'null', 'NaN', '__proto__', 'constructor',
  '0', '-1', '1e400', '\u0085\u2028\u2029', '\u00ff\u00fe', 'Ω'.repeat(300),
];

/** Any single UTF-16 code unit, lone surrogates included (fast-check's own units exclude them). */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

const HUGE_NUMBERS: readonly unknown[] = [
  new RawJson('1e400'), new RawJson('-1e400'), new RawJson('123456789012345678901234567890'), new RawJson('-0'), new RawJson('1E2'), new RawJson('0.0000000000000000000000001'),
  2 ** 31, 2 ** 53 + 2, -(2 ** 63), Number.MAX_VALUE, Number.MIN_VALUE, -Number.MAX_VALUE, 0.1 + 0.2,
];

/** Values of the wrong shape for almost any field. */
function wild(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom<unknown>(null, true, false, 0, -1, '', [], {}, [null], { '': null }, '1', 'true'),
    fc.jsonValue({ maxDepth: 3 }),
    fc.constantFrom(...HUGE_NUMBERS),
    fc.integer({ min: 20, max: 3000 }).chain((n) => fc.constantFrom(new RawJson(`${'['.repeat(n)}1${']'.repeat(n)}`), new RawJson(`${'{"a":'.repeat(n)}1${'}'.repeat(n)}`))),
  );
}

const typesOf = (s: Schema): string[] => (Array.isArray(s.type) ? s.type : s.type === undefined ? [] : [s.type]);

function mergeAll(schemas: Schema[]): Schema {
  const out: Schema = {};
  for (const s of schemas) {
    Object.assign(out, { ...s, properties: { ...out.properties, ...s.properties }, required: [...(out.required ?? []), ...(s.required ?? [])] });
  }
  return out;
}

function bounds(s: Schema, integer: boolean): { min: number; max: number } {
  const ex = (v: number | boolean | undefined, base: number | undefined, step: number): number | undefined =>
    typeof v === 'number' ? v + step : v === true && base !== undefined ? base + step : base;
  const step = integer ? 1 : 1e-9;
  const min = ex(s.exclusiveMinimum, s.minimum, step) ?? -1e6;
  const max = ex(s.exclusiveMaximum, s.maximum, -step) ?? 1e6;
  return integer ? { min: Math.ceil(min), max: Math.floor(max) } : { min, max };
}

function validString(s: Schema, ctx: SchemaContext, hint: string | undefined): fc.Arbitrary<string> {
  const min = s.minLength ?? 0;
  const max = s.maxLength ?? min + 40;
  const fits = (v: string): boolean => [...v].length >= min && [...v].length <= max;
  let arb: fc.Arbitrary<string>;
  if (s.format === 'uuid') arb = fc.uuid();
  else if (s.format === 'email') arb = fc.emailAddress({ size: 'xsmall' }).filter(fits);
  else if (s.format === 'date-time') arb = fc.date({ min: new Date('1990-01-01'), max: new Date('2035-12-31'), noInvalidDate: true }).map((d) => d.toISOString());
  else if (s.format === 'date') arb = fc.date({ min: new Date('1990-01-01'), max: new Date('2035-12-31'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10));
  else if (s.pattern !== undefined) arb = fc.stringMatching(new RegExp(s.pattern), { size: 'small' }).filter(fits);
  else arb = fc.string({ minLength: min, maxLength: Math.min(max, min + 40), unit: 'grapheme' }).filter(fits);
  const known = ctx.known?.(s, hint);
  return known === undefined ? arb : fc.oneof({ weight: 3, arbitrary: fc.tuple(known, arb).map(([k, fallback]) => k ?? fallback) }, { weight: 1, arbitrary: arb });
}

/** Values that satisfy the schema (up to the rules it cannot express). */
export function validValue(schema: Schema, ctx: SchemaContext, hint?: string, depth = 0): fc.Arbitrary<unknown> {
  const s = resolveSchema(ctx.doc, schema);
  if (depth > 8) return fc.constant(null);
  if ('const' in s) return fc.constant(s.const);
  if (s.enum !== undefined && s.enum.length > 0) return fc.constantFrom(...s.enum);
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives !== undefined) return fc.oneof(...alternatives.map((a) => validValue(a, ctx, hint, depth + 1)));
  if (s.allOf !== undefined) return validValue(mergeAll(s.allOf), ctx, hint, depth + 1);
  const types = typesOf(s);
  if (types.length > 1) return fc.oneof(...types.map((t) => validValue({ ...s, type: t }, ctx, hint, depth + 1)));
  switch (types[0] ?? (s.properties !== undefined ? 'object' : undefined)) {
    case 'string':
      return validString(s, ctx, hint);
    case 'integer': {
      const { min, max } = bounds(s, true);
      return fc.integer({ min, max });
    }
    case 'number': {
      const { min, max } = bounds(s, false);
      return fc.oneof(fc.integer({ min: Math.ceil(min), max: Math.floor(max) }), fc.double({ min, max, noNaN: true, noDefaultInfinity: true }));
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const minLength = s.minItems ?? 0;
      const item = s.items === undefined ? fc.jsonValue({ maxDepth: 1 }) : validValue(s.items, ctx, hint, depth + 1);
      return fc.array(item, { minLength, maxLength: Math.min(s.maxItems ?? minLength + 4, minLength + 4) });
    }
    case 'object':
      return validObject(s, ctx, depth);
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

function validObject(s: Schema, ctx: SchemaContext, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const props = s.properties ?? {};
  const keys = Object.keys(props);
  if (keys.length === 0) {
    if (s.additionalProperties === false) return fc.constant({});
    const value = typeof s.additionalProperties === 'object' ? validValue(s.additionalProperties, ctx, undefined, depth + 1) : fc.jsonValue({ maxDepth: 1 });
    return fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), value, { maxKeys: 3 });
  }
  const model = Object.fromEntries(keys.map((k) => [k, validValue(props[k]!, ctx, k, depth + 1)]));
  const required = (s.required ?? []).filter((k) => k in props);
  const arb = fc.record(model, { requiredKeys: required }) as fc.Arbitrary<Record<string, unknown>>;
  const minProps = s.minProperties ?? 0;
  // Top up to minProperties with optional fields rather than filter most draws away.
  return minProps === 0
    ? arb
    : fc.tuple(arb, fc.shuffledSubarray(keys, { minLength: minProps, maxLength: minProps }), fc.record(model, { requiredKeys: keys })).map(([o, extra, full]) => {
        const out = { ...o };
        for (const k of extra) if (Object.keys(out).length < minProps && !(k in out)) out[k] = (full as Record<string, unknown>)[k];
        return out;
      });
}

function stringMutant(s: Schema): fc.Arbitrary<unknown> {
  const boundary: string[] = [];
  if (s.maxLength !== undefined) boundary.push('a'.repeat(s.maxLength), 'a'.repeat(s.maxLength + 1), '\u{1F436}'.repeat(s.maxLength), 'é'.repeat(s.maxLength + 1));
  if ((s.minLength ?? 0) > 0) boundary.push('a'.repeat(s.minLength! - 1));
  const formatBreakers: Record<string, string[]> = {
    uuid: ['not-a-uuid', '00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', '{0190a9a0-0000-7000-8000-000000000000}', '0190a9a0000070008000000000000000', '0190a9a0-0000-7000-8000-00000000000g'],
    'date-time': ['2026-02-30T10:00:00Z', '2026-01-01T25:00:00Z', '0000-01-01T00:00:00Z', '+275760-09-13T00:00:00Z', '9999-12-31T23:59:59.999999999Z', '2026-01-01T10:00:00', '1970-01-01T00:00:00+14:00', '2026-01-01T10:00:60Z'],
    date: ['2026-02-29', '2024-02-29', '0000-00-00', '99999-01-01', '1900-02-29', '0001-01-01', '2026-13-01'],
    email: ['a@', '@b.c', 'a@b', `${'a'.repeat(64)}@${'b'.repeat(190)}.org`, 'a"b@c.d', 'é@é.é'],
  };
  return fc.oneof(
    fc.constantFrom(...NASTY_STRINGS),
    ...(boundary.length > 0 ? [fc.constantFrom(...boundary)] : []),
    ...(s.format !== undefined && formatBreakers[s.format] !== undefined ? [fc.constantFrom(...formatBreakers[s.format]!)] : []),
    fc.string({ maxLength: 24, unit: codeUnit }),
    fc.string({ maxLength: 24, unit: 'binary' }),
  );
}

function numberMutant(s: Schema, integer: boolean): fc.Arbitrary<unknown> {
  const edges: unknown[] = [...HUGE_NUMBERS];
  if (s.minimum !== undefined) edges.push(s.minimum, s.minimum - 1, s.minimum - 1e-9);
  if (s.maximum !== undefined) edges.push(s.maximum, s.maximum + 1, s.maximum + 1e-9);
  if (integer) edges.push(0.5, 1.0000001, new RawJson('1.0'));
  return fc.oneof(fc.constantFrom(...edges), fc.double(), fc.constantFrom<unknown>('5', '', true, null));
}

function objectMutant(s: Schema, ctx: SchemaContext, depth: number): fc.Arbitrary<unknown> {
  const props = s.properties ?? {};
  const keys = Object.keys(props);
  const valid = validObject(s, ctx, depth);
  const required = (s.required ?? []).filter((k) => k in props);
  const strangeKeys = ['__proto__', 'constructor', 'prototype', 'extra', '', 'a\u0000b', '\uD800', 'id', 'clinicId', 'version', 'createdAt', 'toString'];
  const options: fc.Arbitrary<unknown>[] = [
    // An unknown field (own property, also for __proto__: a computed key defines, never sets).
    fc.tuple(valid, fc.constantFrom(...strangeKeys), wild()).map(([o, k, v]) => ({ ...o, [k]: v })),
    valid.map((o) => [o]),
  ];
  if (keys.length > 0) {
    options.push(
      fc.constantFrom(...keys).chain((k) => fc.tuple(valid, mutantValue(props[k]!, ctx, k, depth + 1)).map(([o, v]) => ({ ...o, [k]: v }))),
      fc.constantFrom(...keys).chain((k) => fc.tuple(valid, wild()).map(([o, v]) => ({ ...o, [k]: v }))),
      fc.constantFrom(...keys).chain((k) => valid.map((o) => ({ ...o, [k]: null }))),
    );
  }
  if (required.length > 0) {
    options.push(
      fc.constantFrom(...required).chain((k) =>
        valid.map((o) => {
          const { [k]: _dropped, ...rest } = o;
          return rest;
        }),
      ),
    );
  }
  return fc.oneof(...options);
}

/** Values that break the schema in one place (or, now and then, in every way at once). */
export function mutantValue(schema: Schema, ctx: SchemaContext, hint?: string, depth = 0): fc.Arbitrary<unknown> {
  const s = resolveSchema(ctx.doc, schema);
  if (depth > 8) return wild();
  const alternatives = s.anyOf ?? s.oneOf;
  let specific: fc.Arbitrary<unknown>;
  if (s.enum !== undefined || 'const' in s) {
    specific = fc.constantFrom<unknown>('', 'DOG', 'unknown', ' dog', 'dog\u0000', 0, null, ...(s.enum ?? []).map((e) => [e]));
  } else if (alternatives !== undefined) {
    specific = fc.oneof(...alternatives.map((a) => mutantValue(a, ctx, hint, depth + 1)));
  } else {
    switch (typesOf(s)[0] ?? (s.properties !== undefined ? 'object' : undefined)) {
      case 'string':
        specific = stringMutant(s);
        break;
      case 'integer':
        specific = numberMutant(s, true);
        break;
      case 'number':
        specific = numberMutant(s, false);
        break;
      case 'boolean':
        specific = fc.constantFrom<unknown>('true', 0, 1, 'yes', null, [true]);
        break;
      case 'array': {
        const item = s.items === undefined ? wild() : validValue(s.items, ctx, hint, depth + 1);
        const bad = s.items === undefined ? wild() : mutantValue(s.items, ctx, hint, depth + 1);
        specific = fc.oneof(
          fc.array(bad, { minLength: 1, maxLength: 3 }),
          fc.array(item, { minLength: (s.maxItems ?? 200) + 1, maxLength: (s.maxItems ?? 200) + 1 }),
          item.map((v) => v),
          fc.constantFrom<unknown>({}, '', null, [[]]),
        );
        break;
      }
      case 'object':
        specific = objectMutant(s, ctx, depth);
        break;
      default:
        specific = wild();
    }
  }
  return fc.oneof({ weight: 5, arbitrary: specific }, { weight: 1, arbitrary: wild() });
}

/** Body-level mutants: not objects at all. */
export const wildBody: fc.Arbitrary<unknown> = wild();
