/** Metrics: GET /metrics through the real app (PGlite), the EMF formatter and sink, their config. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { buildRuntime } from '../src/app.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { EmfSink, quantileFromBuckets, toEmfDocuments, type EmfDocument, type MetricFamily } from '../src/observability/emf.js';
import { AGENT_STEP_DURATION, createMetrics, DIAGNOSES_TOTAL, HTTP_DURATION, POOL_CLIENTS, POOL_IDLE, POOL_MAX, POOL_WAITING } from '../src/observability/metrics.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

const GDV = {
  patient: { species: 'dog', breed: 'Great Dane', ageYears: 7, sex: 'male', neutered: true, weightKg: 62 },
  complaint: "He's been trying to be sick for an hour but nothing comes up, his belly looks swollen and tight and he's drooling.",
  vitals: { heartRate: 168, mucousMembranes: 'pale', crtSeconds: 3 },
};
const MILD = {
  patient: { species: 'cat', breed: 'Domestic Shorthair', ageYears: 3, sex: 'female', neutered: true, weightKg: 4.2 },
  complaint: 'She has been scratching her ears a bit this week, otherwise eating and playing normally.',
};
const AGENTS = ['intake', 'labs', 'differential', 'triage', 'plan', 'narrative'];

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format's samples (comment lines skipped). */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const find = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

describe('GET /metrics after requests through the app (PGlite)', () => {
  let rt: TestRuntime;
  let api: Call;
  let patientId: string;
  const triageSeen = new Map<string, number>();
  let samples: Sample[];
  let text: string;

  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open());
    api = client(rt, (await rt.newClinic('Metrics clinic')).key);
    const owner = await api('POST', '/v1/owners', { body: { name: 'Jane Doe' } });
    assert.equal(owner.statusCode, 201, owner.body);
    const patient = await api('POST', '/v1/patients', { body: { name: 'Rex', species: 'dog', breed: 'Labrador Retriever', sex: 'male', neutered: true, ageYears: 4, weightKg: 31.5, ownerId: owner.json().id } });
    assert.equal(patient.statusCode, 201, patient.body);
    patientId = patient.json().id;
    for (let i = 0; i < 3; i++) assert.equal((await api('GET', `/v1/patients/${patientId}`)).statusCode, 200);
    assert.equal((await api('GET', '/v1/patients/0190f3b2-0000-7000-8000-000000000000')).statusCode, 404);
    assert.equal((await api('GET', '/no/such/route')).statusCode, 404);
    const headers = { 'idempotency-key': 'metrics-replay-1' };
    for (const [body, h] of [[GDV, headers], [MILD, {}], [GDV, {}]] as const) {
      const res = await api('POST', '/v1/diagnoses', { body, headers: h });
      assert.equal(res.statusCode, 201, res.body);
      const level = res.json().triage.level as string;
      triageSeen.set(level, (triageSeen.get(level) ?? 0) + 1);
    }
    // A replay returns the stored report: it must not count again in the triage mix.
    const replay = await api('POST', '/v1/diagnoses', { body: GDV, headers });
    assert.equal(replay.headers['idempotent-replayed'], 'true');
    const res = await api('GET', '/metrics');
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /^text\/plain/);
    text = res.body;
    samples = parse(text);
  });
  after(async () => {
    await rt?.close();
  });

  it('times requests by method, route pattern and status code, never by raw URL', () => {
    assert.deepEqual(find(samples, `${HTTP_DURATION}_count`, { method: 'GET', route: '/v1/patients/:id', status_code: '200' }).map((s) => s.value), [3]);
    assert.deepEqual(find(samples, `${HTTP_DURATION}_count`, { method: 'GET', route: '/v1/patients/:id', status_code: '404' }).map((s) => s.value), [1]);
    assert.deepEqual(find(samples, `${HTTP_DURATION}_count`, { method: 'POST', route: '/v1/patients', status_code: '201' }).map((s) => s.value), [1]);
    assert.deepEqual(find(samples, `${HTTP_DURATION}_count`, { method: 'POST', route: '/v1/diagnoses', status_code: '201' }).map((s) => s.value), [4]);
    assert.deepEqual(find(samples, `${HTTP_DURATION}_count`, { method: 'GET', route: 'unmatched', status_code: '404' }).map((s) => s.value), [1]);
    const buckets = find(samples, `${HTTP_DURATION}_bucket`, { route: '/v1/patients/:id', status_code: '200' });
    assert.equal(buckets.find((b) => b.labels.le === '+Inf')?.value, 3);
    const sum = find(samples, `${HTTP_DURATION}_sum`, { route: '/v1/patients/:id', status_code: '200' })[0]!;
    assert.ok(sum.value > 0 && sum.value < 30, `latency sum in seconds, got ${sum.value}`);
    assert.ok(!text.includes(patientId), 'a patient id leaked into the metrics');
    assert.ok(!text.includes('/no/such/route'), 'an unmatched URL leaked into the metrics');
  });

  it('times every agent step of each diagnosis, for all six agents', () => {
    for (const agent of AGENTS) {
      const runs = find(samples, `${AGENT_STEP_DURATION}_count`, { agent }).reduce((n, s) => n + s.value, 0);
      // Three of the four POSTs ran the agents; the idempotent replay is answered before they run.
      assert.equal(runs, 3, `agent ${agent}`);
      for (const s of find(samples, `${AGENT_STEP_DURATION}_count`, { agent })) assert.ok(['ok', 'failed', 'timeout', 'skipped'].includes(s.labels.status!));
    }
    assert.ok(find(samples, `${AGENT_STEP_DURATION}_count`, { agent: 'intake', status: 'ok' })[0]!.value > 0);
  });

  it('counts committed diagnoses by triage level (the triage mix), replays excluded', () => {
    const counted = new Map(find(samples, DIAGNOSES_TOTAL).map((s) => [s.labels.triage_level!, s.value]));
    assert.deepEqual(counted, triageSeen);
    assert.equal(counted.get('emergency'), 2);
  });

  it('exposes event-loop lag and memory, and no pool gauges for PGlite', () => {
    for (const name of ['agenticpet_nodejs_eventloop_lag_seconds', 'agenticpet_nodejs_eventloop_lag_p99_seconds', 'agenticpet_process_resident_memory_bytes', 'agenticpet_nodejs_heap_size_used_bytes']) {
      assert.equal(find(samples, name).length, 1, name);
    }
    assert.ok(find(samples, 'agenticpet_nodejs_heap_size_used_bytes')[0]!.value > 0);
    assert.equal(find(samples, POOL_CLIENTS).length, 0);
  });
});

describe('PostgreSQL pool gauges', () => {
  it('are read from the pool at scrape time', async () => {
    const registry = new Registry();
    let stats = { total: 4, idle: 1, waiting: 2, max: 10 };
    createMetrics(registry, { poolStats: () => stats, defaultMetrics: false });
    let samples = parse(await registry.metrics());
    assert.deepEqual([POOL_CLIENTS, POOL_IDLE, POOL_WAITING, POOL_MAX].map((n) => find(samples, n)[0]?.value), [4, 1, 2, 10]);
    stats = { total: 10, idle: 0, waiting: 7, max: 10 };
    samples = parse(await registry.metrics());
    assert.deepEqual([POOL_CLIENTS, POOL_IDLE, POOL_WAITING, POOL_MAX].map((n) => find(samples, n)[0]?.value), [10, 0, 7, 10]);
  });

  it('PostgresExecutor.stats() reports the pg.Pool counts', async () => {
    // No connection is made until a query: a fresh pool is empty.
    const db = new PostgresExecutor({ connectionString: 'postgres://nobody@127.0.0.1:1/none', poolMax: 3 });
    try {
      assert.deepEqual(db.stats(), { total: 0, idle: 0, waiting: 0, max: 3 });
    } finally {
      await db.close();
    }
  });
});

describe('PostgreSQL pool gauges in /metrics (real PostgreSQL)', { skip: pgSkipReason() }, () => {
  it('show the pool of the running service', async () => {
    const database = await createTestDatabase();
    const rt = await startRuntime(new PostgresExecutor({ connectionString: database.url, poolMax: 4 }));
    try {
      const api = client(rt, (await rt.newClinic('Pool clinic')).key);
      // Concurrent requests make the pool open more than one connection.
      const results = await Promise.all(Array.from({ length: 6 }, () => api('POST', '/v1/owners', { body: { name: 'Jane Doe' } })));
      assert.ok(results.every((r) => r.statusCode === 201));
      const res = await api('GET', '/metrics');
      const samples = parse(res.body);
      const open = find(samples, POOL_CLIENTS)[0]?.value ?? -1;
      const idle = find(samples, POOL_IDLE)[0]?.value ?? -1;
      assert.ok(open >= 1 && open <= 4, `open connections within the pool size, got ${open}`);
      assert.ok(idle >= 0 && idle <= open, `idle ${idle} of ${open}`);
      assert.equal(find(samples, POOL_WAITING)[0]?.value, 0);
      assert.ok(!res.body.includes(database.url));
    } finally {
      await rt.close();
      await database.drop();
    }
  });
});

const UNITS = new Set(['Seconds', 'Microseconds', 'Milliseconds', 'Bytes', 'Kilobytes', 'Megabytes', 'Gigabytes', 'Terabytes', 'Bits', 'Kilobits', 'Megabits', 'Gigabits', 'Terabits', 'Percent', 'Count', 'Bytes/Second', 'Kilobytes/Second', 'Megabytes/Second', 'Gigabytes/Second', 'Terabytes/Second', 'Bits/Second', 'Kilobits/Second', 'Megabits/Second', 'Gigabits/Second', 'Terabits/Second', 'Count/Second', 'None']);

/** Checks a document against the EMF specification's rules; returns it for further checks. */
function assertValidEmf(doc: unknown): EmfDocument {
  assert.equal(typeof doc, 'object');
  const d = doc as Record<string, unknown> & EmfDocument;
  assert.ok(Number.isInteger(d._aws.Timestamp) && d._aws.Timestamp > 1.5e12, 'Timestamp in epoch milliseconds');
  assert.ok(Array.isArray(d._aws.CloudWatchMetrics) && d._aws.CloudWatchMetrics.length > 0);
  for (const directive of d._aws.CloudWatchMetrics) {
    assert.deepEqual(Object.keys(directive).sort(), ['Dimensions', 'Metrics', 'Namespace']);
    assert.equal(directive.Namespace, 'AgenticPet');
    assert.ok(directive.Dimensions.length >= 1);
    for (const set of directive.Dimensions) {
      assert.ok(set.length <= 9);
      for (const key of set) assert.equal(typeof d[key], 'string', `dimension ${key} must be a string member of the root`);
    }
    assert.ok(directive.Metrics.length >= 1 && directive.Metrics.length <= 100);
    for (const m of directive.Metrics) {
      assert.equal(typeof d[m.Name], 'number', `metric ${m.Name} must be a numeric member of the root`);
      assert.ok(Number.isFinite(d[m.Name] as number), `metric ${m.Name} is finite`);
      assert.ok(UNITS.has(m.Unit), `unit ${m.Unit}`);
    }
  }
  return d;
}

describe('CloudWatch Embedded Metric Format', () => {
  const docFor = (docs: EmfDocument[], metric: string, dims: Record<string, string> = {}) =>
    docs.find((d) => metric in d && Object.entries(dims).every(([k, v]) => d[k] === v));

  it('formats the registry as valid EMF documents: labels as dimensions, counters as increases, histograms as count, sum, p50, p99', async () => {
    const registry = new Registry();
    const m = createMetrics(registry);
    for (const ms of [2, 4, 6, 8, 30]) m.http.observeRequest('GET', '/v1/patients/:id', 200, ms / 1000);
    m.http.observeRequest('POST', '/v1/diagnoses', 500, 0.003);
    m.diagnoses.diagnosisRecorded('emergency');
    m.diagnoses.diagnosisRecorded('emergency');
    m.diagnoses.agentSteps([{ seq: 1, agent: 'intake', agentVersion: '1', inputDigest: 'x', status: 'ok', durationMs: 0.4, at: '', output: null }]);

    const first = toEmfDocuments((await registry.getMetricsAsJSON()) as unknown as MetricFamily[], { timestamp: 1_764_150_000_000 });
    const lines = first.documents.map((d) => JSON.stringify(d));
    for (const line of lines) assertValidEmf(JSON.parse(line));

    const http = docFor(first.documents, `${HTTP_DURATION}_count`, { route: '/v1/patients/:id' })!;
    assert.ok(http, 'a document for the route');
    assert.deepEqual(http._aws.CloudWatchMetrics[0]!.Dimensions, [['method', 'route', 'status_code']]);
    assert.equal(http.method, 'GET');
    assert.equal(http.status_code, '200');
    assert.equal(http[`${HTTP_DURATION}_count`], 5);
    assert.ok(Math.abs((http[`${HTTP_DURATION}_sum`] as number) - 0.05) < 1e-9);
    // Buckets ...0.0025 (1), 0.005 (2), 0.01 (4), 0.02 (4), 0.05 (5): rank 2.5 lies in (0.005, 0.01].
    assert.ok(Math.abs((http[`${HTTP_DURATION}_p50`] as number) - (0.005 + 0.005 * 0.25)) < 1e-9);
    assert.ok(Math.abs((http[`${HTTP_DURATION}_p99`] as number) - (0.02 + 0.03 * 0.95)) < 1e-9);
    const units = Object.fromEntries(http._aws.CloudWatchMetrics[0]!.Metrics.map((x) => [x.Name, x.Unit]));
    assert.deepEqual(units, { [`${HTTP_DURATION}_count`]: 'Count', [`${HTTP_DURATION}_sum`]: 'Seconds', [`${HTTP_DURATION}_p50`]: 'Seconds', [`${HTTP_DURATION}_p99`]: 'Seconds' });
    assert.equal(docFor(first.documents, `${HTTP_DURATION}_count`, { status_code: '500' })?.[`${HTTP_DURATION}_count`], 1);
    assert.equal(docFor(first.documents, DIAGNOSES_TOTAL, { triage_level: 'emergency' })?.[DIAGNOSES_TOTAL], 2);
    assert.equal(docFor(first.documents, `${AGENT_STEP_DURATION}_count`, { agent: 'intake', status: 'ok' })?.[`${AGENT_STEP_DURATION}_count`], 1);
    const lag = docFor(first.documents, 'agenticpet_nodejs_eventloop_lag_seconds')!;
    assert.deepEqual(lag._aws.CloudWatchMetrics[0]!.Dimensions, [[]]);
    assert.equal(lag._aws.CloudWatchMetrics[0]!.Metrics.find((x) => x.Name === 'agenticpet_process_resident_memory_bytes')?.Unit, 'Bytes');
    assert.ok(!first.documents.some((d) => 'agenticpet_nodejs_version_info' in d), '_info gauges are metadata, not metrics');

    // The next period carries only what happened since: one more diagnosis, one more request.
    m.diagnoses.diagnosisRecorded('emergency');
    m.http.observeRequest('GET', '/v1/patients/:id', 200, 0.001);
    const second = toEmfDocuments((await registry.getMetricsAsJSON()) as unknown as MetricFamily[], { timestamp: 1_764_150_060_000, previous: first.snapshot });
    for (const d of second.documents) assertValidEmf(d);
    assert.equal(docFor(second.documents, DIAGNOSES_TOTAL, { triage_level: 'emergency' })?.[DIAGNOSES_TOTAL], 1);
    const http2 = docFor(second.documents, `${HTTP_DURATION}_count`, { route: '/v1/patients/:id' })!;
    assert.equal(http2[`${HTTP_DURATION}_count`], 1);
    assert.ok(Math.abs((http2[`${HTTP_DURATION}_p99`] as number) - (0.0005 + 0.0005 * 0.99)) < 1e-9);
    const idle = docFor(second.documents, `${HTTP_DURATION}_count`, { status_code: '500' })!;
    assert.equal(idle[`${HTTP_DURATION}_count`], 0);
    assert.ok(!(`${HTTP_DURATION}_p50` in idle), 'no percentiles for a period without observations');
  });

  it('splits a label set with more than 100 metrics into several documents', () => {
    const families: MetricFamily[] = Array.from({ length: 150 }, (_, i) => ({ name: `g${i}`, type: 'gauge', values: [{ value: i, labels: {} }] }));
    const { documents } = toEmfDocuments(families, { timestamp: 1_764_150_000_000 });
    assert.deepEqual(documents.map((d) => d._aws.CloudWatchMetrics[0]!.Metrics.length), [100, 50]);
    for (const d of documents) assertValidEmf(d);
    assert.equal(documents[1]!.g149, 149);
  });

  it('estimates quantiles from cumulative buckets like histogram_quantile', () => {
    const buckets = [{ le: 1, count: 10 }, { le: 2, count: 30 }, { le: Infinity, count: 40 }];
    assert.equal(quantileFromBuckets(0.5, buckets), 1.5);
    assert.equal(quantileFromBuckets(0.25, buckets), 1);
    assert.equal(quantileFromBuckets(0.05, buckets), 0.2);
    assert.equal(quantileFromBuckets(0.99, buckets), 2, 'a rank in +Inf reports the highest finite bound');
    assert.equal(quantileFromBuckets(0.5, [{ le: 1, count: 0 }, { le: Infinity, count: 0 }]), undefined);
  });

  it('the sink writes one EMF line per document to its writer every interval, and stops', async () => {
    const registry = new Registry();
    const m = createMetrics(registry, { defaultMetrics: false });
    m.diagnoses.diagnosisRecorded('urgent');
    const lines: string[] = [];
    const sink = new EmfSink(registry, { intervalSeconds: 0.02, write: (line) => lines.push(line) }).start();
    const deadline = Date.now() + 5_000;
    while (lines.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await sink.stop();
    assert.ok(lines.length >= 2, 'the timer flushed');
    for (const line of lines) {
      assert.ok(!line.includes('\n'), 'one document per line');
      assertValidEmf(JSON.parse(line));
    }
    const counts = lines.map((l) => JSON.parse(l)).filter((d) => DIAGNOSES_TOTAL in d).map((d) => d[DIAGNOSES_TOTAL]);
    assert.equal(counts[0], 1);
    assert.ok(counts.slice(1).every((c) => c === 0), 'later periods carry only the increase');
    const written = lines.length;
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(lines.length, written, 'nothing is written after stop()');
  });
});

describe('METRICS_SINK=emf in the runtime', () => {
  it('writes EMF lines while running and a last period on close, then stops', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-emf-'));
    const lines: string[] = [];
    try {
      const config = loadConfig({ AGENTICPET_DATA_DIR: dataDir, LOG_LEVEL: 'silent', METRICS_SINK: 'emf', METRICS_EMF_INTERVAL_SECONDS: '1' });
      const rt = await buildRuntime(config, await PgliteExecutor.open(), createLogger('silent'), { emfWrite: (line) => lines.push(line) });
      assert.equal((await rt.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      const deadline = Date.now() + 5_000;
      while (lines.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(lines.length > 0, 'the interval flushed');
      const beforeClose = lines.length;
      await rt.close();
      assert.ok(lines.length > beforeClose, 'close() flushes the last period');
      const docs = lines.map((l) => assertValidEmf(JSON.parse(l)));
      assert.ok(docs.some((d) => d.route === '/healthz' && d[`${HTTP_DURATION}_count`] === 1));
      const closed = lines.length;
      await new Promise((r) => setTimeout(r, 1_200));
      assert.equal(lines.length, closed, 'the interval is stopped on close');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('metrics configuration', () => {
  it('defaults to prometheus with a 60 s EMF interval, accepts emf', () => {
    const config = loadConfig({});
    assert.equal(config.metricsSink, 'prometheus');
    assert.equal(config.metricsEmfIntervalSeconds, 60);
    const emf = loadConfig({ METRICS_SINK: 'emf', METRICS_EMF_INTERVAL_SECONDS: '15' });
    assert.equal(emf.metricsSink, 'emf');
    assert.equal(emf.metricsEmfIntervalSeconds, 15);
  });

  it('rejects an unknown METRICS_SINK or a bad interval, naming the variable', () => {
    assert.throws(() => loadConfig({ METRICS_SINK: 'foo' }), (err: unknown) => err instanceof ConfigError && err.variable === 'METRICS_SINK' && /METRICS_SINK/.test(err.message) && /foo/.test(err.message));
    assert.throws(() => loadConfig({ METRICS_EMF_INTERVAL_SECONDS: '0' }), (err: unknown) => err instanceof ConfigError && err.variable === 'METRICS_EMF_INTERVAL_SECONDS');
  });
});
