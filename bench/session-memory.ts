/**
 * node --expose-gc --import tsx bench/session-memory.ts [--sessions 10000] [--redis-url redis://127.0.0.1:6379] [--skip-redis]
 *
 * Memory held by N live consultation sessions, in Redis (RedisSessionStore) and in-process
 * (MemorySessionStore), for three shapes of session:
 *   started     a just-started session: metadata only (SessionStore.create)
 *   diagnosed   after a one-shot diagnosis: create, then the write DiagnosesService.run makes
 *               ({steps, messages, results} of a real orchestrate run on a vignette)
 *   consulted   a consultation: create, the opening input, the case inputs, then the diagnosis write
 * Redis: INFO used_memory before and after (under a key prefix of its own, deleted afterwards),
 * plus the sum of MEMORY USAGE over every key (exact per key, blind to other clients' keys).
 * In-process: heapUsed after global.gc(), before and after, plus the store's own size estimate.
 * Prints a table; writes bench/results/session-memory-<time>.json.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import { newSessionId } from '../src/clinical/ids.js';
import type { SessionStore, SessionWrite } from '../src/clinical/sessions.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { toJson } from '../src/storage/sessions/encoding.js';
import { MemorySessionStore } from '../src/storage/sessions/memory.js';
import { RedisSessionStore } from '../src/storage/redis/sessions.js';
import { caseFromRequest, loadVignettes } from '../test/vignettes/evaluate.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10000' },
    'redis-url': { type: 'string', default: process.env.AGENTICPET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    'skip-redis': { type: 'boolean', default: false },
  },
});
const N = Number(args.sessions);
const TTL = 1800; // AGENTICPET_SESSION_TTL_SECONDS default
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc --import tsx bench/session-memory.ts');

// --- the real content: every vignette through the real agents, as the service runs them ----------
const kb = loadKnowledgeBase();
const registry = new AgentRegistry(kb, null, { default: 250, narrative: 250 });
interface Case {
  diagnosis: SessionWrite;
  opening: unknown;
  inputs: unknown;
}
const cases: Case[] = [];
for (const v of loadVignettes()) {
  const r = await orchestrate(registry, caseFromRequest(kb, v.request));
  const { patient, ...fields } = v.request;
  cases.push({
    // Exactly what DiagnosesService.run writes after orchestrate.
    diagnosis: { steps: r.steps, messages: r.messages },
    // What ConsultationsService.start and addInputs write.
    opening: { kind: 'opening', patient },
    inputs: { kind: 'inputs', ...fields },
  });
}
const clinics = Array.from({ length: 100 }, () => uuidv7());

type Shape = 'started' | 'diagnosed' | 'consulted';
const SHAPES: Shape[] = ['started', 'diagnosed', 'consulted'];

async function fill(store: SessionStore, shape: Shape, i: number): Promise<void> {
  const clinicId = clinics[i % clinics.length]!;
  const id = newSessionId();
  const now = new Date().toISOString();
  const c = cases[i % cases.length]!;
  const meta = { id, clinicId, patientId: shape === 'started' ? uuidv7() : null, createdAt: now, updatedAt: now };
  if (shape === 'diagnosed') {
    // A one-shot diagnosis: created with its chain, as DiagnosesService.run does.
    await store.create(meta, TTL, c.diagnosis);
    return;
  }
  await store.create(meta, TTL);
  if (shape === 'consulted') {
    await store.write(clinicId, id, { inputs: [c.opening] }, TTL);
    await store.write(clinicId, id, { inputs: [c.inputs] }, TTL);
    if (!(await store.write(clinicId, id, c.diagnosis, TTL))) throw new Error('session vanished');
  }
}

/** UTF-8 bytes of the JSON values a session of this shape stores (mean over the vignettes). */
function payloadBytes(shape: Shape): number {
  if (shape === 'started') return Buffer.byteLength(toJson({ id: newSessionId(), clinicId: clinics[0], patientId: uuidv7(), createdAt: new Date().toISOString(), updatedAt: new Date().toISOString() }));
  let total = 0;
  for (const c of cases) {
    const d = c.diagnosis;
    total += [...d.steps!, ...d.messages!].reduce((n: number, v) => n + Buffer.byteLength(toJson(v)), 0);
    if (shape === 'consulted') total += Buffer.byteLength(toJson(c.opening)) + Buffer.byteLength(toJson(c.inputs));
  }
  return Math.round(total / cases.length + 150);
}

async function inBatches(n: number, parallel: number, fn: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < n; i += parallel) await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, (_, k) => fn(i + k)));
}

interface Row {
  store: 'redis' | 'memory';
  shape: Shape;
  sessions: number;
  bytesPerSession: number;
  totalMiB: number;
  /** Redis: sum of MEMORY USAGE per session; memory: the store's own estimate per session. */
  accountedBytesPerSession: number;
  payloadBytesPerSession: number;
  keysPerSession?: number;
  sampleKeyUsage?: Record<string, number>;
  rssDeltaMiB?: number;
}

const mib = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;

async function measureMemory(shape: Shape): Promise<Row> {
  // Room for all N: the defaults (10,000 sessions, 128 MiB) would evict diagnosed sessions.
  const store = new MemorySessionStore({ maxSessions: N, maxBytes: 64 * 1024 ** 3, purgeIntervalMs: 0 });
  for (let k = 0; k < 3; k++) gc!();
  const before = process.memoryUsage();
  await inBatches(N, 100, (i) => fill(store, shape, i));
  for (let k = 0; k < 3; k++) gc!();
  const after = process.memoryUsage();
  const stats = store.stats();
  if (stats.sessions !== N) throw new Error(`memory store holds ${stats.sessions} of ${N} sessions`);
  const row: Row = {
    store: 'memory',
    shape,
    sessions: N,
    bytesPerSession: Math.round((after.heapUsed + after.external - before.heapUsed - before.external) / N),
    totalMiB: mib(after.heapUsed + after.external - before.heapUsed - before.external),
    accountedBytesPerSession: Math.round(stats.bytes / N),
    payloadBytesPerSession: payloadBytes(shape),
    rssDeltaMiB: mib(after.rss - before.rss),
  };
  await store.close();
  return row;
}

async function usedMemory(client: Redis): Promise<number> {
  const info = await client.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

async function deleteUnder(client: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(client, prefix);
  for (let i = 0; i < keys.length; i += 1000) await client.unlink(...keys.slice(i, i + 1000));
}

async function measureRedis(url: string, shape: Shape): Promise<Row> {
  const prefix = `bench-sessmem-${randomBytes(6).toString('hex')}`;
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  // The service's fail-fast options, but a bench on a busy machine may wait for a reply.
  const store = new RedisSessionStore(url, prefix, { redisOptions: { commandTimeout: 60_000 } });
  try {
    await store.ping();
    const before = await usedMemory(admin);
    await inBatches(N, 50, (i) => fill(store, shape, i));
    const after = await usedMemory(admin);
    const keys = await keysUnder(admin, prefix);
    const pipe = admin.pipeline();
    for (const k of keys) pipe.call('MEMORY', 'USAGE', k, 'SAMPLES', '0');
    const usages = ((await pipe.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return Number(v);
    });
    const sample: Record<string, number> = {};
    const sampleTag = keys[0]!.replace(/:(meta|inputs|chain|results|messages)$/, '');
    keys.forEach((k, i) => {
      if (k.startsWith(`${sampleTag}:`)) sample[k.slice(sampleTag.length + 1)] = usages[i]!;
    });
    return {
      store: 'redis',
      shape,
      sessions: N,
      bytesPerSession: Math.round((after - before) / N),
      totalMiB: mib(after - before),
      accountedBytesPerSession: Math.round(usages.reduce((a, b) => a + b, 0) / N),
      payloadBytesPerSession: payloadBytes(shape),
      keysPerSession: keys.length / N,
      sampleKeyUsage: sample,
    };
  } finally {
    await deleteUnder(admin, prefix);
    await store.close();
    admin.disconnect();
  }
}

const rows: Row[] = [];
let redisInfo: Record<string, string> = {};
for (const shape of SHAPES) rows.push(await measureMemory(shape));
if (!args['skip-redis']) {
  const probe = new Redis(args['redis-url']!, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await probe.connect();
  const info = `${await probe.info('server')}\n${await probe.info('memory')}`;
  redisInfo = Object.fromEntries(['redis_version', 'mem_allocator', 'maxmemory_policy'].map((k) => [k, new RegExp(`${k}:(\\S+)`).exec(info)?.[1] ?? '']));
  probe.disconnect();
  for (const shape of SHAPES) rows.push(await measureRedis(args['redis-url']!, shape));
}

const defaults = new MemorySessionStore({ purgeIntervalMs: 0 });
console.log(`\n${N} live sessions per shape; node ${process.version}${redisInfo.redis_version ? `, Redis ${redisInfo.redis_version} (${redisInfo.mem_allocator})` : ''}`);
console.log('store   shape      bytes/session  MiB per N  accounted/session  JSON payload/session  notes');
for (const r of rows) {
  const fitsDefault = r.store === 'memory' ? `default 128 MiB bound holds ${Math.floor(defaults.maxBytes / r.accountedBytesPerSession)} such sessions` : `MEMORY USAGE sample: ${JSON.stringify(r.sampleKeyUsage)}`;
  console.log(
    `${r.store.padEnd(7)} ${r.shape.padEnd(10)} ${String(r.bytesPerSession).padStart(13)}  ${String(r.totalMiB).padStart(9)}  ${String(r.accountedBytesPerSession).padStart(17)}  ${String(r.payloadBytesPerSession).padStart(20)}  ${fitsDefault}`,
  );
}
await defaults.close();
const out = path.join(root, 'bench/results', `session-memory-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(
  out,
  `${JSON.stringify({ command: 'node --expose-gc --import tsx bench/session-memory.ts', sessions: N, ttlSeconds: TTL, node: process.version, redis: redisInfo, memoryStoreDefaults: { maxSessions: 10_000, maxBytes: 128 * 1024 * 1024 }, rows, at: new Date().toISOString() }, null, 2)}\n`,
);
console.log(`wrote ${path.relative(root, out)}`);
