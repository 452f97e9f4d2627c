/**
 * npm run bench:saturation -- [--mode embedded|postgres|both] [--duration 10] [--connections 32]
 *
 * Starts the built service itself (embedded PGlite with in-process sessions, or PostgreSQL in a
 * database of its own that it drops afterwards plus Redis under a key prefix of its own), then
 * measures at saturation, one route after another, in one run: GET /healthz (the baseline),
 * POST /v1/patients, GET /v1/patients/:id and POST /v1/diagnoses (the shipped vignettes, in a
 * fixed order, durable). Loopback only, bounded in time. Prints a table and writes
 * bench/results/saturation-<mode>-<time>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'both' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    'pg-url': { type: 'string', default: process.env.AGENTICPET_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    'redis-url': { type: 'string', default: process.env.AGENTICPET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const duration = Number(values.duration);
const connections = Number(values.connections);
const modes = values.mode === 'both' ? ['embedded', 'postgres'] : [values.mode!];
const KEY = `bench-${randomBytes(16).toString('hex')}`;
const vignetteBodies = (JSON.parse(fs.readFileSync(path.join(root, 'test/vignettes/vignettes.json'), 'utf8')) as { vignettes: Array<{ request: unknown }> }).vignettes.map((v) => JSON.stringify(v.request));

interface Row {
  mode: string;
  route: string;
  requestsPerSec: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
  non2xx: number;
  ratioToBaseline: number;
}

async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; base: string }> {
  const port = String(30000 + Math.floor(Math.random() * 20000));
  const child = spawn(process.execPath, [path.join(root, 'dist/cli.js'), 'serve'], {
    env: { ...process.env, ...env, PORT: port, HOST: '127.0.0.1', LOG_LEVEL: 'warn', AGENTICPET_BOOTSTRAP_KEY: KEY },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const ok = await fetch(`${base}/readyz`).then((r) => r.ok, () => false);
    if (ok) return { child, base };
  }
  child.kill('SIGKILL');
  throw new Error('server did not become ready');
}

async function json(base: string, method: string, url: string, body: unknown): Promise<{ id: string }> {
  const res = await fetch(base + url, { method, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string };
}

function measure(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon({ connections, duration, ...opts }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

async function benchMode(mode: string): Promise<Row[]> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-bench-'));
  const env: Record<string, string> = { AGENTICPET_DATA_DIR: dataDir };
  let dropDb: (() => Promise<void>) | undefined;
  if (mode === 'postgres') {
    const name = `agenticpet_bench_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: values['pg-url'] });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(values['pg-url']!);
    url.pathname = `/${name}`;
    env.DATABASE_URL = url.toString();
    env.DATABASE_POOL_MAX = '16';
    env.REDIS_URL = values['redis-url']!;
    // Bench sessions expire quickly, so the run leaves nothing behind in Redis for long.
    env.REDIS_KEY_PREFIX = `apbench${randomBytes(3).toString('hex')}`;
    env.AGENTICPET_SESSION_TTL_SECONDS = '60';
    dropDb = async () => {
      const c = new pg.Client({ connectionString: values['pg-url'] });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    };
  }
  const { child, base } = await startServer(env);
  try {
    const owner = await json(base, 'POST', '/v1/owners', { name: 'Bench Owner' });
    const patientBody = JSON.stringify({ name: 'Bench', species: 'dog', breed: 'Beagle', sex: 'female', neutered: true, ageYears: 5, weightKg: 12.4, ownerId: owner.id });
    const patient = await json(base, 'POST', '/v1/patients', JSON.parse(patientBody));
    const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
    const scenarios: Array<[string, autocannon.Options]> = [
      ['GET /healthz', { url: `${base}/healthz` }],
      ['POST /v1/patients', { url: `${base}/v1/patients`, method: 'POST', headers, body: patientBody }],
      ['GET /v1/patients/:id', { url: `${base}/v1/patients/${patient.id}`, headers }],
      ['POST /v1/diagnoses', { url: `${base}/v1/diagnoses`, method: 'POST', headers, requests: vignetteBodies.map((body) => ({ method: 'POST', path: '/v1/diagnoses', body })) }],
    ];
    await measure({ url: `${base}/healthz`, duration: 2 }); // warm-up
    const rows: Row[] = [];
    for (const [route, opts] of scenarios) {
      const r = await measure(opts);
      if (r.non2xx > 0) console.error(`${mode} ${route}: ${r.non2xx} non-2xx responses`);
      rows.push({
        mode,
        route,
        requestsPerSec: Math.round(r.requests.average),
        p50: r.latency.p50,
        p90: r.latency.p90,
        p99: r.latency.p99,
        errors: r.errors + r.timeouts,
        non2xx: r.non2xx,
        ratioToBaseline: 0,
      });
    }
    const baseline = rows[0]!.requestsPerSec;
    for (const row of rows) row.ratioToBaseline = Math.round((row.requestsPerSec / baseline) * 1000) / 1000;
    return rows;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
    await dropDb?.();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const all: Row[] = [];
for (const mode of modes) all.push(...(await benchMode(mode)));

const header = ['mode', 'route', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'errors', 'non-2xx', 'vs baseline'];
const lines = all.map((r) => [r.mode, r.route, String(r.requestsPerSec), String(r.p50), String(r.p90), String(r.p99), String(r.errors), String(r.non2xx), `${r.ratioToBaseline}`]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`\nSaturation, ${connections} connections, ${duration} s per route, ${os.cpus().length} cores, node ${process.version}`);
console.log(fmt(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const l of lines) console.log(fmt(l));

fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
const out = path.join(root, 'bench/results', `saturation-${values.mode}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), connections, durationSec: duration, cores: os.cpus().length, node: process.version, rows: all }, null, 2));
console.log(`\nwritten ${path.relative(root, out)}`);
