/**
 * PostgreSQL text and jsonb cannot hold the NUL character (U+0000): a request carrying one in
 * any string would fail at the database as a 500. Such requests are refused up front with 400.
 */
import type { FastifyBodyParser, FastifyRequest } from 'fastify';
import { ValidationError } from '../clinical/errors.js';

/** The location (e.g. body.owner.name) of the first string or key holding U+0000, or null. */
export function nulCharacterAt(value: unknown, root: string): string | null {
  // Iterative, so a deeply nested body cannot exhaust the stack.
  const stack: [unknown, string][] = [[value, root]];
  while (stack.length > 0) {
    const [node, at] = stack.pop()!;
    if (typeof node === 'string') {
      if (node.includes('\u0000')) return at;
    } else if (node !== null && typeof node === 'object' && !Buffer.isBuffer(node)) {
      for (const [key, child] of Object.entries(node)) {
        if (key.includes('\u0000')) return at;
        stack.push([child, Array.isArray(node) ? `${at}[${key}]` : `${at}.${key}`]);
      }
    }
  }
  return null;
}

/**
 * A JSON body parser that refuses U+0000 with 400. JSON can only carry it escaped, so a body
 * whose text has no "\\u0000" is passed on unwalked: the diagnosis path pays one indexOf.
 */
export function refusingNul(parse: FastifyBodyParser<string>): FastifyBodyParser<string> {
  return (request, body, done) =>
    parse(request, body, (err, value) => {
      if (err !== null || !body.includes('\\u0000')) return done(err, value);
      const at = nulCharacterAt(value, 'body');
      if (at === null) return done(null, value);
      done(new ValidationError(`${at} contains the NUL character (U+0000), which cannot be stored`), undefined);
    });
}

/** preValidation hook: 400 when the query string or path parameters hold U+0000 (bodies: refusingNul). */
export async function refuseNulCharacters(request: FastifyRequest): Promise<void> {
  const at = nulCharacterAt(request.params, 'params') ?? nulCharacterAt(request.query, 'querystring');
  if (at !== null) throw new ValidationError(`${at} contains the NUL character (U+0000), which cannot be stored`);
}
