/*
 * Arithmetic on two consecutive snapshots of GET /v1/ops/metrics (cumulative counters, gauges
 * and histogram buckets): the increases, rates and percentiles of the interval between them.
 * Pure functions, no DOM; ops.js charts what point() returns.
 */

export const M = {
  http: 'agenticpet_http_request_duration_seconds',
  diagnoses: 'agenticpet_diagnoses_total',
  cache: 'agenticpet_cache_requests_total',
  poolOpen: 'agenticpet_db_pool_clients',
  poolIdle: 'agenticpet_db_pool_idle_clients',
  poolWaiting: 'agenticpet_db_pool_waiting_clients',
  poolMax: 'agenticpet_db_pool_max_clients',
  batch: 'agenticpet_group_commit_batch_size',
  lagP50: 'agenticpet_nodejs_eventloop_lag_p50_seconds',
  lagP99: 'agenticpet_nodejs_eventloop_lag_p99_seconds',
};

const labelKey = (labels) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
const familyOf = (snap, name) => snap.families.find((f) => f.name === name);
// A counter that went down restarted from zero (a process restart): its value is the increase.
const increase = (cur, prev) => (prev === undefined || cur < prev ? cur : cur - prev);

function counterIncreases(cur, prev) {
  if (cur === undefined) return [];
  const before = new Map((prev?.series ?? []).map((s) => [labelKey(s.labels), s.value]));
  return cur.series.map((s) => ({ labels: s.labels, n: increase(s.value, before.get(labelKey(s.labels))) }));
}

/** The observations between two snapshots of a histogram, summed over the series `keep` accepts. */
function histogramIncrease(cur, prev, keep = () => true) {
  if (cur === undefined) return null;
  const sameBounds = prev !== undefined && prev.bounds.length === cur.bounds.length && prev.bounds.every((b, i) => b === cur.bounds[i]);
  const before = new Map(sameBounds ? prev.series.map((s) => [labelKey(s.labels), s]) : []);
  const out = { bounds: cur.bounds, count: 0, sum: 0, buckets: cur.bounds.map(() => 0) };
  for (const s of cur.series) {
    if (!keep(s.labels)) continue;
    let p = before.get(labelKey(s.labels));
    if (p !== undefined && s.count < p.count) p = undefined;
    out.count += s.count - (p?.count ?? 0);
    out.sum += s.sum - (p?.sum ?? 0);
    s.buckets.forEach((c, i) => (out.buckets[i] += c - (p?.buckets[i] ?? 0)));
  }
  return out;
}

/** Like PromQL's histogram_quantile: linear within the bucket; a rank in +Inf reports the last bound. */
function quantile(q, h) {
  if (h === null || !(h.count > 0)) return null;
  const rank = q * h.count;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    const c = h.buckets[i];
    if (c >= rank) {
      const inBucket = c - below;
      return inBucket <= 0 ? h.bounds[i] : lower + (h.bounds[i] - lower) * ((rank - below) / inBucket);
    }
    lower = h.bounds[i];
    below = c;
  }
  return h.bounds.length > 0 ? h.bounds[h.bounds.length - 1] : null;
}

const gauge = (snap, name) => {
  const f = familyOf(snap, name);
  return f === undefined || f.series.length === 0 ? undefined : f.series.reduce((a, s) => a + s.value, 0);
};

/** One point of every chart from two consecutive snapshots; null marks "nothing to measure". */
export function point(cur, prev) {
  const dt = (cur.takenAt - prev.takenAt) / 1000;
  const f = (name) => [familyOf(cur, name), familyOf(prev, name)];
  const p = { t: cur.takenAt / 1000, dt, present: {}, values: {}, counts: {} };

  const [http, httpBefore] = f(M.http);
  p.present.throughput = p.present.latency = p.present.errors = http !== undefined;
  const all = histogramIncrease(http, httpBefore);
  const errors = histogramIncrease(http, httpBefore, (l) => /^5/.test(l.status_code ?? ''));
  if (all !== null) {
    p.values.throughput = { rps: all.count / dt };
    const ms = (q) => { const v = quantile(q, all); return v === null ? null : v * 1000; };
    p.values.latency = { p50: ms(0.5), p90: ms(0.9), p99: ms(0.99) };
    p.values.errors = { pct: all.count > 0 ? (100 * errors.count) / all.count : null };
    p.counts.requests = all.count;
    p.counts.errors = errors.count;
  }

  const [diag, diagBefore] = f(M.diagnoses);
  p.present.triage = diag !== undefined;
  p.values.triage = {};
  p.counts.triage = {};
  for (const { labels, n } of counterIncreases(diag, diagBefore)) {
    const level = labels.triage_level ?? 'unknown';
    p.values.triage[level] = (p.values.triage[level] ?? 0) + (60 * n) / dt;
    p.counts.triage[level] = (p.counts.triage[level] ?? 0) + n;
  }

  const [cache, cacheBefore] = f(M.cache);
  p.present.cache = cache !== undefined;
  p.values.cache = {};
  p.counts.cache = {};
  for (const { labels, n } of counterIncreases(cache, cacheBefore)) {
    const c = (p.counts.cache[labels.cache ?? 'cache'] ??= { hit: 0, miss: 0 });
    if (labels.result === 'hit' || labels.result === 'miss') c[labels.result] += n;
  }
  for (const [name, c] of Object.entries(p.counts.cache)) p.values.cache[name] = c.hit + c.miss > 0 ? (100 * c.hit) / (c.hit + c.miss) : null;

  const open = gauge(cur, M.poolOpen);
  p.present.pool = open !== undefined;
  if (open !== undefined) p.values.pool = { open, idle: gauge(cur, M.poolIdle) ?? null, waiting: gauge(cur, M.poolWaiting) ?? null, max: gauge(cur, M.poolMax) ?? null };

  const [batch, batchBefore] = f(M.batch);
  p.present.batch = batch !== undefined;
  const b = histogramIncrease(batch, batchBefore);
  if (b !== null) {
    p.values.batch = { mean: b.count > 0 ? b.sum / b.count : null, p99: quantile(0.99, b) };
    p.counts.commits = b.count;
  }

  const lag50 = gauge(cur, M.lagP50);
  const lag99 = gauge(cur, M.lagP99);
  p.present.lag = lag99 !== undefined;
  p.values.lag = { p50: lag50 === undefined ? null : lag50 * 1000, p99: lag99 === undefined ? null : lag99 * 1000 };
  return p;
}
