/**
 * Running the OpenAPI fuzzer (fuzz.ts) against an app: the senders (in process through
 * inject, or a real socket), the per-answer contract, the keys it authenticates with, the
 * statistics and the heap samples. Used by test/fuzz-openapi.test.ts and bench/fuzz.ts.
 */
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { documentArb, harvestIds, IdPool, type FuzzKey, type FuzzRequest, type FuzzResponse, type Sender } from './fuzz.js';
import type { OpenApiDoc } from './openapi.js';

/** In process, through Fastify's inject(): the fast path for the bulk of the requests. */
export function injectSender(app: FastifyInstance): Sender {
  return async (req) => {
    const res = await app.inject({ method: req.method as 'GET', url: req.url, headers: req.headers, ...(req.body === undefined ? {} : { payload: req.body }) });
    return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), body: res.body };
  };
}

/** Over a real loopback socket, through Node's HTTP client and server parser. */
export function socketSender(port: number, timeoutMs = 10_000): Sender {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return (req) =>
    new Promise<FuzzResponse>((resolve, reject) => {
      const out = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      out.on('timeout', () => out.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      out.on('error', reject);
      out.end(req.body);
    });
}

/** What is wrong with an answer, or null: no 5xx, and problem+json (type, title, status) from 400 up. */
export function contractViolation(req: FuzzRequest, res: FuzzResponse): string | null {
  if (res.status >= 500) return `answered ${res.status}: ${res.body.slice(0, 300)}`;
  if (res.status < 400 || req.method === 'HEAD') return null;
  if (!/^application\/problem\+json/.test(res.contentType)) return `answered ${res.status} as ${res.contentType || 'no content type'}, not problem+json`;
  let problem: { type?: unknown; title?: unknown; status?: unknown };
  try {
    problem = JSON.parse(res.body) as typeof problem;
  } catch {
    return `answered ${res.status} with a problem+json body that is not JSON: ${res.body.slice(0, 200)}`;
  }
  if (typeof problem.type !== 'string' || !problem.type.startsWith('urn:agenticpet:problem:') || typeof problem.title !== 'string' || problem.status !== res.status) {
    return `answered ${res.status} with a malformed problem: ${res.body.slice(0, 200)}`;
  }
  if (/\bat [^\n]*\.[cm]?[jt]s:\d+:\d+/.test(res.body)) return `answered ${res.status} with a stack trace`;
  return null;
}

/** The Authorization headers to fuzz with: the admin key mostly, every other role, and bad keys. */
export async function fuzzKeys(send: Sender, adminKey: string, otherClinicKey: string): Promise<FuzzKey[]> {
  const auth = (key: string) => `Bearer ${key}`;
  const issue = async (role: string): Promise<{ id: string; key: string }> => {
    const res = await send({ op: 'setup', method: 'POST', url: '/v1/api-keys', headers: { authorization: auth(adminKey), 'content-type': 'application/json' }, body: JSON.stringify({ name: `fuzz ${role}`, role }) });
    if (res.status !== 201) throw new Error(`could not issue a ${role} key: ${res.status} ${res.body}`);
    return JSON.parse(res.body) as { id: string; key: string };
  };
  const keys: FuzzKey[] = [{ label: 'admin', authorization: auth(adminKey), weight: 24 }];
  for (const role of ['vet', 'staff', 'readonly']) keys.push({ label: role, authorization: auth((await issue(role)).key), weight: 2 });
  const revoked = await issue('vet');
  const del = await send({ op: 'setup', method: 'DELETE', url: `/v1/api-keys/${revoked.id}`, headers: { authorization: auth(adminKey) } });
  if (del.status >= 300) throw new Error(`could not revoke a key: ${del.status} ${del.body}`);
  keys.push(
    { label: 'revoked', authorization: auth(revoked.key), weight: 1 },
    { label: 'other clinic', authorization: auth(otherClinicKey), weight: 1 },
    { label: 'unknown', authorization: auth(`apk_${'x'.repeat(40)}`), weight: 1 },
    { label: 'none', authorization: undefined, weight: 1 },
  );
  return keys;
}

/** A function that runs a full garbage collection (exposing gc at run time if node was not started with it). */
export function garbageCollector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed !== undefined) return exposed;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

export interface HeapSample {
  requests: number;
  heapUsedMb: number;
  rssMb: number;
}

export interface FuzzFailure {
  request: FuzzRequest;
  response: FuzzResponse | null;
  problem: string;
}

export interface FuzzStats {
  requests: number;
  elapsedMs: number;
  byRoute: Map<string, Map<number, number>>;
  statuses: Map<number, number>;
  serverErrors: number;
  failures: FuzzFailure[];
  heap: HeapSample[];
  poolSize: number;
}

export interface FuzzOptions {
  doc: OpenApiDoc;
  keys: FuzzKey[];
  send: Sender;
  requests: number;
  seed: number;
  /** Throw on the first bad answer, so fast-check shrinks it and reports it with the seed (CI). */
  stopOnFailure: boolean;
  /** Sample the heap after GC every this many requests (and at the end); 0: never. */
  heapEvery?: number;
  pool?: IdPool;
  stats?: FuzzStats;
  onProgress?: (stats: FuzzStats) => void;
}

export function emptyStats(): FuzzStats {
  return { requests: 0, elapsedMs: 0, byRoute: new Map(), statuses: new Map(), serverErrors: 0, failures: [], heap: [], poolSize: 0 };
}

const mb = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;

/** Sends `requests` generated requests, one at a time; a thrown transport error counts as a failure. */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzStats> {
  const pool = opts.pool ?? new IdPool();
  const stats = opts.stats ?? emptyStats();
  const { arb } = documentArb(opts.doc, pool, opts.keys);
  const gc = opts.heapEvery ? garbageCollector() : undefined;
  const sample = (): void => {
    gc!();
    const m = process.memoryUsage();
    stats.heap.push({ requests: stats.requests, heapUsedMb: mb(m.heapUsed), rssMb: mb(m.rss) });
  };
  const started = performance.now();
  const property = fc.asyncProperty(arb, async (req) => {
    let res: FuzzResponse | null = null;
    let problem: string | null;
    try {
      res = await opts.send(req);
      problem = contractViolation(req, res);
    } catch (err) {
      problem = `the request failed: ${(err as Error).message}`;
    }
    stats.requests++;
    if (res !== null) {
      harvestIds(pool, req, res);
      const route = stats.byRoute.get(req.op) ?? new Map<number, number>();
      route.set(res.status, (route.get(res.status) ?? 0) + 1);
      stats.byRoute.set(req.op, route);
      stats.statuses.set(res.status, (stats.statuses.get(res.status) ?? 0) + 1);
      if (res.status >= 500) stats.serverErrors++;
    }
    if (gc !== undefined && stats.requests % opts.heapEvery! === 0) sample();
    if (stats.requests % 5000 === 0) opts.onProgress?.(stats);
    if (problem !== null) {
      if (stats.failures.length < 20) stats.failures.push({ request: req, response: res, problem });
      if (opts.stopOnFailure) throw new Error(`${req.method} ${req.url} ${problem}`);
    }
  });
  try {
    await fc.assert(property, { seed: opts.seed, numRuns: opts.requests, includeErrorInReport: true });
  } finally {
    stats.elapsedMs += performance.now() - started;
    stats.poolSize = pool.size;
    if (gc !== undefined) sample();
  }
  return stats;
}

/** A few lines for a log: requests per operation with their statuses, the histogram, the pace. */
export function formatStats(stats: FuzzStats): string {
  const fmt = (m: Map<number, number>) => [...m.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(' ');
  const width = Math.max(...[...stats.byRoute.keys()].map((k) => k.length), 10);
  const lines = [...stats.byRoute.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([route, m]) => `  ${route.padEnd(width)} ${String([...m.values()].reduce((a, b) => a + b, 0)).padStart(7)}  ${fmt(m)}`);
  const secs = stats.elapsedMs / 1000;
  return [
    `requests ${stats.requests} in ${secs.toFixed(1)} s (${Math.round(stats.requests / secs)}/s); 5xx ${stats.serverErrors}; contract failures ${stats.failures.length}; ids in pool ${stats.poolSize}`,
    `statuses ${fmt(stats.statuses)}`,
    ...lines,
  ].join('\n');
}
