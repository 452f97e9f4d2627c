/**
 * The OpenAPI fuzzer at length (issue 14 §3): every operation of the document, requests
 * generated from its schemas (test/support/fuzz.ts), sent in process through inject() with a
 * few hundred over a real socket at the end. Prints the requests per operation, the status
 * histogram, the 5xx and contract failures (with the request that caused each), the elapsed
 * time, and the heap after GC as the run went; writes the same as JSON.
 *
 *   npx tsx bench/fuzz.ts [--requests 100000] [--seed 1] [--mode embedded|postgres] [--socket 500]
 *
 * Figures, not a test (test/fuzz-openapi.test.ts is the CI run): quote them with the command.
 * Memory bound: the heap after GC at the end within +32 MB of the first sample (after 1% of the
 * requests, once the caches and the id pool have filled); the verdict is printed, not asserted.
 */
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { emptyStats, formatStats, fuzzKeys, injectSender, runFuzz, socketSender, type FuzzStats } from '../test/support/fuzz-run.js';
import { IdPool } from '../test/support/fuzz.js';
import type { OpenApiDoc } from '../test/support/openapi.js';
import { startRuntime, type TestRuntime } from '../test/support/runtime.js';
import { gitCommit, machine, writeJson } from './lib/report.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '100000' },
    seed: { type: 'string', default: '1' },
    mode: { type: 'string', default: 'embedded' },
    socket: { type: 'string', default: '500' },
    'pg-url': { type: 'string', default: process.env.AGENTICPET_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    'redis-url': { type: 'string', default: process.env.AGENTICPET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const requests = Number(values.requests);
const seed = Number(values.seed);
const socketRequests = Math.min(Number(values.socket), requests);
const mode = values.mode;
if (mode !== 'embedded' && mode !== 'postgres') throw new Error('--mode embedded|postgres');
const HEAP_BOUND_MB = 32;
// Load shedding off: the forced GCs of the heap samples stall the loop past its 503 threshold,
// and an "overloaded" 503 would then say nothing about the request. Any 503 is a defect here.
const FUZZ_ENV = { AGENTICPET_MAX_EVENT_LOOP_DELAY_MS: '0' };

let uncaught = 0;
process.on('uncaughtException', (err) => {
  uncaught++;
  console.error('uncaught exception', err);
});
process.on('unhandledRejection', (err) => {
  uncaught++;
  console.error('unhandled rejection', err);
});

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const startedAt = new Date();
const stamp = startedAt.getTime();
const dbName = `agenticpet_fuzz_${stamp}`;
const prefix = `fuzz${stamp}`;
let admin: pg.Client | null = null;
let rt: TestRuntime | undefined;
try {
  if (mode === 'postgres') {
    admin = new pg.Client({ connectionString: values['pg-url'] });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    const url = Object.assign(new URL(values['pg-url']!), { pathname: `/${dbName}` }).toString();
    rt = await startRuntime(new PostgresExecutor({ connectionString: url, poolMax: 8 }), { ...FUZZ_ENV, DATABASE_URL: url, REDIS_URL: values['redis-url']!, REDIS_KEY_PREFIX: prefix });
  } else {
    rt = await startRuntime(await PgliteExecutor.open(), FUZZ_ENV);
  }
  const app = rt.runtime.app;
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as OpenApiDoc;
  const inject = injectSender(app);
  const keys = await fuzzKeys(inject, (await rt.newClinic('Fuzz clinic')).key, (await rt.newClinic('Bystander clinic')).key);
  const pool = new IdPool();
  const stats: FuzzStats = emptyStats();
  const inProcess = requests - socketRequests;
  console.log(`fuzzing ${requests} requests (${inProcess} in process, ${socketRequests} on a socket), seed ${seed}, ${mode}`);
  await runFuzz({
    doc,
    keys,
    send: inject,
    requests: inProcess,
    seed,
    stopOnFailure: false,
    heapEvery: Math.max(1000, Math.round(inProcess / 100)),
    pool,
    stats,
    onProgress: (s) => s.requests % 20_000 === 0 && console.log(`  ${s.requests} requests, 5xx ${s.serverErrors}, heap ${s.heap[s.heap.length - 1]?.heapUsedMb ?? '?'} MB`),
  });
  if (socketRequests > 0) {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as net.AddressInfo).port;
    await runFuzz({ doc, keys, send: socketSender(port), requests: socketRequests, seed: seed + 1, stopOnFailure: false, heapEvery: socketRequests, pool, stats });
  }
  const first = stats.heap[0]!;
  const last = stats.heap[stats.heap.length - 1]!;
  const peak = Math.max(...stats.heap.map((h) => h.heapUsedMb));
  const withinBound = last.heapUsedMb - first.heapUsedMb <= HEAP_BOUND_MB;
  console.log(formatStats(stats));
  console.log(`heap after GC: ${first.heapUsedMb} MB at ${first.requests} requests, ${last.heapUsedMb} MB at the end (peak ${peak} MB; rss ${first.rssMb} -> ${last.rssMb} MB); bound +${HEAP_BOUND_MB} MB: ${withinBound ? 'within' : 'EXCEEDED'}`);
  console.log(`uncaught exceptions / unhandled rejections: ${uncaught}`);
  for (const f of stats.failures) {
    console.log(`FAILURE ${f.problem}\n  ${f.request.method} ${f.request.url.slice(0, 300)}\n  headers ${JSON.stringify(f.request.headers).slice(0, 300)}\n  body ${JSON.stringify(String(f.request.body ?? '')).slice(0, 400)}`);
  }
  const file = writeJson(root, `fuzz-${mode}`, startedAt, {
    command: `npx tsx bench/fuzz.ts --requests ${requests} --seed ${seed} --mode ${mode} --socket ${socketRequests}`,
    commit: gitCommit(root),
    machine: machine(),
    requests: stats.requests,
    elapsedMs: Math.round(stats.elapsedMs),
    serverErrors: stats.serverErrors,
    contractFailures: stats.failures.length,
    uncaught,
    statuses: Object.fromEntries(stats.statuses),
    byRoute: Object.fromEntries([...stats.byRoute].map(([r, m]) => [r, Object.fromEntries(m)])),
    heap: stats.heap,
    heapBoundMb: HEAP_BOUND_MB,
    withinBound,
    failures: stats.failures.map((f) => ({ problem: f.problem, method: f.request.method, url: f.request.url, headers: f.request.headers, body: String(f.request.body ?? '') })),
  });
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
  process.exitCode = stats.serverErrors > 0 || stats.failures.length > 0 || uncaught > 0 || !withinBound ? 1 : 0;
} finally {
  await rt?.close();
  if (admin !== null) {
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    const redis = new Redis(values['redis-url']!, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (found.length > 0) await redis.del(...found);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
  }
}
