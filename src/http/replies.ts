/** Shared request/response plumbing for the routes: idempotency keys, ETags, created responses. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { canonicalJson } from '../clinical/canonical-json.js';
import { ValidationError } from '../clinical/errors.js';
import { requestHash, type Idempotency, type Replayable } from '../clinical/operation.js';
import { etagOf } from '../clinical/records/versioning.js';

const KEY = /^[\x21-\x7e]{1,255}$/;

/** The Idempotency-Key of a POST, bound to a digest of the request it came with. */
export function idempotencyOf(request: FastifyRequest, rawBody?: Buffer): Idempotency | undefined {
  const header = request.headers['idempotency-key'];
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !KEY.test(header)) {
    throw new ValidationError('Idempotency-Key must be 1 to 255 visible ASCII characters', { fields: ['Idempotency-Key'] });
  }
  const body = rawBody ?? canonicalJson(request.body ?? null);
  return { key: header, requestHash: requestHash(request.method, request.url, body) };
}

export function sendStored(reply: FastifyReply, res: Replayable): FastifyReply {
  if (res.etag !== undefined) reply.header('etag', res.etag);
  if (res.location !== undefined) reply.header('location', res.location);
  if (res.replayed) reply.header('idempotent-replayed', 'true');
  // A body serialised once by the service goes out as that text, not through the serialiser again.
  if (res.bodyJson !== undefined) return reply.code(res.status).type('application/json; charset=utf-8').send(res.bodyJson);
  return reply.code(res.status).send(res.body);
}

export function withEtag<T extends { version: number }>(reply: FastifyReply, body: T): T {
  reply.header('etag', etagOf(body.version));
  return body;
}

export function ifMatchOf(request: FastifyRequest): string | undefined {
  const value = request.headers['if-match'];
  return Array.isArray(value) ? value.join(', ') : value;
}
