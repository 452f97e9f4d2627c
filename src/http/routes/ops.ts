/**
 * The live operations dashboard. GET /ops serves a static page (no secrets in it: it asks for an
 * admin key and keeps it in the tab's sessionStorage) with uPlot from node_modules, so it works
 * offline; GET /v1/ops/metrics is the admin-only snapshot the page polls every 2 s. The page
 * computes rates and percentiles from the differences between two snapshots, so the snapshot
 * carries cumulative counters and bucket counts, reduced to the families and labels it charts.
 */
import cluster from 'node:cluster';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import type { MetricFamily } from '../../observability/emf.js';
import { CACHE_REQUESTS, DIAGNOSES_TOTAL, GROUP_COMMIT_BATCH, HTTP_DURATION, POOL_CLIENTS, POOL_IDLE, POOL_MAX, POOL_WAITING } from '../../observability/metrics.js';
import { sendProblem } from '../problem.js';
import type { App, Services } from '../server.js';

export const OPS_METRICS_PATH = '/v1/ops/metrics';
export const EVENT_LOOP_LAG_P50 = 'agenticpet_nodejs_eventloop_lag_p50_seconds';
export const EVENT_LOOP_LAG_P99 = 'agenticpet_nodejs_eventloop_lag_p99_seconds';

const Labels = Type.Record(Type.String(), Type.String());
export const OpsScalarFamily = Type.Object({
  name: Type.String(),
  type: Type.Union([Type.Literal('counter'), Type.Literal('gauge')]),
  series: Type.Array(Type.Object({ labels: Labels, value: Type.Number() })),
});
export const OpsHistogramFamily = Type.Object({
  name: Type.String(),
  type: Type.Literal('histogram'),
  bounds: Type.Array(Type.Number(), { description: 'Finite upper bounds (le) of the buckets, ascending; the +Inf bucket is `count`' }),
  series: Type.Array(
    Type.Object({
      labels: Labels,
      count: Type.Number(),
      sum: Type.Number(),
      buckets: Type.Array(Type.Number(), { description: 'Cumulative observations at or below each bound' }),
    }),
  ),
});
export const OpsMetrics = Type.Object({
  takenAt: Type.Number({ description: 'When the snapshot was taken, in milliseconds since the epoch' }),
  scope: Type.String({ description: "What the figures cover: 'process' is the instance that answered; 'host' every worker of its host (serve --workers N)" }),
  families: Type.Array(Type.Union([OpsScalarFamily, OpsHistogramFamily]), { description: 'Cumulative values; a family not reported yet is absent' }),
});
export type OpsScalarFamily = Static<typeof OpsScalarFamily>;
export type OpsHistogramFamily = Static<typeof OpsHistogramFamily>;
export type OpsFamily = OpsScalarFamily | OpsHistogramFamily;
export type OpsMetrics = Static<typeof OpsMetrics>;

/** A family the page charts: the labels it keeps (the others are summed away) and how to merge. */
export interface OpsFamilySpec {
  name: string;
  keep: readonly string[];
  /** Gauges of one instant (lag) take the worst value; counts and connections add up. */
  merge: 'sum' | 'max';
  /** Series left out by label value. */
  skip?: Readonly<Record<string, readonly string[]>>;
}

const OPS_ROUTES = ['/ops', '/ops/assets/:name', OPS_METRICS_PATH];

export const OPS_FAMILIES: readonly OpsFamilySpec[] = [
  // The dashboard's own polling is left out, or every open tab would show as traffic.
  { name: HTTP_DURATION, keep: ['status_code'], merge: 'sum', skip: { route: OPS_ROUTES } },
  { name: DIAGNOSES_TOTAL, keep: ['triage_level'], merge: 'sum' },
  { name: CACHE_REQUESTS, keep: ['cache', 'result'], merge: 'sum' },
  { name: POOL_CLIENTS, keep: [], merge: 'sum' },
  { name: POOL_IDLE, keep: [], merge: 'sum' },
  { name: POOL_WAITING, keep: [], merge: 'sum' },
  { name: POOL_MAX, keep: [], merge: 'sum' },
  { name: GROUP_COMMIT_BATCH, keep: [], merge: 'sum' },
  { name: EVENT_LOOP_LAG_P50, keep: [], merge: 'max' },
  { name: EVENT_LOOP_LAG_P99, keep: [], merge: 'max' },
];

type LabelValue = string | number | undefined;

function keptLabels(labels: Record<string, LabelValue>, keep: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keep) if (labels[k] !== undefined) out[k] = String(labels[k]);
  return out;
}

function skipped(labels: Record<string, LabelValue>, spec: OpsFamilySpec): boolean {
  return Object.entries(spec.skip ?? {}).some(([k, values]) => values.includes(String(labels[k])));
}

const keyOf = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

function scalarFamily(family: MetricFamily, spec: OpsFamilySpec, type: 'counter' | 'gauge'): OpsScalarFamily {
  const groups = new Map<string, { labels: Record<string, string>; value: number }>();
  for (const v of family.values) {
    // prom-client reports NaN (e.g. a mean of no samples) as null in JSON; it is not a figure.
    if (!Number.isFinite(v.value) || skipped(v.labels, spec)) continue;
    const labels = keptLabels(v.labels, spec.keep);
    const key = keyOf(labels);
    const g = groups.get(key);
    if (g === undefined) groups.set(key, { labels, value: v.value });
    else g.value = spec.merge === 'max' ? Math.max(g.value, v.value) : g.value + v.value;
  }
  return { name: family.name, type, series: [...groups.values()] };
}

function histogramFamily(family: MetricFamily, spec: OpsFamilySpec): OpsHistogramFamily {
  const groups = new Map<string, { labels: Record<string, string>; count: number; sum: number; byBound: Map<number, number> }>();
  const bounds = new Set<number>();
  for (const v of family.values) {
    if (!Number.isFinite(v.value) || skipped(v.labels, spec)) continue;
    const labels = keptLabels(v.labels, spec.keep);
    const key = keyOf(labels);
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = { labels, count: 0, sum: 0, byBound: new Map() }));
    const metric = v.metricName ?? '';
    if (metric.endsWith('_sum')) g.sum += v.value;
    else if (metric.endsWith('_count')) g.count += v.value;
    else if (metric.endsWith('_bucket')) {
      const le = Number(v.labels.le);
      if (!Number.isFinite(le)) continue; // +Inf equals _count
      bounds.add(le);
      g.byBound.set(le, (g.byBound.get(le) ?? 0) + v.value);
    }
  }
  const sorted = [...bounds].sort((a, b) => a - b);
  return {
    name: family.name,
    type: 'histogram',
    bounds: sorted,
    series: [...groups.values()].map((g) => ({ labels: g.labels, count: g.count, sum: g.sum, buckets: sorted.map((b) => g.byBound.get(b) ?? 0) })),
  };
}

/** Reduces getMetricsAsJSON() output to the families (and labels) of OPS_FAMILIES. */
export function selectOpsFamilies(all: readonly MetricFamily[], specs: readonly OpsFamilySpec[] = OPS_FAMILIES): OpsFamily[] {
  const byName = new Map(all.map((f) => [f.name, f]));
  const out: OpsFamily[] = [];
  for (const spec of specs) {
    const family = byName.get(spec.name);
    if (family === undefined) continue;
    if (family.type === 'histogram') out.push(histogramFamily(family, spec));
    else if (family.type === 'counter' || family.type === 'gauge') out.push(scalarFamily(family, spec, family.type));
  }
  return out;
}

/** The one source of the dashboard's figures (today this process's registry). */
export async function metricsSnapshot(services: Pick<Services, 'metricsView'>): Promise<OpsMetrics> {
  // Under `serve --workers N` this is every worker of the host, merged through the primary.
  const all = (await (await services.metricsView()).getMetricsAsJSON()) as unknown as MetricFamily[];
  return { takenAt: Date.now(), scope: cluster.isWorker ? 'host' : 'process', families: selectOpsFamilies(all) };
}

/** GET /v1/ops/metrics; register inside the /v1 plugin so its auth and permission hooks apply. */
export function registerOpsRoutes(app: App, services: Services): void {
  app.get(
    '/ops/metrics',
    {
      config: { permission: 'ops:read' },
      schema: {
        tags: ['operations'],
        summary: 'Snapshot of the metrics the /ops dashboard charts (admin)',
        description: 'Cumulative counters, gauges and histogram buckets; rates and percentiles come from the difference between two snapshots.',
        response: { 200: OpsMetrics },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return metricsSnapshot(services);
    },
  );
}

// ---- the page ----

interface Asset {
  body: Buffer;
  type: string;
}

const PAGE_FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'ops.js': 'text/javascript; charset=utf-8',
  'deltas.js': 'text/javascript; charset=utf-8',
  'ops.css': 'text/css; charset=utf-8',
};
const UPLOT_FILES: Record<string, string> = {
  'uPlot.iife.min.js': 'text/javascript; charset=utf-8',
  'uPlot.min.css': 'text/css; charset=utf-8',
};

/**
 * Where the page's files may be: beside this module's directory when run from src/ (tsx), and
 * src/http/ops/ of the package when run from dist/ (tsc copies only .ts output to dist/).
 */
export function opsAssetCandidates(moduleUrl: string = import.meta.url): string[] {
  return [fileURLToPath(new URL('../ops/', moduleUrl)), fileURLToPath(new URL('../../../src/http/ops/', moduleUrl))];
}

export function findOpsAssetDir(candidates: readonly string[] = opsAssetCandidates()): string | undefined {
  return candidates.find((dir) => Object.keys(PAGE_FILES).every((f) => fs.existsSync(path.join(dir, f))));
}

function loadAssets(): Map<string, Asset> | string {
  const dir = findOpsAssetDir();
  if (dir === undefined) return `the page's files are not in ${opsAssetCandidates().join(' or ')}`;
  let uplotDir: string;
  try {
    uplotDir = path.dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
  } catch {
    return 'the uplot package is not installed';
  }
  const assets = new Map<string, Asset>();
  for (const [name, type] of Object.entries(PAGE_FILES)) assets.set(name, { body: fs.readFileSync(path.join(dir, name)), type });
  for (const [name, type] of Object.entries(UPLOT_FILES)) assets.set(name, { body: fs.readFileSync(path.join(uplotDir, name)), type });
  return assets;
}

// Everything is same-origin: no CDN, no inline script or style, nothing embeds the page.
const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** GET /ops and its static files (public: the page holds no data until given an admin key). */
export function registerOpsPage(app: App): void {
  const assets = loadAssets();
  const hide = { schema: { hide: true } };
  if (typeof assets === 'string') {
    app.log.warn({ reason: assets }, 'operations dashboard unavailable');
    app.get('/ops', hide, async (request, reply) => sendProblem(reply, request, 503, 'ops-page-unavailable', 'Service Unavailable', `The operations dashboard is not installed: ${assets}`));
    return;
  }
  const page = assets.get('index.html')!;
  app.get('/ops', hide, async (_request, reply) =>
    reply
      .type(page.type)
      .header('content-security-policy', PAGE_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(page.body),
  );
  // Files were read at start; the name only picks one of them, it never reaches the filesystem.
  const files = [...assets.entries()].filter(([name]) => name !== 'index.html');
  app.get('/ops/assets/:name', { schema: { hide: true, params: Type.Object({ name: Type.String({ maxLength: 64 }) }) } }, async (request, reply) => {
    const found = files.find(([name]) => name === request.params.name);
    if (found === undefined) return sendProblem(reply, request, 404, 'not-found', 'Not Found', 'No such dashboard file');
    return reply.type(found[1].type).header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').send(found[1].body);
  });
}
