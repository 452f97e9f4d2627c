/*
 * The /ops page. Polls GET /v1/ops/metrics every 2 s with the admin key kept in sessionStorage,
 * and charts figures computed from the difference between two consecutive snapshots (the
 * snapshot holds cumulative counters and histogram buckets), over a rolling 5-minute window.
 * Plain browser JavaScript: no build step, no network access beyond this server.
 */
import { point } from './deltas.js';

const POLL_MS = 2000;
const WINDOW_S = 300;
const KEY_STORE = 'agenticpet.ops.key';
const ENDPOINT = '/v1/ops/metrics';
const PALETTE = ['#2563eb', '#16a34a', '#9333ea', '#d97706', '#0891b2', '#db2777', '#4b5563'];
const TRIAGE = { emergency: '#dc2626', urgent: '#ea580c', routine: '#2563eb', 'self-care': '#16a34a' };

// ---- formatting ----

const num = (v, digits = 1) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const int = (v) => Math.round(v).toLocaleString('en');
const ms = (v) => (v === null || v === undefined ? '–' : v >= 100 ? `${num(v, 0)} ms` : v >= 1 ? `${num(v, 1)} ms` : `${num(v, 2)} ms`);
// Axis ticks: as short as they can be while still telling neighbours apart.
const tick = (v) => (v === 0 ? '0' : v.toLocaleString('en', { maximumFractionDigits: 2 }));
const tickMs = (v) => (v >= 1000 ? `${tick(v / 1000)} s` : `${tick(v)} ms`);
const clock = (t) => new Date(t * 1000).toLocaleTimeString('en-GB');
const pct = (v) => (v === null || v === undefined ? '–' : `${num(v, v > 0 && v < 1 ? 2 : 1)} %`);
const sumOf = (points, get) => points.reduce((a, p) => a + (get(p) ?? 0), 0);
const last = (points) => points[points.length - 1];
const span = (points) => {
  const s = points.length === 0 ? 0 : Math.round(sumOf(points, (p) => p.dt));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
};

// ---- the charts ----

const CHARTS = [
  {
    id: 'throughput', title: 'Throughput', axis: tick, fill: true,
    series: [['rps', 'requests/s', PALETTE[0]]],
    readout: (pts) => [`${num(last(pts).values.throughput?.rps, 1)} req/s`, `${int(sumOf(pts, (p) => p.counts.requests))} requests in the last ${span(pts)} (dashboard polling excluded)`],
  },
  {
    id: 'latency', title: 'Latency, all routes', axis: tickMs,
    series: [['p50', 'p50', PALETTE[1]], ['p90', 'p90', PALETTE[3]], ['p99', 'p99', '#dc2626']],
    readout: (pts) => {
      const l = last(pts).values.latency;
      return l?.p99 == null ? ['idle', 'no requests in the last interval'] : [`p99 ${ms(l.p99)}`, `p50 ${ms(l.p50)} · p90 ${ms(l.p90)} · from histogram buckets, last ${num(last(pts).dt, 0)} s`];
    },
  },
  {
    id: 'errors', title: 'Error rate (5xx share of responses)', axis: (v) => `${tick(v)} %`, fill: true, minMax: 1,
    series: [['pct', '5xx', '#dc2626']],
    readout: (pts) => {
      const total = sumOf(pts, (p) => p.counts.requests);
      const bad = sumOf(pts, (p) => p.counts.errors);
      return [pct(total > 0 ? (100 * bad) / total : null), `${int(bad)} of ${int(total)} responses were 5xx in the last ${span(pts)}`];
    },
  },
  {
    id: 'triage', title: 'Triage mix (diagnoses per minute)', axis: tick, order: Object.keys(TRIAGE), colors: TRIAGE, zeroFill: true,
    absent: 'no data: agenticpet_diagnoses_total is not reported', idle: 'no diagnoses in this window yet',
    readout: (pts) => {
      const totals = {};
      for (const p of pts) for (const [k, n] of Object.entries(p.counts.triage ?? {})) totals[k] = (totals[k] ?? 0) + n;
      const all = Object.values(totals).reduce((a, n) => a + n, 0);
      const parts = Object.keys(TRIAGE).filter((k) => k in totals).concat(Object.keys(totals).filter((k) => !(k in TRIAGE)));
      return [`${int(all)} diagnoses`, parts.length === 0 ? `none in the last ${span(pts)}` : `${parts.map((k) => `${k} ${int(totals[k])}`).join(' · ')} (last ${span(pts)})`];
    },
  },
  {
    id: 'cache', title: 'Cache hit ratio', axis: (v) => `${tick(v)} %`, range: [0, 100],
    absent: 'no data: agenticpet_cache_requests_total is not reported', idle: 'no data: no cache lookups in this window yet',
    readout: (pts) => {
      const totals = {};
      for (const p of pts) for (const [k, c] of Object.entries(p.counts.cache ?? {})) {
        const t = (totals[k] ??= { hit: 0, miss: 0 });
        t.hit += c.hit;
        t.miss += c.miss;
      }
      const hit = Object.values(totals).reduce((a, t) => a + t.hit, 0);
      const all = Object.values(totals).reduce((a, t) => a + t.hit + t.miss, 0);
      const per = Object.entries(totals).map(([k, t]) => `${k} ${pct(t.hit + t.miss > 0 ? (100 * t.hit) / (t.hit + t.miss) : null)}`);
      return [all > 0 ? `${pct((100 * hit) / all)} hits` : 'no lookups', `${per.join(' · ') || 'no caches yet'} (last ${span(pts)})`];
    },
  },
  {
    id: 'lag', title: 'Event-loop lag', axis: tickMs,
    series: [['p50', 'p50', PALETTE[1]], ['p99', 'p99', '#dc2626']],
    absent: 'no data: agenticpet_nodejs_eventloop_lag_p99_seconds is not reported',
    readout: (pts) => {
      const v = last(pts).values.lag;
      return [`p99 ${ms(v?.p99)}`, `p50 ${ms(v?.p50)} · since the previous scrape`];
    },
  },
  {
    id: 'pool', title: 'Database pool (connections)', axis: tick, minMax: 2,
    series: [['open', 'open', PALETTE[0]], ['idle', 'idle', PALETTE[1]], ['waiting', 'waiting', '#dc2626'], ['max', 'max', '#9aa5b1', [4, 4]]],
    absent: 'no data: no PostgreSQL pool is reported (the embedded PGlite store has none)',
    readout: (pts) => {
      const v = last(pts).values.pool;
      return v === undefined ? ['no data', ''] : [`${num(v.open, 0)} open${v.max == null ? '' : ` of ${num(v.max, 0)}`}`, `${num(v.idle, 0)} idle · ${num(v.waiting, 0)} waiting for a connection`];
    },
  },
  {
    id: 'batch', title: 'Group-commit batch size', axis: tick, minMax: 2,
    series: [['mean', 'mean', PALETTE[2]], ['p99', 'p99', PALETTE[3]]],
    absent: 'no data: agenticpet_group_commit_batch_size is not reported', idle: 'no data: no group commits in this window yet',
    readout: (pts) => {
      const v = last(pts).values.batch;
      const commits = sumOf(pts, (p) => p.counts.commits);
      return v?.mean == null ? ['idle', `${int(commits)} commits in the last ${span(pts)}`] : [`mean ${num(v.mean, 1)}`, `p99 ${num(v.p99, 1)} · ${int(commits)} commits in the last ${span(pts)}`];
    },
  },
];

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const charts = CHARTS.map((spec) => {
  const card = el('section', 'card');
  card.id = `card-${spec.id}`;
  const readout = el('div', 'readout', '–');
  readout.dataset.readout = spec.id;
  const sub = el('div', 'sub');
  const plot = el('div', 'plot');
  plot.hidden = true;
  const nodata = el('div', 'nodata', 'waiting for the second sample…');
  card.append(el('h2', '', spec.title), readout, sub, plot, nodata);
  return { spec, card, readout, sub, plot, nodata, u: null, keys: '' };
});

/** The series a chart shows: fixed, or one per label value seen in the window (triage, caches). */
function seriesOf(spec, pts) {
  if (spec.series) return spec.series;
  const seen = new Set();
  for (const p of pts) for (const k of Object.keys(p.values[spec.id] ?? {})) seen.add(k);
  const order = spec.order ?? [];
  const keys = [...seen].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || (a < b ? -1 : 1));
  let i = 0;
  return keys.map((k) => [k, k, spec.colors?.[k] ?? PALETTE[i++ % PALETTE.length]]);
}

const AXIS = { stroke: '#5f6b7a', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#dde1e6', width: 1 }, font: '11px system-ui, sans-serif' };

function makePlot(c, series, data) {
  const { spec } = c;
  const opts = {
    width: Math.max(200, c.plot.clientWidth),
    height: 200,
    cursor: { sync: { key: 'ops' }, drag: { x: false, y: false } },
    // The headline above each chart gives the current figures; the legend is a key.
    legend: { live: false },
    scales: {
      x: { time: true },
      y: { range: spec.range ? () => spec.range : (_u, _min, max) => [0, Math.max(spec.minMax ?? 0, max > 0 ? max * 1.15 : 1)] },
    },
    axes: [
      { ...AXIS, space: 70, values: (_u, vals) => vals.map(clock) },
      { ...AXIS, size: 64, values: (_u, vals) => vals.map((v) => spec.axis(v)) },
    ],
    series: [
      {},
      ...series.map(([, label, color, dash]) => ({
        label,
        stroke: color,
        width: 2,
        dash,
        fill: spec.fill ? `${color}1a` : undefined,
      })),
    ],
  };
  return new uPlot(opts, data, c.plot);
}

function render(pts) {
  const lastPoint = last(pts);
  for (const c of charts) {
    c.card.dataset.points = String(pts.length);
    const series = seriesOf(c.spec, pts);
    const hasData = pts.some((p) => Object.values(p.values[c.spec.id] ?? {}).some((v) => v != null));
    const present = lastPoint.present[c.spec.id];
    if (!hasData || series.length === 0) {
      c.u?.destroy();
      c.u = null;
      c.keys = '';
      c.card.classList.add('empty');
      c.plot.hidden = true;
      c.nodata.hidden = false;
      c.nodata.textContent = present ? (c.spec.idle ?? `nothing measured in the last ${span(pts)}`) : (c.spec.absent ?? 'no data');
      c.readout.textContent = 'no data';
      c.sub.textContent = '';
      continue;
    }
    c.card.classList.remove('empty');
    c.nodata.hidden = true;
    c.plot.hidden = false;
    // A level with no diagnoses in an interval had a rate of zero, not an unknown one.
    const missing = (p) => (c.spec.zeroFill && p.present[c.spec.id] ? 0 : null);
    const data = [pts.map((p) => p.t), ...series.map(([k]) => pts.map((p) => p.values[c.spec.id]?.[k] ?? missing(p)))];
    const keys = series.map(([k]) => k).join('|');
    if (c.u === null || c.keys !== keys) {
      c.u?.destroy();
      c.u = makePlot(c, series, data);
      c.keys = keys;
    } else {
      c.u.setData(data);
    }
    const [main, sub] = c.spec.readout(pts);
    c.readout.textContent = main;
    c.sub.textContent = sub;
  }
}

// ---- polling and the key ----

let key = null;
let timer = null;
let generation = 0;
let previous = null;
let points = [];

function setStatus(text, cls) {
  const s = $('status');
  s.textContent = text;
  s.className = cls ?? '';
}

function showError(text) {
  const e = $('error');
  e.textContent = text;
  e.hidden = text === null;
}

async function problemText(res) {
  let detail = '';
  try {
    const body = await res.json();
    detail = [body.title, body.detail].filter(Boolean).join(': ');
  } catch {
    detail = res.statusText;
  }
  return detail;
}

function stop() {
  generation++;
  clearTimeout(timer);
  timer = null;
}

function showLogin(message) {
  stop();
  key = null;
  sessionStorage.removeItem(KEY_STORE);
  $('dashboard').hidden = true;
  $('forget').hidden = true;
  $('login').hidden = false;
  setStatus('Not connected');
  showError(message ?? null);
  $('key').focus();
}

async function poll(gen) {
  const started = Date.now();
  try {
    const ctl = new AbortController();
    const timeout = setTimeout(() => ctl.abort(), 5000);
    let res;
    try {
      res = await fetch(ENDPOINT, { headers: { authorization: `Bearer ${key}`, accept: 'application/json' }, cache: 'no-store', signal: ctl.signal });
    } finally {
      clearTimeout(timeout);
    }
    if (gen !== generation) return;
    if (res.status === 401 || res.status === 403) {
      const why = res.status === 401 ? 'the key was not accepted' : 'this key is not an admin key';
      showLogin(`${res.status} ${res.status === 401 ? 'Unauthorized' : 'Forbidden'}: ${why}. ${await problemText(res)}`);
      return;
    }
    if (!res.ok) throw new Error(`${res.status} ${await problemText(res)}`);
    const snap = await res.json();
    if (gen !== generation) return;
    showError(null);
    if (previous !== null && snap.takenAt > previous.takenAt) {
      points.push(point(snap, previous));
      const from = snap.takenAt / 1000 - WINDOW_S;
      points = points.filter((p) => p.t >= from);
      render(points);
    }
    previous = snap;
    const when = new Date(snap.takenAt).toLocaleTimeString('en-GB');
    setStatus(points.length === 0 ? `Connected · first sample at ${when}, charts start with the next one` : `Live · updated ${when} · every ${POLL_MS / 1000} s · scope: ${snap.scope} · window ${span(points)}`, 'live');
  } catch (err) {
    if (gen !== generation) return;
    const reason = err instanceof Error ? (err.name === 'AbortError' ? 'timed out' : err.message) : String(err);
    showError(`Cannot read ${ENDPOINT}: ${reason}. Retrying every ${POLL_MS / 1000} s.`);
    setStatus(previous === null ? 'Not connected' : `Stale · last update ${new Date(previous.takenAt).toLocaleTimeString('en-GB')}`, 'stale');
  }
  if (gen === generation) timer = setTimeout(() => poll(gen), Math.max(0, POLL_MS - (Date.now() - started)));
}

function connect(k) {
  stop();
  key = k;
  sessionStorage.setItem(KEY_STORE, k);
  previous = null;
  points = [];
  for (const c of charts) {
    c.u?.destroy();
    c.u = null;
    c.keys = '';
    c.plot.hidden = true;
    c.nodata.hidden = false;
    c.nodata.textContent = 'waiting for the second sample…';
    c.readout.textContent = '–';
    c.sub.textContent = '';
  }
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('forget').hidden = false;
  showError(null);
  setStatus('Connecting…');
  poll(generation);
}

function init() {
  $('dashboard').append(...charts.map((c) => c.card));
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const k = $('key').value.trim();
    $('key').value = '';
    if (k !== '') connect(k);
  });
  $('forget').addEventListener('click', () => showLogin());
  let resize = null;
  window.addEventListener('resize', () => {
    clearTimeout(resize);
    resize = setTimeout(() => {
      for (const c of charts) c.u?.setSize({ width: Math.max(200, c.plot.clientWidth), height: 200 });
    }, 100);
  });
  const stored = sessionStorage.getItem(KEY_STORE);
  if (stored) connect(stored);
  else showLogin();
}

init();
