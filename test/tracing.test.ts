/**
 * Tracing: spans of a request through the real app (PGlite), their nesting and trace ids, the
 * trace id in the request log line, the off state (nothing registered), and a real OTLP/HTTP
 * export to a collector on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { SpanKind, SpanStatusCode, trace, type ProxyTracerProvider } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { AGENT_VERSIONS, AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import { buildRuntime, type Runtime } from '../src/app.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { createLogger } from '../src/observability/logger.js';
import { agentStepSpans, randomTraceId, requestTraceId, startTracing, traceIdFromHeader, tracesUrl, tracingEnabled, withSpan, type Tracing } from '../src/observability/tracing.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { deleteKeysUnder, redisSkipReason, redisUrl, testKeyPrefix } from './support/redis.js';

const GDV = {
  patient: { species: 'dog', breed: 'Great Dane', ageYears: 7, sex: 'male', neutered: true, weightKg: 62 },
  complaint: "He's been trying to be sick for an hour but nothing comes up, his belly looks swollen and tight and he's drooling. No diarrhoea.",
  vitals: { heartRate: 168, mucousMembranes: 'pale', crtSeconds: 3 },
  labs: [{ analyte: 'lactate', value: 6.5, unit: 'mmol/L' }],
};
const AGENTS = Object.keys(AGENT_VERSIONS);
const HEX32 = /^[0-9a-f]{32}$/;

interface LogLine {
  msg: string;
  reqId?: string;
  route?: string;
  status?: number;
  traceId?: string;
  [key: string]: unknown;
}

interface App {
  runtime: Runtime;
  logs: LogLine[];
  key: string;
  post(body: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** The real service on PGlite, logging at info into `logs` (one parsed object per line). */
async function startApp(env: Record<string, string> = {}): Promise<App> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-tracing-'));
  const logs: LogLine[] = [];
  const logger = createLogger('info', { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  // The load-shedding guard is off: these tests are about spans, and a busy test machine (or
  // PGlite's synchronous start) must not turn their requests into 503s.
  const config = loadConfig({ AGENTICPET_DATA_DIR: dataDir, LOG_LEVEL: 'info', AGENTICPET_MAX_EVENT_LOOP_DELAY_MS: '0', ...env });
  const runtime = await buildRuntime(config, await PgliteExecutor.open(), logger);
  const { key } = await runtime.access.createClinic('Tracing clinic');
  return {
    runtime,
    logs,
    key,
    post: (body, headers = {}) =>
      runtime.app.inject({ method: 'POST', url: '/v1/diagnoses', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, payload: JSON.stringify(body) }),
    close: async () => {
      await runtime.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const requestLine = (logs: LogLine[], reqId: string) => {
  const line = logs.find((l) => l.msg === 'request' && l.reqId === reqId);
  assert.ok(line, `a request log line for ${reqId}`);
  return line;
};

/** The span's ancestors, nearest first (only those exported). */
function ancestors(span: ReadableSpan, all: readonly ReadableSpan[]): ReadableSpan[] {
  const byId = new Map(all.map((s) => [s.spanContext().spanId, s]));
  const out: ReadableSpan[] = [];
  for (let parent = span.parentSpanContext; parent !== undefined; ) {
    const p = byId.get(parent.spanId);
    if (p === undefined) break;
    out.push(p);
    parent = p.parentSpanContext;
  }
  return out;
}

/** True when no tracer provider is registered with the API (a registered one would give a delegate). */
function noProviderRegistered(): boolean {
  const proxy = trace.getTracerProvider() as ProxyTracerProvider;
  const span = trace.getTracer('probe').startSpan('probe');
  span.end();
  return proxy.getDelegateTracer('probe') === undefined && !span.isRecording() && span.spanContext().traceId === '0'.repeat(32);
}

/** Checks the spans of one POST /v1/diagnoses: the server span, and all six agents under it in its trace. */
function assertDiagnosisTrace(spans: readonly ReadableSpan[], status: number): ReadableSpan {
  const servers = spans.filter((s) => s.name === 'HTTP POST /v1/diagnoses');
  assert.equal(servers.length, 1, `one server span, got ${spans.map((s) => s.name).join(', ')}`);
  const server = servers[0]!;
  assert.equal(server.kind, SpanKind.SERVER);
  assert.equal(server.attributes['http.route'], '/v1/diagnoses');
  assert.equal(server.attributes['http.request.method'], 'POST');
  assert.equal(server.attributes['http.response.status_code'], status);
  assert.equal(server.status.code, SpanStatusCode.UNSET);
  const traceId = server.spanContext().traceId;
  assert.match(traceId, HEX32);
  const agents = spans.filter((s) => s.name.startsWith('agent '));
  assert.deepEqual(agents.map((s) => s.name.slice('agent '.length)).sort(), [...AGENTS].sort());
  for (const a of agents) {
    const name = a.name.slice('agent '.length) as keyof typeof AGENT_VERSIONS;
    assert.equal(a.spanContext().traceId, traceId, `${a.name} is in the request's trace`);
    assert.ok(ancestors(a, spans).includes(server), `${a.name} has the request span as an ancestor`);
    assert.equal(a.attributes['agent.name'], name);
    assert.equal(a.attributes['agent.version'], AGENT_VERSIONS[name]);
    assert.equal(a.attributes['agent.status'], 'ok');
    assert.ok(a.endTime[0] > 0 && a.ended);
  }
  // The database work (the diagnosis, its evidence and audit event, in one transaction, even
  // when group commit ran it in a batch started by another request) is a child of this request.
  const db = spans.filter((s) => s.name === 'db transaction');
  assert.ok(db.length >= 1, 'a database transaction span');
  for (const d of db) {
    assert.equal(d.spanContext().traceId, traceId);
    assert.ok(ancestors(d, spans).includes(server), 'the db span has the request span as an ancestor');
    assert.equal(d.attributes['db.system'], 'postgresql');
  }
  return server;
}

describe('tracing on (in-memory exporter): POST /v1/diagnoses through the app', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let app: App;

  before(async () => {
    tracing = startTracing({ serviceName: 'agenticpet-test', version: '9.9.9', exporter });
    app = await startApp();
  });
  after(async () => {
    await app?.close();
    await tracing?.shutdown();
  });

  it('registers a provider, and refuses a second start', () => {
    assert.equal(tracing.enabled, true);
    assert.equal(tracingEnabled(), true);
    assert.equal(noProviderRegistered(), false);
    assert.throws(() => startTracing({ serviceName: 'x', version: '1', exporter: new InMemorySpanExporter() }), /already started/);
  });

  it('gives a server span with route and status, and six agent spans under it in the same trace; the log line has its trace id', async () => {
    exporter.reset();
    const res = await app.post(GDV);
    assert.equal(res.statusCode, 201, res.body);
    // Nothing of the request's context is left active in the caller.
    assert.equal(trace.getActiveSpan(), undefined);
    const spans = exporter.getFinishedSpans();
    const server = assertDiagnosisTrace(spans, 201);
    assert.equal(server.parentSpanContext, undefined, 'no traceparent: a new trace');
    assert.equal(server.resource.attributes['service.name'], 'agenticpet-test');
    assert.equal(server.resource.attributes['service.version'], '9.9.9');
    assert.equal(requestLine(app.logs, res.headers['x-request-id'] as string).traceId, server.spanContext().traceId);
  });

  it('continues the trace of an incoming traceparent, and logs that trace id', async () => {
    exporter.reset();
    const traceId = randomTraceId();
    const parentId = 'b7ad6b7169203331';
    const res = await app.post(GDV, { traceparent: `00-${traceId}-${parentId}-01` });
    assert.equal(res.statusCode, 201, res.body);
    const spans = exporter.getFinishedSpans();
    const server = assertDiagnosisTrace(spans, 201);
    assert.equal(server.spanContext().traceId, traceId);
    assert.equal(server.parentSpanContext?.spanId, parentId);
    assert.equal(server.parentSpanContext?.isRemote, true);
    assert.equal(requestLine(app.logs, res.headers['x-request-id'] as string).traceId, traceId);
  });

  it('names unmatched and failed requests by pattern and records their status', async () => {
    exporter.reset();
    const missing = await app.runtime.app.inject({ method: 'GET', url: '/no/such/route' });
    const invalid = await app.post({ ...GDV, patient: { ...GDV.patient, species: 'dragon' } });
    assert.equal(missing.statusCode, 404);
    assert.equal(invalid.statusCode, 400);
    const spans = exporter.getFinishedSpans();
    assert.equal(spans.find((s) => s.name === 'HTTP GET unmatched')?.attributes['http.response.status_code'], 404);
    const rejected = spans.find((s) => s.name === 'HTTP POST /v1/diagnoses')!;
    assert.equal(rejected.attributes['http.response.status_code'], 400);
    assert.equal(rejected.status.code, SpanStatusCode.UNSET, 'a 4xx is not a server error');
    assert.ok(!spans.some((s) => s.name.startsWith('agent ')), 'a rejected body runs no agent');
  });

  it('nests the same way over a real socket, with concurrent requests kept apart', async () => {
    exporter.reset();
    await app.runtime.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.runtime.app.server.address() as AddressInfo;
    const responses = await Promise.all(
      Array.from({ length: 4 }, () =>
        fetch(`http://127.0.0.1:${port}/v1/diagnoses`, { method: 'POST', headers: { authorization: `Bearer ${app.key}`, 'content-type': 'application/json' }, body: JSON.stringify(GDV) }),
      ),
    );
    for (const r of responses) assert.equal(r.status, 201, await r.text());
    const spans = exporter.getFinishedSpans();
    const servers = spans.filter((s) => s.name === 'HTTP POST /v1/diagnoses');
    assert.equal(servers.length, 4);
    assert.equal(new Set(servers.map((s) => s.spanContext().traceId)).size, 4, 'one trace per request');
    for (const server of servers) assertDiagnosisTrace(spans.filter((s) => s.spanContext().traceId === server.spanContext().traceId), 201);
  });
});

describe('withSpan', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  before(() => {
    tracing = startTracing({ serviceName: 'agenticpet-test', version: '1', exporter });
  });
  after(() => tracing?.shutdown());

  it('nests sync and async spans, returns what fn returns, and records throws and rejections', async () => {
    exporter.reset();
    const value = await withSpan('outer', { 'db.system': 'postgresql' }, async (outer) => {
      outer.setAttribute('extra', 1);
      const inner = withSpan('inner sync', undefined, () => 42);
      assert.throws(() => withSpan('inner throws', undefined, () => { throw new Error('sync boom'); }), /sync boom/);
      await assert.rejects(withSpan('inner rejects', undefined, async () => { await new Promise((r) => setTimeout(r, 1)); throw new Error('async boom'); }), /async boom/);
      return inner + 1;
    });
    assert.equal(value, 43);
    const spans = exporter.getFinishedSpans();
    const byName = new Map(spans.map((s) => [s.name, s]));
    const outer = byName.get('outer')!;
    assert.deepEqual(outer.attributes, { 'db.system': 'postgresql', extra: 1 });
    for (const name of ['inner sync', 'inner throws', 'inner rejects']) assert.equal(byName.get(name)?.parentSpanContext?.spanId, outer.spanContext().spanId, name);
    assert.equal(byName.get('inner sync')!.status.code, SpanStatusCode.UNSET);
    for (const [name, message] of [['inner throws', 'sync boom'], ['inner rejects', 'async boom']] as const) {
      const s = byName.get(name)!;
      assert.equal(s.status.code, SpanStatusCode.ERROR);
      assert.equal(s.status.message, message);
      assert.equal(s.events[0]?.name, 'exception');
    }
    assert.equal(outer.status.code, SpanStatusCode.UNSET);
  });

  it('marks a failed or timed-out agent step as an error, with its status', async () => {
    exporter.reset();
    const registry = new AgentRegistry(loadKnowledgeBase(), null, { default: 30, narrative: 30 }, agentStepSpans);
    const input = { species: 'dog', breed: 'Labrador Retriever', ageYears: 6, sex: 'male', neutered: true, weightKg: 30, complaint: 'vomiting', signs: [], vitals: {}, labs: [], mediaIds: [], treatments: [] } as const;
    await withSpan('diagnose', undefined, () =>
      orchestrate(registry, { ...input, signs: [], labs: [], mediaIds: [], treatments: [] }, {
        overrides: { labs: () => { throw new Error('labs down'); }, plan: () => new Promise(() => undefined) },
      }),
    );
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.name === 'diagnose')!;
    const agent = (name: string) => spans.find((s) => s.name === `agent ${name}`)!;
    for (const name of AGENTS) assert.equal(agent(name).parentSpanContext?.spanId, root.spanContext().spanId, name);
    assert.equal(agent('labs').attributes['agent.status'], 'failed');
    assert.equal(agent('labs').status.code, SpanStatusCode.ERROR);
    assert.equal(agent('labs').status.message, 'labs down');
    assert.equal(agent('plan').attributes['agent.status'], 'timeout');
    assert.equal(agent('plan').status.code, SpanStatusCode.ERROR);
    assert.equal(agent('intake').status.code, SpanStatusCode.UNSET);
  });
});

describe('Redis spans under the request span (real Redis)', { skip: redisSkipReason() }, () => {
  const exporter = new InMemorySpanExporter();
  const prefix = testKeyPrefix();
  let tracing: Tracing;
  let app: App;
  before(async () => {
    tracing = startTracing({ serviceName: 'agenticpet-test', version: '1', exporter });
    app = await startApp({ REDIS_URL: redisUrl(), REDIS_KEY_PREFIX: prefix });
  });
  after(async () => {
    await app?.close();
    await tracing?.shutdown();
    await deleteKeysUnder(prefix);
  });

  it('records each session-store call as a redis span in the request trace', async () => {
    await app.post(GDV); // the first connection
    exporter.reset();
    const res = await app.post(GDV);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['x-session-store'], 'redis');
    const spans = exporter.getFinishedSpans();
    const server = assertDiagnosisTrace(spans, 201);
    const redis = spans.filter((s) => s.name.startsWith('redis '));
    // A one-shot diagnosis creates its session with the chain in one call.
    assert.deepEqual(redis.map((s) => s.name), ['redis create']);
    for (const s of redis) {
      assert.equal(s.attributes['db.system'], 'redis');
      assert.equal(s.spanContext().traceId, server.spanContext().traceId);
      assert.ok(ancestors(s, spans).includes(server), `${s.name} under the request span`);
      assert.equal(s.status.code, SpanStatusCode.UNSET);
    }
  });
});

describe('tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  let app: App;
  before(async () => {
    app = await startApp();
  });
  after(() => app?.close());

  it('registers nothing with the OpenTelemetry API', () => {
    assert.equal(tracingEnabled(), false);
    assert.equal(noProviderRegistered(), true);
  });

  it('withSpan calls fn with a non-recording span and passes its result and errors through', async () => {
    assert.equal(withSpan('x', undefined, (span) => (span.isRecording() ? 'recording' : 'plain')), 'plain');
    assert.equal(await withSpan('x', undefined, async () => 7), 7);
    assert.throws(() => withSpan('x', undefined, () => { throw new Error('off boom'); }), /off boom/);
  });

  it('still puts a trace id in every request log line: a fresh one, or the caller\'s from traceparent', async () => {
    const plain = [await app.post(GDV), await app.post(GDV)];
    const ids = plain.map((r) => {
      assert.equal(r.statusCode, 201, r.body);
      return requestLine(app.logs, r.headers['x-request-id'] as string).traceId!;
    });
    for (const id of ids) assert.match(id, HEX32);
    assert.notEqual(ids[0], ids[1]);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const continued = await app.post(GDV, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
    assert.equal(requestLine(app.logs, continued.headers['x-request-id'] as string).traceId, traceId);
    const invalid = await app.post(GDV, { traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01` });
    const replaced = requestLine(app.logs, invalid.headers['x-request-id'] as string).traceId!;
    assert.match(replaced, HEX32);
    assert.notEqual(replaced, '0'.repeat(32));
  });

  it('reads trace ids from traceparent by the W3C rules', () => {
    const id = '4bf92f3577b34da6a3ce929d0e0e4736';
    assert.equal(traceIdFromHeader(`00-${id}-00f067aa0ba902b7-01`), id);
    assert.equal(traceIdFromHeader(`01-${id}-00f067aa0ba902b7-01-future`), id, 'a later version may add fields');
    for (const bad of [undefined, '', `00-${id}-00f067aa0ba902b7-01-extra`, `ff-${id}-00f067aa0ba902b7-01`, `00-${id.toUpperCase()}-00f067aa0ba902b7-01`, `00-${id}-0000000000000000-01`, `00-${id.slice(1)}-00f067aa0ba902b7-01`, [`00-${id}-00f067aa0ba902b7-01`]]) {
      assert.equal(traceIdFromHeader(bad), undefined, String(bad));
    }
    assert.equal(requestTraceId(null, `00-${id}-00f067aa0ba902b7-01`), id);
    const many = new Set(Array.from({ length: 5000 }, () => randomTraceId()));
    assert.equal(many.size, 5000, 'random ids do not repeat (the pool is refilled, not reused)');
    for (const x of many) assert.match(x, HEX32);
  });
});

/** A stand-in OTLP collector on 127.0.0.1: records each POST's path, content type and body. */
async function startCollector(): Promise<{ url: string; received: Array<{ path: string; contentType: string; body: string }>; close(): Promise<void> }> {
  const received: Array<{ path: string; contentType: string; body: string }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', contentType: String(req.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // The exporter keeps its connection alive; do not wait for it to time out.
        server.closeAllConnections();
      }),
  };
}

describe('OTLP/HTTP export (OTEL_EXPORTER_OTLP_ENDPOINT set)', () => {
  it('sends the spans to <endpoint>/v1/traces and flushes them when the runtime closes', async () => {
    const collector = await startCollector();
    try {
      const app = await startApp({ OTEL_EXPORTER_OTLP_ENDPOINT: `${collector.url}/otlp/`, OTEL_SERVICE_NAME: 'agenticpet-otlp-test' });
      try {
        assert.equal(tracingEnabled(), true, 'the runtime started tracing from its config');
        const res = await app.post(GDV);
        assert.equal(res.statusCode, 201, res.body);
        assert.equal(collector.received.length, 0, 'batched, not sent during the request');
      } finally {
        await app.close();
      }
      assert.ok(collector.received.length >= 1, 'close() flushed the batch');
      const bodies = collector.received.map((r) => r.body).join('\n');
      for (const r of collector.received) {
        assert.equal(r.path, '/otlp/v1/traces');
        assert.match(r.contentType, /^application\/json/);
      }
      for (const name of ['HTTP POST /v1/diagnoses', ...AGENTS.map((a) => `agent ${a}`)]) assert.ok(bodies.includes(`"${name}"`), `exported ${name}`);
      assert.ok(bodies.includes('agenticpet-otlp-test'), 'the service name is in the resource');
      assert.equal(tracingEnabled(), false);
      assert.equal(noProviderRegistered(), true, 'close() unregistered the provider');
    } finally {
      await collector.close();
    }
  });

  it('builds the traces URL from the base endpoint', () => {
    assert.equal(tracesUrl('http://collector:4318'), 'http://collector:4318/v1/traces');
    assert.equal(tracesUrl('http://collector:4318/'), 'http://collector:4318/v1/traces');
    assert.equal(tracesUrl('https://otlp.example/base'), 'https://otlp.example/base/v1/traces');
  });
});

describe('tracing configuration', () => {
  it('is off by default, with service name agenticpet', () => {
    const config = loadConfig({});
    assert.equal(config.otelEndpoint, undefined);
    assert.equal(config.otelServiceName, 'agenticpet');
    const on = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318', OTEL_SERVICE_NAME: 'agenticpet-eu' });
    assert.equal(on.otelEndpoint, 'http://otel-collector:4318');
    assert.equal(on.otelServiceName, 'agenticpet-eu');
  });

  it('rejects an endpoint that is not an http(s) base URL, naming the variable and not echoing it', () => {
    for (const bad of ['otel-collector:4318', 'grpc://otel:4317', 'http://', 'http://otel:4318/?x=1', 'http://otel:4318/#f', 'http://user:secret@ot el:4318']) {
      assert.throws(
        () => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: bad }),
        (err: unknown) => err instanceof ConfigError && err.variable === 'OTEL_EXPORTER_OTLP_ENDPOINT' && /OTEL_EXPORTER_OTLP_ENDPOINT/.test(err.message) && !err.message.includes('secret'),
        bad,
      );
    }
    assert.throws(() => loadConfig({ OTEL_SERVICE_NAME: 'x'.repeat(256) }), (err: unknown) => err instanceof ConfigError && err.variable === 'OTEL_SERVICE_NAME');
  });
});
