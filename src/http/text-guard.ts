/**
 * Text PostgreSQL cannot store: the NUL character (U+0000) in text and jsonb, and a lone UTF-16
 * surrogate (U+D800..U+DFFF without its pair) in jsonb, where it fails as "Unicode low surrogate
 * must follow a high surrogate". A request carrying either in any string or key would fail at
 * the database as a 500 (found by the OpenAPI fuzzer, both backends); it is refused up front
 * with 400 instead.
 */
import type { FastifyBodyParser, FastifyRequest } from 'fastify';
import { ValidationError } from '../clinical/errors.js';

/** With the u flag a surrogate pair is one code point, so only an unpaired surrogate matches. */
const LONE_SURROGATE = /\p{Cs}/u;

const flawOf = (text: string): string | null =>
  text.includes('\u0000') ? 'the NUL character (U+0000)' : LONE_SURROGATE.test(text) ? 'a lone UTF-16 surrogate (U+D800 to U+DFFF unpaired)' : null;

/** Where (e.g. body.owner.name) the first string or key that cannot be stored is, and why; or null. */
export function unstorableTextAt(value: unknown, root: string): { at: string; flaw: string } | null {
  // Iterative, so a deeply nested body cannot exhaust the stack.
  const stack: [unknown, string][] = [[value, root]];
  while (stack.length > 0) {
    const [node, at] = stack.pop()!;
    if (typeof node === 'string') {
      const flaw = flawOf(node);
      if (flaw !== null) return { at, flaw };
    } else if (node !== null && typeof node === 'object' && !Buffer.isBuffer(node)) {
      for (const [key, child] of Object.entries(node)) {
        const flaw = flawOf(key);
        if (flaw !== null) return { at, flaw };
        stack.push([child, Array.isArray(node) ? `${at}[${key}]` : `${at}.${key}`]);
      }
    }
  }
  return null;
}

/**
 * JSON text can only carry either flaw escaped (raw bytes decode as UTF-8, which has no lone
 * surrogates and whose NUL byte JSON forbids): a body with no "\u0000" or "\uD8.." to "\uDF.."
 * escape is passed on unwalked, so the diagnosis path pays one scan of its text.
 */
const SUSPECT_ESCAPE = /\\u(?:0000|[dD][89a-fA-F])/;

const refusal = (found: { at: string; flaw: string }): ValidationError => new ValidationError(`${found.at} contains ${found.flaw}, which cannot be stored`);

/** A JSON body parser that refuses text that cannot be stored with 400. */
export function refusingUnstorableText(parse: FastifyBodyParser<string>): FastifyBodyParser<string> {
  return (request, body, done) =>
    parse(request, body, (err, value) => {
      if (err !== null || !SUSPECT_ESCAPE.test(body)) return done(err, value);
      const found = unstorableTextAt(value, 'body');
      if (found === null) return done(null, value);
      done(refusal(found), undefined);
    });
}

/** preValidation hook: 400 when the query string or path parameters hold such text (bodies: refusingUnstorableText). */
export async function refuseUnstorableText(request: FastifyRequest): Promise<void> {
  const found = unstorableTextAt(request.params, 'params') ?? unstorableTextAt(request.query, 'querystring');
  if (found !== null) throw refusal(found);
}
