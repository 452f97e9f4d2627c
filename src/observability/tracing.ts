/**
 * OpenTelemetry tracing: spans exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set,
 * off otherwise. Off registers nothing with the OpenTelemetry API (no tracer provider, context
 * manager or propagator), and withSpan() is one null check before calling its function.
 *
 * What the rest of the code calls:
 *   withSpan(name, attributes, fn)  runs fn (sync or async) in a child span of the current span;
 *     a throw or a rejection is recorded on the span and marks it as an error, then passes on.
 *     Agent steps, Redis calls and database work use it, e.g. for a transaction:
 *       const DB_TX = { 'db.system': 'postgresql', 'db.system.name': 'postgresql' } as const;
 *       withSpan('db transaction', DB_TX, () => runTransaction(...))
 *     Keep constant attributes in module constants: the off path then allocates nothing.
 *   startRequestTrace / enterRequestTrace / endRequestTrace / requestTraceId  the HTTP server
 *     span and the trace id of the request log line (http/server.ts).
 */
import { randomBytes } from 'node:crypto';
import { format } from 'node:util';
import type { IncomingHttpHeaders } from 'node:http';
import { context, diag, DiagLogLevel, INVALID_SPAN_CONTEXT, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-node';
import { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

export interface TracingOptions {
  serviceName: string;
  version: string;
  /** OTLP/HTTP base URL, as OTEL_EXPORTER_OTLP_ENDPOINT: spans are sent to <endpoint>/v1/traces. */
  endpoint?: string;
  /** Sends each span to this exporter as it ends (tests: an InMemorySpanExporter), instead of OTLP. */
  exporter?: SpanExporter;
  /** Told the SDK's warnings and errors (a failed export, a collector that cannot be reached). */
  onDiagnostic?: (message: string) => void;
}

export interface Tracing {
  readonly enabled: boolean;
  /**
   * Exports the spans still buffered, then unregisters everything; safe to call twice. Never
   * rejects: a collector that cannot be reached is told to onDiagnostic, not to the caller.
   */
  shutdown(): Promise<void>;
}

/** Set while tracing is on; the off path checks only this. */
let tracer: Tracer | null = null;

/** Handed to fn when tracing is off, so callers may set attributes without checking. */
const NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
const OFF: Tracing = { enabled: false, shutdown: () => Promise.resolve() };
const SHUTDOWN_TIMEOUT_MS = 5_000;

/** The OTLP/HTTP traces URL for a base endpoint (the exporter specification's rule). */
export function tracesUrl(endpoint: string): string {
  return `${endpoint}${endpoint.endsWith('/') ? '' : '/'}v1/traces`;
}

/**
 * Starts tracing when an endpoint or an exporter is given: registers a tracer provider (service
 * name and version, plus OTEL_RESOURCE_ATTRIBUTES), the AsyncLocalStorage context manager (child
 * spans nest under the span active where they start) and the W3C trace-context propagator.
 * Without either it does nothing. One tracing per process: a second start throws.
 */
export function startTracing(opts: TracingOptions): Tracing {
  if (opts.endpoint === undefined && opts.exporter === undefined) return OFF;
  if (tracer !== null) throw new Error('tracing is already started in this process');
  const processor =
    opts.exporter !== undefined
      ? new SimpleSpanProcessor(opts.exporter)
      : // Batched: a request never waits for the collector; the exporter reads OTEL_EXPORTER_OTLP_HEADERS and _TIMEOUT itself.
        new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(opts.endpoint!) }));
  const resource = defaultResource()
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName, [ATTR_SERVICE_VERSION]: opts.version }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  const report = opts.onDiagnostic;
  if (report !== undefined) {
    const ignore = () => undefined;
    const tell = (...args: unknown[]) => report(format(...args));
    diag.setLogger({ error: tell, warn: tell, info: ignore, debug: ignore, verbose: ignore }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  }
  provider.register();
  tracer = provider.getTracer(opts.serviceName, opts.version);
  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown: () =>
      (stopped ??= (async () => {
        tracer = null;
        let timer: NodeJS.Timeout | undefined;
        try {
          // The exporter retries an unreachable collector; a shutdown must not wait that out.
          await Promise.race([
            provider.shutdown(),
            new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`collector did not answer within ${SHUTDOWN_TIMEOUT_MS} ms`)), SHUTDOWN_TIMEOUT_MS))),
          ]);
        } catch (err) {
          report?.(`spans not exported at shutdown: ${format(err)}`);
        } finally {
          clearTimeout(timer);
          // Back to the API's no-op state, so the process (or the next test) starts clean.
          trace.disable();
          context.disable();
          propagation.disable();
          if (report !== undefined) diag.disable();
        }
      })()),
  };
}

export function tracingEnabled(): boolean {
  return tracer !== null;
}

/**
 * fn bound to the active context, so that work run later on someone else's behalf (a unit of a
 * group-commit batch) still becomes a child of its own request's span. fn itself when off.
 */
export function bindToActiveContext<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return tracer === null ? fn : context.bind(context.active(), fn);
}

/**
 * Runs fn in a new span, a child of the active one. A returned promise ends the span when it
 * settles (and is what withSpan returns); otherwise the span ends when fn returns or throws.
 */
export function withSpan<T>(name: string, attributes: Attributes | undefined, fn: (span: Span) => T): T {
  if (tracer === null) return fn(NOOP_SPAN);
  return traced(tracer, name, attributes, fn);
}

function traced<T>(t: Tracer, name: string, attributes: Attributes | undefined, fn: (span: Span) => T): T {
  const parent = context.active();
  const span = t.startSpan(name, { attributes }, parent);
  let result: T;
  try {
    result = context.with(trace.setSpan(parent, span), fn, undefined, span);
  } catch (err) {
    recordFailure(span, err);
    span.end();
    throw err;
  }
  if (typeof (result as { then?: unknown } | null)?.then === 'function') {
    return (result as PromiseLike<unknown>).then(
      (value) => {
        span.end();
        return value;
      },
      (err: unknown) => {
        recordFailure(span, err);
        span.end();
        throw err;
      },
    ) as T;
  }
  span.end();
  return result;
}

/** Marks a span as failed with err (recorded as an exception event). */
export function recordFailure(span: Span, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  span.recordException(err instanceof Error ? err : message);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/**
 * Starts the server span of a request, continuing the caller's trace when a valid `traceparent`
 * header is given. Returns the context to run the rest of the request in (enterRequestTrace),
 * or null when tracing is off.
 */
export function startRequestTrace(method: string, route: string, headers: IncomingHttpHeaders): Context | null {
  if (tracer === null) return null;
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span = tracer.startSpan(`HTTP ${method} ${route}`, { kind: SpanKind.SERVER, attributes: { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_HTTP_ROUTE]: route } }, parent);
  return trace.setSpan(parent, span);
}

/** Calls next (a Fastify hook's done) with ctx active: what it starts, synchronously or later, inherits it. */
export function enterRequestTrace(ctx: Context, next: () => void): void {
  context.with(ctx, next);
}

/** Ends a request's server span with the response status; without one, the client went away. Idempotent. */
export function endRequestTrace(ctx: Context, statusCode: number | undefined): void {
  const span = trace.getSpan(ctx);
  if (span === undefined || !span.isRecording()) return;
  if (statusCode === undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'connection closed before the response was sent' });
  } else {
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode);
    // Server spans: a 4xx is the client's error, not the service's.
    if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

// version-traceid-parentid-flags, lowercase hex; a later version may append fields.
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(?:-|$)/;
const ZERO_TRACE_ID = '0'.repeat(32);

/** The trace id of a W3C `traceparent` header, or undefined when it is absent or invalid. */
export function traceIdFromHeader(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string' || !TRACEPARENT.test(header) || header.startsWith('ff')) return undefined;
  // Version 00 has exactly four fields.
  if (header.startsWith('00') && header.length !== 55) return undefined;
  const traceId = header.slice(3, 35);
  return traceId === ZERO_TRACE_ID || header.startsWith('0000000000000000', 36) ? undefined : traceId;
}

// Trace ids for log lines when tracing is off: 16 random bytes each, cut from a pool of 256
// converted to hex at once, so a request costs a string slice, not a CSPRNG call.
const IDS_PER_POOL = 256;
let idPool = '';
let idPoolOffset = 0;

export function randomTraceId(): string {
  if (idPoolOffset === idPool.length) {
    idPool = randomBytes(16 * IDS_PER_POOL).toString('hex');
    idPoolOffset = 0;
  }
  const id = idPool.slice(idPoolOffset, (idPoolOffset += 32));
  return id === ZERO_TRACE_ID ? randomTraceId() : id;
}

/**
 * The trace id for a request's log line: its span's when tracing is on; otherwise the caller's
 * (a valid `traceparent`), else a new random one, so log lines still correlate across services.
 */
export function requestTraceId(ctx: Context | null, traceparent: string | string[] | undefined): string {
  if (ctx !== null) {
    const spanContext = trace.getSpanContext(ctx);
    if (spanContext !== undefined) return spanContext.traceId;
  }
  return traceIdFromHeader(traceparent) ?? randomTraceId();
}

/**
 * One span per agent step ("agent <name>", a child of the active span), with the step's status
 * and, for a failed or timed-out step, the error: the orchestrator's StepTracer.
 */
export const agentStepSpans = {
  step<T>(agent: string, version: string, run: (ended: (status: string, err?: unknown) => void) => Promise<T>): Promise<T> {
    if (tracer === null) return run(() => undefined);
    return withSpan(`agent ${agent}`, { 'agent.name': agent, 'agent.version': version }, (span) =>
      run((status, err) => {
        span.setAttribute('agent.status', status);
        if (err !== undefined) recordFailure(span, err);
      }),
    );
  },
};
