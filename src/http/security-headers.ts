/**
 * Security headers on every response, and CORS for the origins on the allow-list.
 *
 * Headers: helmet's, built once at start and applied by one hook. (@fastify/helmet calls
 * helmet(options) again inside each request, rebuilding every middleware and the CSP string,
 * from two async hooks: 2-8 µs of CPU per request against 0.2-0.4 µs for the prebuilt
 * middleware, `npx tsx bench/rate-limit-cost.ts` on the 2-core host.) The API answers JSON, so its CSP allows nothing and no one may frame it; the
 * Swagger UI under /docs gets a CSP of its own through @fastify/swagger-ui's staticCSP (set in
 * its onSend hook, after this one), and the /ops page sets its own.
 *
 * CORS (@fastify/cors) only when AGENTICPET_CORS_ORIGINS lists origins; with none, no CORS
 * header is ever sent and browsers keep other origins out. Credentials stay off: the API is
 * called with a bearer key, never a cookie.
 */
import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import helmet from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The API's responses are data, never a document: nothing may load from them or frame them. */
const API_CSP = {
  useDefaults: false,
  directives: { defaultSrc: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"], frameAncestors: ["'none'"] },
};

/**
 * Swagger UI: its own scripts, styles and the spec from this origin (no inline script, no CDN;
 * the validator badge is off, so no validator.swagger.io). Like @fastify/swagger-ui's default
 * staticCSP but not frameable and without `https:` for styles and fonts; inline styles are
 * allowed because the UI applies some as it renders (Chromium reports the violation without
 * them; test/security-headers.test.ts drives the page). Scripts stay same-origin only.
 */
export const DOCS_CSP =
  "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'";

export interface CorsOptions {
  /** Origins (scheme://host[:port]) allowed to call the API from a browser; empty: CORS off. */
  origins: readonly string[];
}

export const CORS_ALLOWED_HEADERS = ['authorization', 'content-type', 'idempotency-key', 'if-match', 'x-request-id'];
export const CORS_EXPOSED_HEADERS = ['etag', 'location', 'x-request-id', 'ratelimit', 'ratelimit-policy', 'retry-after'];

export async function registerSecurityHeaders(app: FastifyInstance, opts: CorsOptions): Promise<void> {
  const apply = helmet({
    contentSecurityPolicy: API_CSP,
    // Two years, subdomains included (the HSTS preload list's minimum); no preload: that is a
    // decision for the domain's owner, hard to undo.
    strictTransportSecurity: { maxAge: 63_072_000, includeSubDomains: true },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
  });
  app.addHook('onRequest', (request, reply, done) => {
    // helmet 8 throws rather than passing an error on, so done is only ever called without one.
    apply(request.raw as IncomingMessage, reply.raw as ServerResponse, done as (err?: unknown) => void);
  });
  if (opts.origins.length === 0) return;
  const allowed = new Set(opts.origins);
  await app.register(cors, {
    // A function rather than the list: for an origin it refuses, @fastify/cors then sends no
    // CORS header at all (with a list it still sends the expose and preflight headers) and a
    // preflight from it falls through to 404.
    origin: (origin, cb) => cb(null, origin !== undefined && allowed.has(origin)),
    credentials: false,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: CORS_ALLOWED_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    // Browsers cap it (Chromium at 2 h); 10 min keeps preflights rare without pinning a policy long.
    maxAge: 600,
  });
}
