/**
 * Starts the built service (node dist/cli.js serve) for a bench run, in a data directory of its
 * own, and takes everything down again: the process (SIGTERM, then SIGKILL after 10 s), the
 * database it created, its Redis keys and the data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { SERVE_NODE_FLAGS } from '../../src/node-flags.js';

export type Mode = 'embedded' | 'postgres';

export interface ServiceOptions {
  root: string;
  mode: Mode;
  workers: number | undefined;
  /** Admin connection used to create and drop the bench database. */
  pgAdminUrl: string;
  redisUrl: string;
  /** postgres mode against an existing, seeded database: not created, not dropped. */
  existingDatabaseUrl: string | undefined;
  existingApiKey: string | undefined;
}

export interface Service {
  origin: string;
  apiKey: string;
  /** What the JSON report records about the server: storage, command, inherited settings (never a key). */
  server: Record<string, string>;
  close(): Promise<void>;
}

/** Per minute, per key and per clinic: never reached by a bench run (the largest the config accepts). */
/**
 * The admin connection the benches create and drop their databases through, and so the service's
 * DATABASE_URL: $AGENTICPET_BENCH_PG_URL, else the local server's Unix-domain socket when it has
 * one (Debian's /var/run/postgresql), else TCP on 127.0.0.1. A socket costs both ends less than
 * loopback TCP per round trip (bench/profile-diagnoses.ts on 2026-12-07, two alternating pairs:
 * Node CPU 1.70 and 1.63 ms per diagnosis over TCP, 1.55 and 1.52 over the socket; PostgreSQL
 * 0.41 and 0.39 against 0.37 and 0.35 ms).
 */
export const PG_SOCKET_DIR = '/var/run/postgresql';
export const DEFAULT_PG_ADMIN_URL =
  process.env.AGENTICPET_BENCH_PG_URL ?? (fs.existsSync(path.join(PG_SOCKET_DIR, '.s.PGSQL.5432')) ? `postgres://postgres@${encodeURIComponent(PG_SOCKET_DIR)}/postgres` : 'postgres://postgres@127.0.0.1:5432/postgres');

export const BENCH_RATE_LIMIT_PER_MIN = 1_000_000_000;

/** The rate-limit settings every bench gives the service: on (so measured) but never reached. */
export const BENCH_RATE_LIMIT_ENV = { AGENTICPET_RATE_LIMIT_KEY_PER_MIN: String(BENCH_RATE_LIMIT_PER_MIN), AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: String(BENCH_RATE_LIMIT_PER_MIN) };

const SERVER_ENV = ['PORT', 'HOST', 'LOG_LEVEL', 'DATABASE_URL', 'REDIS_URL', 'REDIS_KEY_PREFIX', 'AGENTICPET_DATA_DIR', 'AGENTICPET_BOOTSTRAP_KEY'];

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function deleteRedisKeys(url: string, prefix: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  client.on('error', () => undefined);
  try {
    await client.connect();
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) deleted += await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    return deleted;
  } finally {
    client.disconnect();
  }
}

/** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
  if ((await Promise.race([exited, timer])) === 'timeout') {
    console.error(`server pid ${child.pid} still running ${graceMs / 1000} s after SIGTERM: SIGKILL`);
    child.kill('SIGKILL');
    await exited;
  }
}

async function waitReady(child: ChildProcess, origin: string, output: () => string, cancelled: () => boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !cancelled()) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited before it was ready (${child.signalCode ?? child.exitCode}):\n${output()}`);
    }
    const ok = await fetch(`${origin}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(cancelled() ? 'cancelled' : `server not ready after ${timeoutMs / 1000} s:\n${output()}`);
}

/**
 * One service for one mode. close() may be called at any time, also while start() is still
 * running (Ctrl-C during start-up): it waits for the step in progress, then undoes every step
 * taken, in reverse order.
 */
export class BenchService implements Service {
  origin = '';
  apiKey = '';
  /** The server's process id (its workers are its children), once started. */
  pid: number | undefined;
  readonly server: Record<string, string> = {};
  private readonly undo: Array<() => Promise<unknown>> = [];
  private closing = false;
  private starting: Promise<void> | undefined;
  private closed: Promise<void> | undefined;

  constructor(private readonly opts: ServiceOptions) {}

  start(): Promise<void> {
    this.starting = this.run().catch(async (err: unknown) => {
      await this.unwind();
      throw err;
    });
    return this.starting;
  }

  close(): Promise<void> {
    this.closing = true;
    this.closed ??= (async () => {
      await this.starting?.catch(() => undefined);
      await this.unwind();
    })();
    return this.closed;
  }

  private async unwind(): Promise<void> {
    while (this.undo.length > 0) {
      const step = this.undo.pop()!;
      await step().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
    }
  }

  /** Records how to undo a step just taken; stops the start-up if close() was called meanwhile. */
  private done(undo: () => Promise<unknown>): void {
    this.undo.push(undo);
    if (this.closing) throw new Error('cancelled');
  }

  private async run(): Promise<void> {
    const opts = this.opts;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-bench-'));
    this.done(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    const bootstrapKey = `bench-${randomBytes(24).toString('hex')}`;
    const port = await freePort();
    const env: Record<string, string | undefined> = { ...process.env };
    for (const k of SERVER_ENV) delete env[k];
    Object.assign(env, { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', AGENTICPET_DATA_DIR: dataDir, AGENTICPET_BOOTSTRAP_KEY: bootstrapKey });
    // The bench drives one key at thousands of requests a second, far past the production
    // budgets (3 000/min per key). They are raised, not switched off, so the figures include
    // the check every request pays; a value set in this shell wins (and is recorded below).
    for (const [k, v] of Object.entries(BENCH_RATE_LIMIT_ENV)) env[k] ??= v;
    // Named here: the variable's name holds KEY, which the record of inherited settings below skips.
    this.server.rateLimitsPerMin = `key ${env.AGENTICPET_RATE_LIMIT_KEY_PER_MIN}, clinic ${env.AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN}`;
    this.server.kind = opts.mode === 'embedded' ? 'pglite + in-process sessions' : 'postgresql + redis';
    this.apiKey = bootstrapKey;

    if (opts.mode === 'postgres') {
      if (opts.existingDatabaseUrl !== undefined) {
        env.DATABASE_URL = opts.existingDatabaseUrl;
        this.server.database = `existing ${new URL(opts.existingDatabaseUrl).pathname.slice(1)} (not created, not dropped)`;
        if (opts.existingApiKey !== undefined) this.apiKey = opts.existingApiKey;
      } else {
        const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 17);
        const name = `agenticpet_bench_${stamp}`;
        await adminQuery(opts.pgAdminUrl, `CREATE DATABASE ${name}`);
        this.done(() => adminQuery(opts.pgAdminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
        env.DATABASE_URL = withDatabase(opts.pgAdminUrl, name);
        this.server.database = `${name} (created, dropped at the end)`;
      }
      const prefix = `apbench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
      env.REDIS_URL = opts.redisUrl;
      env.REDIS_KEY_PREFIX = prefix;
      this.server.redisKeyPrefix = prefix;
      this.done(() => deleteRedisKeys(opts.redisUrl, prefix));
    }

    // The V8 flags npm start gives the service (src/node-flags.ts), so the bench measures what it runs.
    // AGENTICPET_BENCH_SERVER_NODE_ARGS adds node flags (e.g. --cpu-prof --cpu-prof-dir=DIR, which
    // NODE_OPTIONS refuses) to profile the server under the bench's own load.
    const extra = (process.env.AGENTICPET_BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
    const args = [...SERVE_NODE_FLAGS, ...extra, path.join(opts.root, 'dist/cli.js'), 'serve', ...(opts.workers === undefined ? [] : ['--workers', String(opts.workers)])];
    this.server.command = `node ${args.map((a) => (path.isAbsolute(a) ? path.relative(opts.root, a) : a)).join(' ')}`;
    // Server settings inherited from this shell (e.g. AGENTICPET_WORKERS, DATABASE_POOL_MAX) change the figures: record them.
    for (const [k, v] of Object.entries(env)) {
      if (/^(AGENTICPET_|DATABASE_|REDIS_|NODE_OPTIONS$|UV_THREADPOOL_SIZE$)/.test(k) && !SERVER_ENV.includes(k) && !/KEY|SECRET|PASSWORD|TOKEN/.test(k)) this.server[`env ${k}`] = (v ?? '').replace(/(\/\/[^:/@]*:)[^@/]*@/, '$1***@');
    }
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.pid = child.pid;
    let tail = '';
    const forward = (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      process.stderr.write(text.replace(/^(?=.)/gm, `[server ${opts.mode}] `));
    };
    child.stdout!.on('data', forward);
    child.stderr!.on('data', forward);
    this.done(() => stopProcess(child));
    const origin = `http://127.0.0.1:${port}`;
    await waitReady(child, origin, () => tail, () => this.closing);
    this.origin = origin;
  }
}

/** Starts a service; on failure everything it had set up is undone. */
export async function startService(opts: ServiceOptions): Promise<Service> {
  const service = new BenchService(opts);
  await service.start();
  return service;
}
