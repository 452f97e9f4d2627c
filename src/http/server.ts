/** The HTTP application: validation, OpenAPI, logging, auth and the routes. No SQL here. */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Context as TraceContext } from '@opentelemetry/api';
import { Ajv } from 'ajv';
import formatsPlugin from 'ajv-formats';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RawServerDefault } from 'fastify';
import type { Registry } from 'prom-client';
import type { AccessService } from '../clinical/access/access.js';
import type { ModelRegistryService } from '../clinical/models/registry.js';
import type { RateLimiter } from '../clinical/access/rate-limits.js';
import type { ConsultationsService } from '../clinical/diagnoses/consultations.js';
import type { DiagnosesService } from '../clinical/diagnoses/diagnoses.js';
import type { EncountersService } from '../clinical/records/encounters.js';
import type { MediaService } from '../clinical/records/media.js';
import type { Principal, RequestContext } from '../clinical/ports.js';
import type { RecordsService } from '../clinical/records/records.js';
import type { RequestMetrics } from '../observability/metrics.js';
import { endRequestTrace, enterRequestTrace, requestTraceId, startRequestTrace } from '../observability/tracing.js';
import { DependencyUnavailableError, OverloadedError } from '../clinical/errors.js';
import { storableDate, storableDateTime } from '../contract/formats.js';
import { Problem } from '../contract/schemas.js';
import { collectRoutes, documentPermission, requirePermissions, type RouteEntry } from './permissions.js';
import { clientErrorHandler, frameworkErrorHandler, registerProblemHandlers } from './problem.js';
import { refuseUnstorableText, refusingUnstorableText } from './text-guard.js';
import { enforcer } from './rate-limit.js';
import { DOCS_CSP, registerSecurityHeaders } from './security-headers.js';
import { LoopLag } from './backpressure.js';
import { registerAuditRoutes } from './routes/audit.js';
import { registerDiagnosisRoutes } from './routes/diagnoses.js';
import { registerEncounterRoutes } from './routes/encounters.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerKeyRoutes } from './routes/keys.js';
import { registerMediaRoutes } from './routes/media.js';
import { registerModelRoutes } from './routes/models.js';
import { registerOpsPage, registerOpsRoutes } from './routes/ops.js';
import { registerOwnerRoutes } from './routes/owners.js';
import { registerPatientRoutes } from './routes/patients.js';

export interface Services {
  records: RecordsService;
  diagnoses: DiagnosesService;
  consultations: ConsultationsService;
  sessionStoreKind: string;
  /** Prometheus registry of the process's metrics. */
  metrics: Registry;
  /** The metrics to serve: the whole host's (every worker, merged) under `serve --workers N`. */
  metricsView: () => Promise<Registry>;
  /** Where each response's latency is recorded (by route pattern and status). */
  requestMetrics: RequestMetrics;
  encounters: EncountersService;
  media: MediaService;
  access: AccessService;
  /** The image-model registry (shared by every clinic). */
  models: ModelRegistryService;
  /** The request budgets per API key and per clinic, checked after authentication. */
  rateLimiter: RateLimiter;
  ping(): Promise<void>;
  storageKind: string;
}

/** How long a closing server keeps serving connections it accepted before it stopped listening. */
const CLOSE_GRACE_MS = 500;

export interface HttpOptions {
  logger: FastifyBaseLogger;
  bodyMaxBytes: number;
  mediaMaxBytes: number;
  /** Time a client has to send a whole request, ms (Node's requestTimeout; Fastify's default 0 disables it). */
  requestTimeoutMs?: number;
  version: string;
  /** Event-loop delay (ms) above which /v1 requests are refused with 503 (0: never). */
  maxEventLoopDelayMs?: number;
  /** Told of each request refused because the process is saturated. */
  onOverload?: (reason: string) => void;
  /** Browser origins allowed to call the API (CORS); empty or absent: no CORS headers. */
  corsOrigins?: readonly string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    ctx: RequestContext;
    /** The request's server span and its parent, when tracing is on; null when off. */
    traceContext: TraceContext | null;
  }
  interface FastifyInstance {
    /** Resolves once no request is in flight (or after timeoutMs). */
    drained(timeoutMs: number): Promise<void>;
    /** Every route with the permission it declares (null: public); docs/permissions.md is made from it. */
    routeTable: readonly RouteEntry[];
  }
}

export type App = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

// ajv-formats is CommonJS with a default export; under NodeNext its default import is the module.
const addFormats = ((formatsPlugin as unknown as { default?: typeof formatsPlugin }).default ?? formatsPlugin) as unknown as (ajv: Ajv) => Ajv;

/** The authenticated API's prefix: every route under it declares a permission. */
export const V1 = '/v1';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** pino's isLevelEnabled, which Fastify's logger type does not declare. */
const infoEnabled = (log: FastifyBaseLogger): boolean => (log as unknown as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info') ?? true;

function ajvFor(coerce: boolean): Ajv {
  // Bodies are validated as sent (a string is not a number); query strings and path params
  // arrive as text, so those are coerced. Unknown fields are rejected, never stripped.
  const ajv = new Ajv({ coerceTypes: coerce ? 'array' : false, useDefaults: true, removeAdditional: false, allErrors: false, strict: false });
  addFormats(ajv);
  // Dates the databases cannot store faithfully are invalid input, not a database error (formats.ts).
  ajv.addFormat('date-time', { type: 'string', validate: storableDateTime });
  ajv.addFormat('date', { type: 'string', validate: storableDate });
  return ajv;
}

export async function buildHttpApp(services: Services, opts: HttpOptions): Promise<App> {
  const app = Fastify({
    loggerInstance: opts.logger,
    // Fastify's own two lines per request are replaced by the single line logged onResponse.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyMaxBytes,
    // A client that trickles its headers or body (slowloris) is answered 408 and cut off. Given
    // to createServer too: Fastify sets requestTimeout only after creating the server, which
    // leaves Node's headersTimeout at 60 s, and a stalled body is then cut off only after that.
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    // Node checks the deadlines every connectionsCheckingInterval (30 s by default, which would let
    // a slow client hold on for up to twice the timeout): check four times per timeout instead.
    http: { requestTimeout: opts.requestTimeoutMs ?? 30_000, connectionsCheckingInterval: Math.max(50, Math.round((opts.requestTimeoutMs ?? 30_000) / 4)) },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // A request on a connection accepted before close began is served, not refused: a rolling
    // restart then loses nothing (idle keep-alive connections are closed by close() itself).
    return503OnClosing: false,
    // What the router and Node's HTTP parser refuse before any route runs is problem+json too.
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Before any route: the table must see them all, the public ones included.
  app.decorate('routeTable', collectRoutes(app, V1));

  const bodyAjv = ajvFor(false);
  const textAjv = ajvFor(true);
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema));

  // PostgreSQL cannot store U+0000 or a lone surrogate: JSON bodies holding one are refused with 400 at parse time.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, refusingUnstorableText(app.getDefaultJsonParser('error', 'error')));
  app.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, refusingUnstorableText(app.getDefaultJsonParser('error', 'error')));

  registerProblemHandlers(app);
  app.addSchema(Problem);
  await registerSecurityHeaders(app, { origins: opts.corsOrigins ?? [] });

  // Backpressure: while the event loop keeps lagging past the limit, API requests are refused
  // at once (503 + Retry-After, in the /v1 hook below) rather than queued behind the backlog.
  // Health, metrics, docs and the ops page still answer, so a load balancer does not take a
  // busy task for a dead one.
  const lag = new LoopLag(opts.maxEventLoopDelayMs ?? 0);
  app.addHook('onReady', async () => void lag.start());
  app.addHook('onClose', async () => lag.stop());
  app.addHook('onError', async (_request, _reply, err) => {
    if (err instanceof OverloadedError) opts.onOverload?.(err.reason);
  });
  const saturated = (): number | null => lag.saturated();

  // Tracing: the server span starts first, and the rest of the request (later hooks, the body,
  // the handler) runs in its context, so agent, database and Redis spans become its children.
  // A hook cannot wrap what follows it except through its done callback, hence callback hooks.
  app.decorateRequest('traceContext', null);
  app.addHook('onRequest', (request, _reply, done) => {
    const traceContext = startRequestTrace(request.method, request.routeOptions.url ?? 'unmatched', request.headers);
    if (traceContext === null) return done();
    request.traceContext = traceContext;
    enterRequestTrace(traceContext, done);
  });
  // The body arrives in stream events, which need not run in the request's context: enter it
  // again once the body is parsed, before validation and the handler.
  app.addHook('preValidation', (request, _reply, done) => {
    if (request.traceContext === null) return done();
    enterRequestTrace(request.traceContext, done);
  });

  /** The responses not yet finished: drained() waits for them, preClose marks them. */
  const inFlight = new Set<ServerResponse>();
  let idle: (() => void) | undefined;
  // Closing without losing a request:
  // - From the start of close() every answer says Connection: close (answers under way are
  //   marked here, later requests in onRequest). A keep-alive connection busy at that moment
  //   would otherwise stay open for its client (a load balancer, a pool) to reuse until the
  //   process exits under it, losing the request sent on it then.
  // - The server stops accepting first and closes idle connections only CLOSE_GRACE_MS later.
  //   Node counts a connection as idle until its request has been read, so closing them at once
  //   (what http.Server.close() does) would also cut connections accepted a moment earlier,
  //   their request already on its way (in a cluster, handed over by the primary just before);
  //   by the end of the grace those requests are being served, and answered with Connection: close.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
    // net.Server's close, not http.Server's: stop listening, leave the open connections be.
    // Fastify's own server.close() then finds it closed (ERR_SERVER_NOT_RUNNING, which it ignores).
    if (app.server.listening) {
      net.Server.prototype.close.call(app.server);
      await new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS));
    }
  });
  app.addHook('onRequest', async (request, reply) => {
    inFlight.add(reply.raw);
    if (closing) reply.header('connection', 'close');
    // 'close' fires when the response is done or the client went away (onResponse does not
    // run for an aborted request, which would hold shutdown until the drain timeout).
    reply.raw.once('close', () => {
      inFlight.delete(reply.raw);
      if (inFlight.size === 0) idle?.();
      if (request.traceContext !== null && !reply.raw.writableFinished) endRequestTrace(request.traceContext, undefined);
    });
    reply.header('x-request-id', request.id);
  });
  // One line per request; no bodies, no headers, so no owner PII or clinical notes.
  // The route is the pattern (/v1/patients/:id), never the URL: ids would explode the metric.
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const elapsedMs = reply.elapsedTime;
    services.requestMetrics.observeRequest(request.method, route, reply.statusCode, elapsedMs / 1000);
    if (request.traceContext !== null) endRequestTrace(request.traceContext, reply.statusCode);
    // Below the info level the line is not written, so neither is it built (nor a trace id drawn).
    if (!infoEnabled(request.log)) return;
    request.log.info(
      {
        clinic: request.ctx?.principal.clinicId,
        method: request.method,
        route,
        status: reply.statusCode,
        latencyMs: Math.round(elapsedMs * 100) / 100,
        // The span's trace id; with tracing off, the caller's (traceparent) or a fresh one.
        traceId: requestTraceId(request.traceContext, request.headers.traceparent),
      },
      'request',
    );
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'AgenticPet API',
        version: opts.version,
        description:
          'Clinical records with versions and a tamper-evident audit trail for veterinary clinics. Errors are RFC 9457 problem+json. ' +
          "Every /v1 request counts against its API key's and its clinic's budgets per minute: the RateLimit-Policy and RateLimit headers (draft-ietf-httpapi-ratelimit-headers-10) say how much is left, and a spent budget is answered 429 with Retry-After.",
      },
      components: {
        securitySchemes: {
          apiKey: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An API key (Authorization: Bearer apk_...), or, when OIDC is configured, an OIDC token from the identity provider (Authorization: Bearer <JWT>, e.g. a Cognito ID or access token): its clinic and role come from its claims.',
          },
        },
      },
      security: [{ apiKey: [] }],
    },
    transform: documentPermission,
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: DOCS_CSP });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  registerHealthRoutes(app, services);
  registerOpsPage(app);
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const registry = await services.metricsView();
    return reply.type(registry.contentType).send(await registry.metrics());
  });

  // Per key and per clinic, after authentication: a 401 spends no one's budget. Health,
  // /metrics, the docs and the ops page (not its data, /v1/ops/metrics) are outside /v1 and
  // so never limited.
  const rateLimit = enforcer(services.rateLimiter);
  await app.register(async (v1) => {
    v1.decorateRequest('ctx', null as unknown as RequestContext);
    // Each route's own permission check runs after the authentication hook below.
    requirePermissions(v1);
    v1.addHook('preValidation', refuseUnstorableText);
    v1.addHook('onRequest', async (request, reply) => {
      // The ops dashboard's data must answer exactly when the service is saturated.
      const delay = request.routeOptions.url === '/v1/ops/metrics' ? null : saturated();
      if (delay !== null) throw new OverloadedError(`The service is saturated (event-loop delay ${Math.round(delay)} ms); retry shortly`, 'event_loop_delay');
      let principal: Principal;
      try {
        principal = await services.access.authenticate(request.headers.authorization);
      } catch (err) {
        // The identity provider's key set was unreachable: the token may well be good.
        if (err instanceof DependencyUnavailableError) reply.header('retry-after', '5');
        else reply.header('www-authenticate', 'Bearer');
        throw err;
      }
      request.ctx = { principal, requestId: request.id, sourceIp: request.ip ?? null };
      if (rateLimit !== null) await rateLimit(principal, reply);
    });
    registerOwnerRoutes(v1, services);
    registerPatientRoutes(v1, services);
    registerEncounterRoutes(v1, services);
    await registerMediaRoutes(v1, services, opts.mediaMaxBytes);
    registerKeyRoutes(v1, services);
    registerAuditRoutes(v1, services);
    registerModelRoutes(v1, services);
    registerDiagnosisRoutes(v1, services);
    registerOpsRoutes(v1, services);
  }, { prefix: V1 });

  // Fastify's close() stops accepting and closes idle keep-alive sockets, but may resolve
  // while handlers are still running; storage must stay open until they have finished.
  app.decorate('drained', (timeoutMs: number) =>
    inFlight.size === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          idle = resolve;
          setTimeout(resolve, timeoutMs).unref();
        }),
  );
  return app;
}
