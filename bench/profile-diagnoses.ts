/**
 * Where a diagnosis spends its CPU, in process: builds the real runtime (PostgreSQL + Redis, or
 * embedded), sends POST /v1/diagnoses through Fastify's inject() with a fixed concurrency, and
 * prints Node CPU per request and, with --cpu-prof, the top self-time functions and files.
 *
 *   npx tsx bench/profile-diagnoses.ts [--mode postgres|embedded] [--requests 3000] [--concurrency 32] [--cpu-prof]
 *
 * A figure, not a test: quote it with the command. Loopback only; a database and Redis key
 * prefix of its own, removed at the end.
 */
import { Session } from 'node:inspector/promises';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { buildRuntime } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { loadVignettes } from './lib/fixtures.js';
import { BENCH_RATE_LIMIT_ENV, DEFAULT_PG_ADMIN_URL } from './lib/service.js';
import { mulberry32, pick } from './lib/prng.js';
import { serverCpuSeconds } from './lib/server-cpu.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'postgres' },
    requests: { type: 'string', default: '3000' },
    concurrency: { type: 'string', default: '32' },
    'cpu-prof': { type: 'boolean', default: false },
    'pg-url': { type: 'string', default: DEFAULT_PG_ADMIN_URL },
    'redis-url': { type: 'string', default: process.env.AGENTICPET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const root = path.resolve(import.meta.dirname, '..');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-prof-'));
const dbName = `agenticpet_prof_${Date.now()}`;
const prefix = `prof${Date.now()}`;
const postgres = values.mode === 'postgres';

const admin = postgres ? new pg.Client({ connectionString: values['pg-url'] }) : null;
if (admin) {
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
}
const dbUrl = postgres ? Object.assign(new URL(values['pg-url']!), { pathname: `/${dbName}` }).toString() : undefined;
// One key at full speed: the budgets are raised past reach, as npm run bench does (still checked).
const env: Record<string, string> = { AGENTICPET_DATA_DIR: dataDir, LOG_LEVEL: 'silent', ...BENCH_RATE_LIMIT_ENV, ...(process.env.AGENTICPET_RATE_LIMIT_KEY_PER_MIN ? { AGENTICPET_RATE_LIMIT_KEY_PER_MIN: process.env.AGENTICPET_RATE_LIMIT_KEY_PER_MIN, AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: process.env.AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN ?? "0" } : {}), ...(process.env.DATABASE_POOL_MAX ? { DATABASE_POOL_MAX: process.env.DATABASE_POOL_MAX } : {}), ...(postgres ? { DATABASE_URL: dbUrl!, REDIS_URL: values['redis-url']!, REDIS_KEY_PREFIX: prefix } : {}) };
const config = loadConfig(env);
const db = postgres ? new PostgresExecutor({ connectionString: dbUrl!, poolMax: config.dbPoolMax, groupCommitMax: config.groupCommitMax }) : await PgliteExecutor.open({ dir: path.join(dataDir, 'pglite'), groupCommitMax: config.groupCommitMax });
const runtime = await buildRuntime(config, db, createLogger('silent'));
const { key } = await runtime.access.createClinic('Profile clinic');
const cases = loadVignettes(root);
const rand = mulberry32(1);
const payloads = Array.from({ length: requests }, () => JSON.stringify(pick(rand, cases)));
const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

async function run(n: number): Promise<number> {
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const body = payloads[next++ % payloads.length]!;
        const res = await runtime.app.inject({ method: 'POST', url: '/v1/diagnoses', headers, payload: body });
        if (res.statusCode !== 201) failed++;
      }
    }),
  );
  return failed;
}

await run(Math.min(300, requests)); // warm-up: JIT, pools, caches
const session = new Session();
if (values['cpu-prof']) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
}
const pg0 = serverCpuSeconds();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const failed = await run(requests);
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const pgCpu = serverCpuSeconds();
console.log(`${values.mode}: ${requests} diagnoses, concurrency ${concurrency}, ${failed} failed`);
console.log(`  wall ${(wall / 1000).toFixed(2)} s → ${(requests / (wall / 1000)).toFixed(0)} req/s in process (inject, no sockets)`);
console.log(`  Node CPU ${((cpu.user + cpu.system) / 1000 / requests).toFixed(2)} ms per diagnosis (user ${(cpu.user / 1000 / requests).toFixed(2)}, system ${(cpu.system / 1000 / requests).toFixed(2)})`);
if (postgres && pg0 !== null && pgCpu !== null) {
  console.log(`  PostgreSQL CPU ${(((pgCpu.postgres - pg0.postgres) * 1000) / requests).toFixed(2)} ms, Redis CPU ${(((pgCpu.redis - pg0.redis) * 1000) / requests).toFixed(3)} ms per diagnosis (every process of this host named postgres / redis-server)`);
}

if (values['cpu-prof']) {
  const { profile } = (await session.post('Profiler.stop')) as { profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] } };
  const out = path.join(root, 'bench/results', `profile-diagnoses-${values.mode}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(profile));
  summarise(profile);
  console.log(`  profile: ${path.relative(root, out)} (open in Chrome DevTools)`);
}

await runtime.close();
fs.rmSync(dataDir, { recursive: true, force: true });
if (admin) {
  await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`);
  await admin.end();
  // The sessions this run left under its own key prefix.
  const redis = new Redis(values['redis-url']!);
  for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 1000 })) if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]));
  await redis.quit();
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

function summarise(profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === '' ? `(${functionName || 'native'})` : url.replace(/^file:\/\//, '').replace(root + '/', '').replace(/.*node_modules\//, 'nm:');
    if (functionName === '(idle)' || functionName === '(program)') return;
    total += dt;
    const f = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
    fn.set(f, (fn.get(f) ?? 0) + dt);
    const group = where.startsWith('nm:') ? where.split('/').slice(0, where.startsWith('nm:@') ? 2 : 1).join('/') : where;
    file.set(group, (file.get(group) ?? 0) + dt);
  });
  // Inclusive time: each sample counts once for every distinct function on its stack.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const leaf = byId.get(id)!.callFrame.functionName;
    if (leaf === '(idle)' || leaf === '(program)') return;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const { functionName, url, lineNumber } = byId.get(cur)!.callFrame;
      if (!url.includes('/src/') || url.includes('node_modules')) continue;
      seen.add(`${functionName || '(anonymous)'} ${url.replace(/^file:\/\//, '').replace(root + '/', '')}:${lineNumber + 1}`);
    }
    for (const f of seen) inclusive.set(f, (inclusive.get(f) ?? 0) + dt);
  });
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `    ${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`)
      .join('\n');
  console.log(`  busy samples: ${(total / 1000).toFixed(0)} ms\n  top files / packages by self time:\n${top(file, 25)}\n  top functions by self time:\n${top(fn, 30)}\n  our functions by inclusive time (callees included):\n${top(inclusive, 30)}`);
}
