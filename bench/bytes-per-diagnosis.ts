/**
 * What one diagnosis moves: response bytes, bytes sent to PostgreSQL and to Redis, statements
 * and Redis commands, counted in process on the real runtime (PostgreSQL + Redis) over N
 * diagnoses of the vignettes (age and weight varied per request), through Fastify's inject().
 *
 *   npx tsx bench/bytes-per-diagnosis.ts [--requests 500]
 *
 * Counts what the drivers write to their sockets (net.Socket.prototype.write, by remote port),
 * so it measures the wire, not an estimate. A figure, not a test. Loopback only; a database and
 * Redis key prefix of its own, removed at the end.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { buildRuntime } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { loadVignettes } from './lib/fixtures.js';
import { BENCH_RATE_LIMIT_ENV, DEFAULT_PG_ADMIN_URL } from './lib/service.js';
import { mulberry32, pick } from './lib/prng.js';
import { signalmentTemplate, varied } from './lib/vary.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '500' },
    'pg-url': { type: 'string', default: DEFAULT_PG_ADMIN_URL },
    'redis-url': { type: 'string', default: process.env.AGENTICPET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  },
});
const requests = Number(values.requests);
const root = path.resolve(import.meta.dirname, '..');
const pgPort = Number(new URL(values['pg-url']!).port || 5432);
const redisPort = Number(new URL(values['redis-url']!).port || 6379);
const pgOverSocket = decodeURIComponent(new URL(values['pg-url']!).hostname).startsWith('/');

// Bytes and write calls per remote port, plus PostgreSQL protocol messages that start a statement.
const sent = new Map<number, { bytes: number; writes: number }>();
let statements = 0;
let redisSentCommands = 0;
const write = net.Socket.prototype.write;
net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
  // A Unix-domain socket has no remote port: with PostgreSQL reached over its socket (the default), that one is PostgreSQL's.
  const port = this.remotePort ?? (pgOverSocket ? pgPort : 0);
  const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
  const s = sent.get(port) ?? { bytes: 0, writes: 0 };
  s.bytes += buf.length;
  s.writes++;
  sent.set(port, s);
  if (port === pgPort) statements += countStatements(buf);
  if (port === redisPort) redisSentCommands += countCommands(buf);
  return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
} as typeof net.Socket.prototype.write;

/** Simple queries ('Q') and extended-protocol executions ('E') in a chunk of frontend messages. */
function countStatements(buf: Buffer): number {
  let n = 0;
  for (let i = 0; i + 5 <= buf.length; ) {
    const type = String.fromCharCode(buf[i]!);
    const len = buf.readInt32BE(i + 1);
    if (len < 4) break;
    if (type === 'Q' || type === 'E') n++;
    i += 1 + len;
  }
  return n;
}

/** RESP commands in a chunk the client wrote (each an array of bulk strings: *N, then N times $len). */
function countCommands(buf: Buffer): number {
  let n = 0;
  let i = 0;
  while (i < buf.length && buf[i] === 0x2a) {
    let eol = buf.indexOf('\r\n', i);
    const args = Number(buf.toString('latin1', i + 1, eol));
    i = eol + 2;
    for (let a = 0; a < args; a++) {
      eol = buf.indexOf('\r\n', i);
      const len = Number(buf.toString('latin1', i + 1, eol));
      i = eol + 2 + len + 2;
    }
    n++;
  }
  return n;
}

const admin = new pg.Client({ connectionString: values['pg-url'] });
await admin.connect();
const dbName = `agenticpet_bytes_${Date.now()}`;
await admin.query(`CREATE DATABASE ${dbName}`);
const prefix = `bytes${Date.now()}`;
const dbUrl = values['pg-url']!.replace(/\/[^/]*$/, `/${dbName}`);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-bytes-'));
// The budgets are raised past reach, as npm run bench does: still checked, so their script call is counted.
const config = loadConfig({ AGENTICPET_DATA_DIR: dataDir, LOG_LEVEL: 'silent', ...BENCH_RATE_LIMIT_ENV, DATABASE_URL: dbUrl, REDIS_URL: values['redis-url']!, REDIS_KEY_PREFIX: prefix });
const db = new PostgresExecutor({ connectionString: dbUrl, poolMax: config.dbPoolMax, groupCommitMax: config.groupCommitMax });
const runtime = await buildRuntime(config, db, createLogger('silent'));
const { key } = await runtime.access.createClinic('Bytes clinic');
const templates = loadVignettes(root).map(signalmentTemplate);
const rand = mulberry32(1);
const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

// Redis commands, as the server saw them (MONITOR), of this run only (its key prefix) plus MULTI/EXEC.
let commands = 0;
const monitor = new Redis(values['redis-url']!);
const monitorStream = await monitor.monitor();
monitorStream.on('monitor', (_time: string, args: string[]) => {
  if (args.some((a) => a.includes(prefix))) commands++;
  else if (['multi', 'exec'].includes(String(args[0]).toLowerCase())) commands++;
});

const run = async (n: number) => {
  let responseBytes = 0;
  for (let i = 0; i < n; i++) {
    const res = await runtime.app.inject({ method: 'POST', url: '/v1/diagnoses', headers, payload: varied(pick(rand, templates), rand) });
    if (res.statusCode !== 201) throw new Error(`diagnosis answered ${res.statusCode}: ${res.body}`);
    responseBytes += res.rawPayload.length;
  }
  return responseBytes;
};
await run(20); // warm-up: statements prepared, connections open
await new Promise((r) => setTimeout(r, 200));
sent.clear();
statements = 0;
commands = 0;
redisSentCommands = 0;
const responseBytes = await run(requests);
await new Promise((r) => setTimeout(r, 500)); // MONITOR lines arrive after the replies
const per = (v: number) => (v / requests).toFixed(1);
const pgSent = sent.get(pgPort) ?? { bytes: 0, writes: 0 };
const redisSent = sent.get(redisPort) ?? { bytes: 0, writes: 0 };
console.log(`${requests} diagnoses, one at a time (each its own batch), PostgreSQL + Redis:`);
console.log(`  response body        ${per(responseBytes)} bytes`);
console.log(`  sent to PostgreSQL   ${per(pgSent.bytes)} bytes in ${per(pgSent.writes)} socket writes; ${per(statements)} statements (BEGIN/scope, writes and COMMIT included)`);
console.log(`  sent to Redis        ${per(redisSent.bytes)} bytes in ${per(redisSent.writes)} socket writes; ${per(redisSentCommands)} commands sent, ${per(commands)} run by the server (MULTI/EXEC and a script's own calls included, as MONITOR shows them)`);

await monitor.quit().catch(() => undefined);
await runtime.close();
fs.rmSync(dataDir, { recursive: true, force: true });
await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`);
await admin.end();
const redis = new Redis(values['redis-url']!);
for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 1000 })) if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]));
await redis.quit();
