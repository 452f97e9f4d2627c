/**
 * The /ops dashboard: the admin-only snapshot it polls, the page and its files, and the page
 * driven in Debian's chromium against the real server on 127.0.0.1. With
 * AGENTICPET_OPS_SCREENSHOT=1 the browser test runs traffic for longer and saves
 * docs/img/ops.png (a normal run writes nothing outside its temp dir).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { chromium, type Browser, type Page } from 'playwright-core';
import { findOpsAssetDir, metricsSnapshot, opsAssetCandidates, selectOpsFamilies, type OpsFamily, type OpsHistogramFamily, type OpsMetrics, type OpsScalarFamily } from '../src/http/routes/ops.js';
import type { MetricFamily } from '../src/observability/emf.js';
import { CACHE_REQUESTS, createMetrics, DIAGNOSES_TOTAL, GROUP_COMMIT_BATCH, HTTP_DURATION, POOL_CLIENTS, POOL_IDLE, POOL_MAX, POOL_WAITING } from '../src/observability/metrics.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = process.env.AGENTICPET_OPS_SCREENSHOT === '1';

const GDV = {
  patient: { species: 'dog', breed: 'Great Dane', ageYears: 7, sex: 'male', neutered: true, weightKg: 62 },
  complaint: "He's been trying to be sick for an hour but nothing comes up, his belly looks swollen and tight and he's drooling. No diarrhoea.",
  vitals: { heartRate: 168, mucousMembranes: 'pale', crtSeconds: 3 },
  labs: [{ analyte: 'lactate', value: 6.5, unit: 'mmol/L' }],
};
const MILD = {
  patient: { species: 'cat', breed: 'Domestic Shorthair', ageYears: 3, sex: 'female', neutered: true, weightKg: 4.2 },
  complaint: 'She has been scratching her ears a bit this week, otherwise eating and playing normally.',
};

// These suites test the dashboard, not backpressure: the overload guard is off so that a busy
// test machine cannot turn their traffic into 503s.
const ENV = { AGENTICPET_MAX_EVENT_LOOP_DELAY_MS: '0' };

const family = (snap: OpsMetrics, name: string): OpsFamily | undefined => snap.families.find((f) => f.name === name);
const histogram = (snap: OpsMetrics, name: string) => {
  const f = family(snap, name);
  assert.equal(f?.type, 'histogram', `${name} is a histogram`);
  return f as OpsHistogramFamily;
};
const scalar = (snap: OpsMetrics, name: string) => {
  const f = family(snap, name);
  assert.ok(f !== undefined && f.type !== 'histogram', `${name} is a counter or gauge`);
  return f as OpsScalarFamily;
};
const httpTotal = (snap: OpsMetrics) => histogram(snap, HTTP_DURATION).series.reduce((n, s) => n + s.count, 0);

describe('GET /v1/ops/metrics (PGlite)', () => {
  let rt: TestRuntime;
  let admin: Call;
  let vetKey: string;

  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open(), ENV);
    admin = client(rt, (await rt.newClinic('Ops clinic')).key);
    const vet = await admin('POST', '/v1/api-keys', { body: { name: 'vet desk', role: 'vet' } });
    assert.equal(vet.statusCode, 201, vet.body);
    vetKey = vet.json().key;
    for (const body of [GDV, MILD, GDV]) assert.equal((await admin('POST', '/v1/diagnoses', { body })).statusCode, 201);
    assert.equal((await admin('GET', '/v1/patients/0190f3b2-0000-7000-8000-000000000000')).statusCode, 404);
  });
  after(async () => {
    await rt?.close();
  });

  it('answers 401 problem+json without a key', async () => {
    const res = await client(rt, null)('GET', '/v1/ops/metrics');
    assert.equal(res.statusCode, 401);
    assert.match(res.headers['content-type'] as string, /^application\/problem\+json/);
    assert.equal(res.headers['www-authenticate'], 'Bearer');
    assert.equal(res.json().type, 'urn:agenticpet:problem:unauthorized');
  });

  it('answers 403 problem+json to a non-admin key', async () => {
    const res = await client(rt, vetKey)('GET', '/v1/ops/metrics');
    assert.equal(res.statusCode, 403, res.body);
    assert.match(res.headers['content-type'] as string, /^application\/problem\+json/);
    assert.equal(res.json().type, 'urn:agenticpet:problem:forbidden');
    assert.ok(!('families' in res.json()));
  });

  it('gives an admin the families the page charts, reduced to the labels it uses', async () => {
    const res = await admin('GET', '/v1/ops/metrics');
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    const snap = res.json() as OpsMetrics;
    assert.ok(Math.abs(snap.takenAt - Date.now()) < 60_000);
    assert.equal(snap.scope, 'process');

    const http = histogram(snap, HTTP_DURATION);
    assert.ok(http.bounds.length > 5 && http.bounds.every((b, i) => i === 0 || http.bounds[i - 1]! < b), 'finite bounds, ascending');
    for (const s of http.series) {
      assert.deepEqual(Object.keys(s.labels), ['status_code'], 'route and method are summed away');
      assert.equal(s.buckets.length, http.bounds.length);
      assert.ok(s.buckets.every((c, i) => c <= (s.buckets[i + 1] ?? s.count)), 'cumulative buckets');
    }
    const byStatus = new Map(http.series.map((s) => [s.labels.status_code, s.count]));
    assert.equal(byStatus.get('201'), 4, 'one API key and three diagnoses');
    assert.equal(byStatus.get('404'), 1);

    const triage = new Map(scalar(snap, DIAGNOSES_TOTAL).series.map((s) => [s.labels.triage_level, s.value]));
    assert.equal(triage.get('emergency'), 2);
    assert.equal([...triage.values()].reduce((a, b) => a + b, 0), 3);
    assert.equal(scalar(snap, 'agenticpet_nodejs_eventloop_lag_p99_seconds').series.length, 1);
    assert.equal(family(snap, POOL_CLIENTS), undefined, 'PGlite has no pool');
    assert.equal(family(snap, 'agenticpet_process_resident_memory_bytes'), undefined, 'only what the page charts');
    assert.ok(res.body.length < 4_000, `a small payload, got ${res.body.length} bytes`);
  });

  it("leaves the dashboard's own polling out of the request figures", async () => {
    const first = (await admin('GET', '/v1/ops/metrics')).json() as OpsMetrics;
    await client(rt, null)('GET', '/v1/ops/metrics');
    await admin('GET', '/ops');
    const second = (await admin('GET', '/v1/ops/metrics')).json() as OpsMetrics;
    assert.equal(httpTotal(second), httpTotal(first));
    await admin('GET', '/healthz');
    assert.equal(httpTotal((await admin('GET', '/v1/ops/metrics')).json() as OpsMetrics), httpTotal(first) + 1);
  });
});

describe('the ops snapshot', () => {
  it('sums dropped labels, merges lag by max, keeps cache and group-commit figures, skips NaN', async () => {
    const registry = new Registry();
    const m = createMetrics(registry, { poolStats: () => ({ total: 4, idle: 1, waiting: 2, max: 10 }) });
    const services = { metricsView: async () => registry };

    m.http.observeRequest('GET', '/v1/patients/:id', 200, 0.003);
    m.http.observeRequest('POST', '/v1/owners', 200, 0.03);
    m.http.observeRequest('GET', '/v1/ops/metrics', 200, 0.001);
    m.http.observeRequest('GET', '/v1/owners', 503, 0.2);
    for (const hit of [true, true, true, true, true, false]) m.cache.cacheLookup('api-key', hit);
    for (const n of [1, 3, 3, 20]) m.groupCommitBatch(n);

    const snap = await metricsSnapshot(services);
    const http = histogram(snap, HTTP_DURATION);
    assert.deepEqual(http.series.map((s) => [s.labels.status_code, s.count]).sort(), [['200', 2], ['503', 1]], 'the ops route is left out; routes summed');
    const ok = http.series.find((s) => s.labels.status_code === '200')!;
    assert.ok(Math.abs(ok.sum - 0.033) < 1e-9);
    assert.equal(ok.buckets[http.bounds.indexOf(0.005)], 1);
    assert.equal(ok.buckets[http.bounds.indexOf(0.05)], 2);

    assert.deepEqual(
      scalar(snap, CACHE_REQUESTS).series.map((s) => [s.labels, s.value]),
      [[{ cache: 'api-key', result: 'hit' }, 5], [{ cache: 'api-key', result: 'miss' }, 1]],
    );
    const b = histogram(snap, GROUP_COMMIT_BATCH);
    assert.deepEqual(b.bounds.slice(0, 4), [1, 2, 4, 8]);
    assert.deepEqual(b.series.map((s) => [s.labels, s.count, s.sum, s.buckets.slice(0, 4)]), [[{}, 4, 27, [1, 1, 3, 3]]]);
    assert.deepEqual([POOL_CLIENTS, POOL_IDLE, POOL_WAITING, POOL_MAX].map((n) => scalar(snap, n).series[0]?.value), [4, 1, 2, 10]);

    const lag: MetricFamily[] = [
      { name: 'agenticpet_nodejs_eventloop_lag_p99_seconds', type: 'gauge', values: [{ value: 0.01, labels: { pid: '1' } }, { value: 0.04, labels: { pid: '2' } }] },
      { name: 'agenticpet_nodejs_eventloop_lag_p50_seconds', type: 'gauge', values: [{ value: Number.NaN, labels: {} }] },
    ];
    const selected = selectOpsFamilies(lag);
    assert.deepEqual(selected.find((f) => f.name === 'agenticpet_nodejs_eventloop_lag_p99_seconds'), { name: 'agenticpet_nodejs_eventloop_lag_p99_seconds', type: 'gauge', series: [{ labels: {}, value: 0.04 }] }, 'lag merges by max');
    assert.deepEqual(selected.find((f) => f.name === 'agenticpet_nodejs_eventloop_lag_p50_seconds')?.series, [], 'NaN is no figure');
  });
});

/** What the page's deltas.js computes for one interval (plain browser JavaScript, no types). */
interface PagePoint {
  dt: number;
  present: Record<string, boolean>;
  values: {
    throughput?: { rps: number };
    latency?: { p50: number | null; p90: number | null; p99: number | null };
    errors?: { pct: number | null };
    triage: Record<string, number>;
    cache: Record<string, number | null>;
    batch?: { mean: number | null; p99: number | null };
    lag: { p50: number | null; p99: number | null };
  };
  counts: { requests?: number; errors?: number; triage: Record<string, number> };
}
const loadPagePoint = async () =>
  ((await import(pathToFileURL(path.join(ROOT, 'src/http/ops/deltas.js')).href)) as { point(cur: OpsMetrics, prev: OpsMetrics): PagePoint }).point;

describe("the page's arithmetic between two snapshots (deltas.js)", () => {
  it('gives rates, the 5xx share, histogram percentiles, the triage mix, hit ratio and batch mean of the interval', async () => {
    const point = await loadPagePoint();
    const registry = new Registry();
    const m = createMetrics(registry, { defaultMetrics: false });
    m.http.observeRequest('GET', '/v1/owners', 200, 4); // before the interval: must not count
    m.diagnoses.diagnosisRecorded('routine');
    const prev = { ...(await metricsSnapshot({ metricsView: async () => registry })), takenAt: 1_000_000 };
    for (let i = 0; i < 9; i++) m.http.observeRequest('GET', '/v1/patients/:id', 200, 0.003);
    m.http.observeRequest('POST', '/v1/diagnoses', 500, 0.2);
    m.diagnoses.diagnosisRecorded('emergency');
    m.diagnoses.diagnosisRecorded('emergency');
    for (const hit of [true, true, true, false]) m.cache.cacheLookup('api-key', hit);
    for (const n of [2, 4]) m.groupCommitBatch(n);
    const cur = { ...(await metricsSnapshot({ metricsView: async () => registry })), takenAt: 1_002_000 };

    const p = point(cur, prev);
    assert.equal(p.dt, 2);
    assert.equal(p.values.throughput?.rps, 5);
    assert.equal(p.values.errors?.pct, 10);
    assert.equal(p.counts.requests, 10);
    // 9 in (2.5, 5] ms and 1 in (100, 250] ms: rank 5 and rank 9.9, linear in their bucket.
    assert.ok(Math.abs(p.values.latency!.p50! - (2.5 + 2.5 * (5 / 9))) < 1e-9, `p50 ${p.values.latency!.p50}`);
    assert.ok(Math.abs(p.values.latency!.p99! - (100 + 150 * 0.9)) < 1e-9, `p99 ${p.values.latency!.p99}`);
    assert.deepEqual(p.values.triage, { routine: 0, emergency: 60 }, 'per minute');
    assert.deepEqual(p.counts.triage, { routine: 0, emergency: 2 });
    assert.deepEqual(p.values.cache, { 'api-key': 75 });
    assert.equal(p.values.batch?.mean, 3);
    assert.equal(p.present.pool, false);
    assert.equal(p.present.lag, false, 'default metrics were off');

    // A process restart: counters below the previous snapshot count from zero.
    const restarted = new Registry();
    const r = createMetrics(restarted, { defaultMetrics: false });
    r.http.observeRequest('GET', '/healthz', 200, 0.001);
    r.diagnoses.diagnosisRecorded('emergency');
    const after = point({ ...(await metricsSnapshot({ metricsView: async () => restarted })), takenAt: 1_004_000 }, cur);
    assert.equal(after.counts.requests, 1);
    assert.equal(after.counts.triage.emergency, 1);
    assert.equal(after.values.errors?.pct, 0);
    // Nothing in an interval: no percentile rather than a made-up one.
    const idle = point({ ...cur, takenAt: 1_004_000 }, cur);
    assert.equal(idle.values.throughput?.rps, 0);
    assert.deepEqual(idle.values.latency, { p50: null, p90: null, p99: null });
    assert.equal(idle.values.errors?.pct, null);
  });
});

describe('GET /ops and its files', () => {
  let rt: TestRuntime;
  let anon: Call;
  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open(), ENV);
    anon = client(rt, null);
  });
  after(async () => {
    await rt?.close();
  });

  it('serves the page without a key, same-origin only, with nothing secret in it', async () => {
    const res = await anon('GET', '/ops');
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /^text\/html/);
    const csp = res.headers['content-security-policy'] as string;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self';/);
    assert.match(csp, /connect-src 'self';/);
    assert.doesNotMatch(res.body, /https?:\/\//, 'no external URL');
    assert.doesNotMatch(res.body, /apk_[A-Za-z0-9]{8}/, 'no key');
    const bootstrap = path.join(rt.dataDir, 'bootstrap-key');
    if (fs.existsSync(bootstrap)) assert.ok(!res.body.includes(fs.readFileSync(bootstrap, 'utf8').trim()));
    const linked = [...res.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((url) => !url.startsWith('data:'));
    assert.ok(linked.length >= 4);
    for (const url of linked) {
      assert.match(url, /^\/ops\/assets\//, 'only the dashboard\'s own files');
      assert.equal((await anon('GET', url)).statusCode, 200, url);
    }
  });

  it('serves uPlot and the page script from disk, and nothing else', async () => {
    const js = await anon('GET', '/ops/assets/uPlot.iife.min.js');
    assert.equal(js.statusCode, 200);
    assert.match(js.headers['content-type'] as string, /^text\/javascript/);
    assert.equal(js.body, fs.readFileSync(path.join(ROOT, 'node_modules/uplot/dist/uPlot.iife.min.js'), 'utf8'));
    assert.match((await anon('GET', '/ops/assets/uPlot.min.css')).headers['content-type'] as string, /^text\/css/);
    assert.equal((await anon('GET', '/ops/assets/ops.js')).body, fs.readFileSync(path.join(ROOT, 'src/http/ops/ops.js'), 'utf8'));
    for (const url of ['/ops/assets/index.html', '/ops/assets/..%2F..%2F..%2Fpackage.json', '/ops/assets/ops.ts', '/ops/assets/%2e%2e']) {
      const res = await anon('GET', url);
      assert.equal(res.statusCode, 404, url);
      assert.match(res.headers['content-type'] as string, /^application\/problem\+json/);
    }
  });

  it('finds the files from src/ (tsx) and from dist/ (after npm run build)', () => {
    const assets = path.join(ROOT, 'src/http/ops') + path.sep;
    assert.equal(findOpsAssetDir(opsAssetCandidates(pathToFileURL(path.join(ROOT, 'src/http/routes/ops.ts')).href)), assets);
    assert.equal(findOpsAssetDir(opsAssetCandidates(pathToFileURL(path.join(ROOT, 'dist/http/routes/ops.js')).href)), assets);
    assert.equal(findOpsAssetDir(opsAssetCandidates(pathToFileURL('/nowhere/at/all/x/y/ops.js').href)), undefined);
  });
});

/** Posts diagnoses (and a 404 now and then) until stopped or until one fails. */
function traffic(base: string, key: string, perSecond: () => number): { stop(): Promise<{ sent: number; failure: string | null }> } {
  let running = true;
  let sent = 0;
  let failure: string | null = null;
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const loop = (async () => {
    while (running && failure === null) {
      const started = Date.now();
      const body = sent % 3 === 1 ? MILD : GDV;
      try {
        const res = await fetch(`${base}/v1/diagnoses`, { method: 'POST', headers, body: JSON.stringify(body) });
        const text = await res.text();
        if (res.status !== 201) failure = `POST /v1/diagnoses answered ${res.status}: ${text}`;
        if (sent % 5 === 0) await (await fetch(`${base}/v1/patients/0190f3b2-0000-7000-8000-000000000000`, { headers })).arrayBuffer();
      } catch (err) {
        failure = `POST /v1/diagnoses failed: ${(err as Error).message}`;
      }
      sent++;
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 / perSecond() - (Date.now() - started))));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { sent, failure };
    },
  };
}

// Page-side expressions are strings: the project's TypeScript lib has no DOM types.
const STORED_KEY = "sessionStorage.getItem('agenticpet.ops.key')";
const readout = (page: Page, id: string) => page.locator(`[data-readout="${id}"]`).innerText();

// Polled from here: the page's CSP forbids the eval that waitForFunction uses for a predicate.
async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('the dashboard in a browser', { skip: fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium); the browser test needs it` }, () => {
  let rt: TestRuntime;
  let browser: Browser;
  let base: string;
  let adminKey: string;
  let vetKey: string;

  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open(), ENV);
    adminKey = (await rt.newClinic('Browser clinic')).key;
    const vet = await client(rt, adminKey)('POST', '/v1/api-keys', { body: { name: 'vet desk', role: 'vet' } });
    vetKey = vet.json().key;
    base = await rt.runtime.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await rt?.close();
  });

  it('charts live traffic from the snapshot, keeps the key in the tab, and shows 401 and 403 plainly', { timeout: SCREENSHOT ? 240_000 : 90_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1 });
    const problems: string[] = [];
    const requested: string[] = [];
    page.on('console', (msg) => {
      // Failed loads are reported by URL below; the 401 and 403 are expected.
      if (msg.type() === 'error' && !/^Failed to load resource/.test(msg.text())) problems.push(msg.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('request', (req) => requested.push(req.url()));
    page.on('response', (res) => {
      if (res.status() === 404) problems.push(`404 for ${res.url()}`);
    });

    await page.goto(`${base}/ops`);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#key', adminKey);
    await page.click('button[type="submit"]');
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(STORED_KEY), adminKey);

    // Varying load, so the charts have a shape; longer when taking the screenshot.
    const t0 = Date.now();
    const load = traffic(base, adminKey, () => (SCREENSHOT ? 6 + 5 * Math.sin((Date.now() - t0) / 9000) : 8));
    try {
      await until('a throughput above 0 req/s', async () => Number.parseFloat((await readout(page, 'throughput')).replace(/,/g, '')) > 0, 30_000);
      await until('diagnoses in the triage mix', async () => /^[1-9][\d,]* diagnoses$/.test(await readout(page, 'triage')), 15_000);
      await until('three points in the window', async () => Number(await page.locator('#card-throughput').getAttribute('data-points')) >= 3, 15_000);
      if (SCREENSHOT) await new Promise((r) => setTimeout(r, 90_000));
    } finally {
      const { sent, failure } = await load.stop();
      assert.equal(failure, null);
      assert.ok(sent > 0);
    }

    assert.match(await readout(page, 'throughput'), /^\d[\d,]*\.\d req\/s$/);
    assert.match(await readout(page, 'latency'), /^(p99 [\d.,]+ ms|idle)$/);
    assert.match(await readout(page, 'errors'), /^0\.0 %$/, 'a 404 is no 5xx');
    assert.match(await readout(page, 'lag'), /^p99 [\d.,]+ ms$/);
    for (const id of ['throughput', 'latency', 'errors', 'triage', 'lag']) {
      assert.equal(await page.locator(`#card-${id} canvas`).count(), 1, `a chart for ${id}`);
      assert.ok(await page.locator(`#card-${id} .nodata`).isHidden(), `${id}: ${await page.locator(`#card-${id}`).innerText()}`);
    }
    // PGlite has no pool: said plainly, with no empty chart.
    assert.equal(await readout(page, 'pool'), 'no data');
    assert.match(await page.locator('#card-pool .nodata').innerText(), /^no data: no PostgreSQL pool/);
    assert.equal(await page.locator('#card-pool canvas').count(), 0);
    // The cache and group-commit cards show either a chart or why there is none.
    for (const id of ['cache', 'batch']) {
      const charted = (await page.locator(`#card-${id} canvas`).count()) === 1;
      if (charted) assert.doesNotMatch(await readout(page, id), /no data/);
      else assert.match(await page.locator(`#card-${id} .nodata`).innerText(), /^no data/);
    }
    // The chart holds a line, not only axes: pixels of the series' blue (#2563eb) on its canvas.
    const blue = await page.evaluate<number>(`(() => {
      const canvas = document.querySelector('#card-throughput canvas');
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if (Math.abs(data[i] - 37) < 30 && Math.abs(data[i + 1] - 99) < 30 && Math.abs(data[i + 2] - 235) < 30 && data[i + 3] > 200) n++;
      return n;
    })()`);
    assert.ok(blue > 30, `the throughput line is drawn (${blue} pixels)`);
    assert.match(await page.locator('#card-throughput .u-legend').innerText(), /requests\/s/);

    if (SCREENSHOT) {
      await page.evaluate('window.scrollTo(0, 0)');
      fs.mkdirSync(path.join(ROOT, 'docs/img'), { recursive: true });
      await page.screenshot({ path: path.join(ROOT, 'docs/img/ops.png'), fullPage: true });
    }

    // A reload keeps the key (sessionStorage), without asking again.
    await page.reload();
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    assert.ok(await page.locator('#login').isHidden());

    // A wrong key: the 401 is shown and the key is not kept.
    await page.click('#forget');
    await page.fill('#key', 'apk_this-is-not-a-key-of-this-service');
    await page.click('button[type="submit"]');
    await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.locator('#error').innerText(), /^401 Unauthorized: the key was not accepted/);
    assert.ok(await page.locator('#login').isVisible());
    assert.equal(await page.evaluate(STORED_KEY), null);

    // A vet's key: 403, shown plainly.
    await page.fill('#key', vetKey);
    await page.click('button[type="submit"]');
    await until('the 403 shown', async () => /^403 Forbidden/.test(await page.locator('#error').innerText()), 10_000);
    assert.match(await page.locator('#error').innerText(), /not an admin key/);

    assert.deepEqual(problems, [], 'no script errors or CSP violations');
    const foreign = requested.filter((u) => !u.startsWith(`${base}/`));
    assert.deepEqual(foreign, [], 'every request goes to this server');
    await page.close();
  });
});
