/** RFC 9457 problem+json for every error; no stack trace ever reaches a client. */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, OverloadedError, StorageUnavailableError } from '../clinical/errors.js';

export const PROBLEM_BASE = 'urn:agenticpet:problem:';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  requestId?: string;
  [extra: string]: unknown;
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, status: number, slug: string, title: string, detail?: string, extra: Record<string, unknown> = {}): FastifyReply {
  const body: ProblemBody = { type: PROBLEM_BASE + slug, title, status, ...(detail === undefined ? {} : { detail }), instance: request.url, requestId: request.id, ...extra };
  return reply.code(status).type('application/problem+json; charset=utf-8').send(JSON.stringify(body));
}

interface AjvIssue {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function describeValidation(err: FastifyError): { detail: string; errors: Array<{ field: string; message: string }> } {
  const part = (err as { validationContext?: string }).validationContext ?? 'body';
  const errors = ((err.validation ?? []) as AjvIssue[]).map((issue) => {
    const extraField = issue.params?.additionalProperty;
    const field = `${part}${issue.instancePath ?? ''}${typeof extraField === 'string' ? `/${extraField}` : ''}`;
    const message = typeof extraField === 'string' ? 'is not a known field' : (issue.message ?? 'is invalid');
    return { field, message };
  });
  const first = errors[0];
  return { detail: first === undefined ? err.message : `${first.field} ${first.message}`, errors };
}

/** The problem body for an error thrown after an event stream began (sent as an SSE event). */
export function problemBody(request: FastifyRequest, err: unknown): ProblemBody {
  if (err instanceof DomainError) return { type: PROBLEM_BASE + err.type, title: err.title, status: err.status, detail: err.message, requestId: request.id };
  if (err instanceof StorageUnavailableError) return { type: `${PROBLEM_BASE}storage-unavailable`, title: 'Service Unavailable', status: 503, detail: 'Storage is unreachable; nothing was written.', requestId: request.id };
  if (err instanceof OverloadedError) return { type: `${PROBLEM_BASE}overloaded`, title: 'Service Unavailable', status: 503, detail: err.message, requestId: request.id };
  return { type: `${PROBLEM_BASE}internal`, title: 'Internal Server Error', status: 500, requestId: request.id };
}

const FASTIFY_CLIENT_ERRORS: Record<string, [number, string, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'payload-too-large', 'Payload Too Large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported-media-type', 'Unsupported Media Type'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'malformed-request', 'Bad Request'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'malformed-json', 'Malformed JSON'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'malformed-json', 'Malformed JSON'],
};

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err.validation) {
      const { detail, errors } = describeValidation(err);
      return sendProblem(reply, request, 400, 'validation', 'Invalid request', detail, { errors });
    }
    if (err instanceof DomainError) {
      return sendProblem(reply, request, err.status, err.type, err.title, err.message, err.extra);
    }
    if (err instanceof StorageUnavailableError) {
      request.log.warn({ err: { message: err.message, cause: (err.cause as Error | undefined)?.message } }, 'storage unavailable');
      reply.header('retry-after', String(err.retryAfterSeconds));
      return sendProblem(reply, request, 503, 'storage-unavailable', 'Service Unavailable', 'Storage is unreachable; nothing was written. Retry later.');
    }
    if (err instanceof OverloadedError) {
      reply.header('retry-after', String(err.retryAfterSeconds));
      return sendProblem(reply, request, 503, 'overloaded', 'Service Unavailable', err.message);
    }
    const known = err.code === undefined ? undefined : FASTIFY_CLIENT_ERRORS[err.code];
    if (known !== undefined) return sendProblem(reply, request, known[0], known[1], known[2], err.message);
    if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message))) {
      return sendProblem(reply, request, 400, 'malformed-json', 'Malformed JSON', 'The body is not valid JSON');
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return sendProblem(reply, request, err.statusCode, 'bad-request', 'Bad Request', err.message);
    }
    request.log.error({ err }, 'unhandled error');
    return sendProblem(reply, request, 500, 'internal', 'Internal Server Error', 'An unexpected error occurred; it has been logged with this request id.');
  });

  app.setNotFoundHandler((request, reply) => sendProblem(reply, request, 404, 'not-found', 'Not Found', `No route ${request.method} ${request.url.split('?')[0]}`));
}

/**
 * Fastify's frameworkErrors: what its router refuses before any route, hook or error handler
 * runs (a path that is not valid percent-encoded UTF-8, a path parameter past maxParamLength).
 * Fastify's own answer is plain JSON; this makes it a problem like every other.
 */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id);
  if (err.code === 'FST_ERR_BAD_URL') {
    sendProblem(reply, request, 400, 'malformed-request', 'Bad Request', 'The path is not valid percent-encoded UTF-8');
  } else if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    sendProblem(reply, request, 414, 'uri-too-long', 'URI Too Long', 'A path segment is longer than any identifier');
  } else {
    request.log.error({ err }, 'framework error');
    sendProblem(reply, request, 500, 'internal', 'Internal Server Error', 'An unexpected error occurred; it has been logged with this request id.');
  }
}

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request-timeout', 'The request was not received in time'],
  HPE_HEADER_OVERFLOW: [431, 'headers-too-large', 'The request headers are too large'],
};

/**
 * Fastify's clientErrorHandler: the connection-level errors Node's HTTP parser raises before
 * there is a request (a body or headers that took too long, oversized headers, bytes that are
 * not HTTP). Written on the socket as problem+json, which is then closed, as Node itself does.
 */
export function clientErrorHandler(this: FastifyInstance, err: Error & { code?: string }, socket: Duplex): void {
  // A reset connection has nobody left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, slug, detail] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'malformed-request', 'The request is not valid HTTP/1.1'];
  const title = http.STATUS_CODES[status]!;
  const body = JSON.stringify({ type: PROBLEM_BASE + slug, title, status, detail });
  this.log.debug({ err: { message: err.message, code: err.code } }, 'client error');
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(err);
}
