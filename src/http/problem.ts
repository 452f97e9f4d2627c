/** RFC 9457 problem+json for every error; no stack trace ever reaches a client. */
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
      reply.header('retry-after', '5');
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
