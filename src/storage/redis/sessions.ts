/**
 * SessionStore on Redis (ElastiCache in AWS), shared by every instance of the service.
 *
 * Key layout: one session is four keys sharing one hash tag, so they live in the same Redis
 * Cluster slot and a MULTI or a Lua script may touch them all:
 *   <prefix>:{<clinicId>:<sessionId>}:meta      hash  id, clinicId, patientId?, createdAt, updatedAt
 *   <prefix>:{<clinicId>:<sessionId>}:inputs    list  JSON per input, in arrival order
 *   <prefix>:{<clinicId>:<sessionId>}:chain     list  JSON per chain step (with its output), in order
 *   <prefix>:{<clinicId>:<sessionId>}:messages  list  JSON per agent message, in order
 * The clinic id is part of the key, so another clinic's request for the same session id reads
 * keys that do not exist. Both ids are percent-encoded, so neither can end the hash tag early
 * nor make two (clinic, session) pairs collide. Each agent's latest output (`results`) is read
 * from the chain rather than stored a second time.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import type { AgentMessage, ChainStep, SessionMeta, SessionState, SessionStore, SessionWrite } from '../../clinical/sessions.js';
import { withSpan } from '../../observability/tracing.js';
import { openRedis } from './connection.js';
import { encodeBatch, resultsOf, ttlMillis } from '../sessions/encoding.js';

/**
 * Options for a request path: a dead or hung Redis must fail in milliseconds so the caller can
 * fall back, never queue requests behind a reconnect loop.
 */
export const FAIL_FAST_REDIS_OPTIONS: RedisOptions = {
  // Not connected: reject at once instead of holding the command until a reconnect.
  enableOfflineQueue: false,
  // Connected but unresponsive: reject after this long.
  commandTimeout: 500,
  connectTimeout: 2_000,
  maxRetriesPerRequest: 1,
  // A command in flight when the connection drops may have run; replaying an RPUSH would
  // append twice, so it fails instead.
  autoResendUnfulfilledCommands: false,
  // Reconnect quickly once Redis is back, so new sessions return to it.
  retryStrategy: (times: number) => Math.min(times * 100, 1_000),
};

export interface RedisSessionStoreOptions {
  /** Connection errors (emitted between commands too); unhandled they would be printed by ioredis. */
  onError?: (err: Error) => void;
  /** Merged over FAIL_FAST_REDIS_OPTIONS when the store opens the connection from a URL. */
  redisOptions?: RedisOptions;
}

const PARTS = ['meta', 'inputs', 'chain', 'messages'] as const;
export type SessionKeyPart = (typeof PARTS)[number];

/** The keys of one session, in PARTS order (meta first). */
export function sessionKeys(prefix: string, clinicId: string, sessionId: string): Record<SessionKeyPart, string> {
  const tag = `${prefix}:{${encodeURIComponent(clinicId)}:${encodeURIComponent(sessionId)}}`;
  return { meta: `${tag}:meta`, inputs: `${tag}:inputs`, chain: `${tag}:chain`, messages: `${tag}:messages` };
}

const keyList = (k: Record<SessionKeyPart, string>): string[] => PARTS.map((p) => k[p]);

/** Span attributes per store operation (db.operation.name: the Redis command it sends). */
const spanAttributes = (operation: string, command: string) => ({ 'db.system': 'redis', 'db.system.name': 'redis', 'db.operation.name': command, 'session.operation': operation }) as const;
const SPAN = {
  create: spanAttributes('create', 'EVALSHA'),
  get: spanAttributes('get', 'MULTI'),
  meta: spanAttributes('meta', 'HGETALL'),
  write: spanAttributes('write', 'EVALSHA'),
  ping: spanAttributes('ping', 'PING'),
};

/**
 * write(): appends only if the session's meta key exists, then slides the TTL of every key,
 * atomically (a script runs alone on the server) and in one round trip.
 * ARGV: ttlMs, updatedAt, #inputs, #steps, #messages, then the values in that order.
 * Values are pushed in chunks because unpack() of thousands of values overflows Lua's stack.
 */
const WRITE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[2])
local i = 6
local function add(cmd, key, n)
  local last = i + n - 1
  while i <= last do
    local stop = math.min(i + 999, last)
    redis.call(cmd, key, unpack(ARGV, i, stop))
    i = stop + 1
  end
end
add('RPUSH', KEYS[2], tonumber(ARGV[3]))
add('RPUSH', KEYS[3], tonumber(ARGV[4]))
add('RPUSH', KEYS[4], tonumber(ARGV[5]))
for k = 1, 4 do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
return 1
`;

/**
 * create(): starts the session afresh (an existing id loses its old lists) with its meta hash and
 * any first batch, every key with the TTL, in one command. A script, not a MULTI: one command
 * instead of nine for a one-shot diagnosis, and outside a MULTI ioredis reloads a script that a
 * restart or a failover emptied from the cache (NOSCRIPT), which inside one it cannot.
 * ARGV: ttlMs, #meta fields, the fields and values, #inputs, #steps, #messages, then the values.
 */
const CREATE_SCRIPT = `
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local nf = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + 2 * nf))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local c = 3 + 2 * nf
local i = c + 3
for list = 1, 3 do
  local n = tonumber(ARGV[c + list - 1])
  if n > 0 then
    local last = i + n - 1
    while i <= last do
      local stop = math.min(i + 999, last)
      redis.call('RPUSH', KEYS[list + 1], unpack(ARGV, i, stop))
      i = stop + 1
    end
    redis.call('PEXPIRE', KEYS[list + 1], ARGV[1])
  end
end
return 1
`;

interface SessionScripts {
  agenticpetSessionWrite(...args: (string | number)[]): Promise<number>;
  agenticpetSessionCreate(...args: (string | number)[]): Promise<number>;
}

/** The meta hash as SessionMeta, or null when it is absent or not this clinic's session. */
function metaOf(h: Record<string, string>, clinicId: string, sessionId: string): SessionMeta | null {
  if (h.id !== sessionId || h.clinicId !== clinicId || h.createdAt === undefined || h.updatedAt === undefined) return null;
  return { id: h.id, clinicId: h.clinicId, patientId: h.patientId ?? null, createdAt: h.createdAt, updatedAt: h.updatedAt };
}

/** WRITE_SCRIPT's ARGV for one batch. */
function writeArgs(ttlMs: number, batch: SessionWrite): (string | number)[] {
  const { inputs, steps, messages } = encodeBatch(batch);
  return [ttlMs, new Date().toISOString(), inputs.length, steps.length, messages.length, ...inputs, ...steps, ...messages];
}

type RedisClient = Redis | Cluster;

export class RedisSessionStore implements SessionStore {
  readonly kind = 'redis' as const;
  readonly client: RedisClient;
  private readonly readyTimeoutMs: number;
  /** Set while the first connection is being made; see the constructor. */
  private firstConnection: Promise<void> | undefined;

  constructor(
    connection: string | RedisClient,
    readonly prefix = 'ap',
    opts: RedisSessionStoreOptions = {},
  ) {
    if (/[{}]/.test(prefix)) throw new Error(`session key prefix must not contain { or }: ${prefix}`);
    const options = { ...FAIL_FAST_REDIS_OPTIONS, ...opts.redisOptions };
    this.client = typeof connection === 'string' ? openRedis(connection, options) : connection;
    this.readyTimeoutMs = options.connectTimeout ?? 2_000;
    this.client.on('error', (err: Error) => opts.onError?.(err));
    this.client.defineCommand('agenticpetSessionWrite', { lua: WRITE_SCRIPT, numberOfKeys: PARTS.length });
    this.client.defineCommand('agenticpetSessionCreate', { lua: CREATE_SCRIPT, numberOfKeys: PARTS.length });
    // Requests arriving in the milliseconds before the first connection is up wait for it
    // (bounded by the connect timeout) instead of failing over to the fallback; afterwards a
    // lost connection fails commands at once.
    if (this.client.status === 'connecting' || this.client.status === 'connect') {
      this.firstConnection = this.whenReady()
        .catch(() => undefined)
        .finally(() => (this.firstConnection = undefined));
    }
  }

  keys(clinicId: string, sessionId: string): Record<SessionKeyPart, string> {
    return sessionKeys(this.prefix, clinicId, sessionId);
  }

  create(meta: SessionMeta, ttlSeconds: number, initial?: SessionWrite): Promise<void> {
    return withSpan('redis create', SPAN.create, async () => {
      const ttl = ttlMillis(ttlSeconds);
      const k = this.keys(meta.clinicId, meta.id);
      await this.firstConnection;
      const fields: string[] = ['id', meta.id, 'clinicId', meta.clinicId, 'createdAt', meta.createdAt, 'updatedAt', meta.updatedAt];
      if (meta.patientId !== null) fields.push('patientId', meta.patientId);
      const { inputs, steps, messages } = encodeBatch(initial);
      await (this.client as unknown as SessionScripts).agenticpetSessionCreate(...keyList(k), ttl, fields.length / 2, ...fields, inputs.length, steps.length, messages.length, ...inputs, ...steps, ...messages);
    });
  }

  get(clinicId: string, sessionId: string, ttlSeconds: number): Promise<SessionState | null> {
    return withSpan('redis get', SPAN.get, async () => {
      const ttl = ttlMillis(ttlSeconds);
      const k = this.keys(clinicId, sessionId);
      await this.firstConnection;
      // One MULTI: a consistent snapshot, read and TTL slide in a single round trip.
      const tx = this.client.multi().hgetall(k.meta).lrange(k.inputs, 0, -1).lrange(k.chain, 0, -1).lrange(k.messages, 0, -1);
      for (const key of keyList(k)) tx.pexpire(key, ttl);
      const replies = failOnReplyError(await tx.exec());
      const meta = metaOf(replies[0] as Record<string, string>, clinicId, sessionId);
      if (meta === null) return null;
      const chain = (replies[2] as string[]).map((s) => JSON.parse(s) as ChainStep);
      return {
        meta,
        inputs: (replies[1] as string[]).map((s) => JSON.parse(s) as unknown),
        chain,
        results: resultsOf(chain),
        messages: (replies[3] as string[]).map((s) => JSON.parse(s) as AgentMessage),
      };
    });
  }

  meta(clinicId: string, sessionId: string): Promise<SessionMeta | null> {
    return withSpan('redis meta', SPAN.meta, async () => {
      const k = this.keys(clinicId, sessionId);
      await this.firstConnection;
      return metaOf(await this.client.hgetall(k.meta), clinicId, sessionId);
    });
  }

  write(clinicId: string, sessionId: string, batch: SessionWrite, ttlSeconds: number): Promise<boolean> {
    return withSpan('redis write', SPAN.write, async () => {
      const ttl = ttlMillis(ttlSeconds);
      const k = this.keys(clinicId, sessionId);
      const args = writeArgs(ttl, batch);
      await this.firstConnection;
      const written = await (this.client as unknown as SessionScripts).agenticpetSessionWrite(...keyList(k), ...args);
      return written === 1;
    });
  }

  ping(): Promise<void> {
    return withSpan('redis ping', SPAN.ping, async () => {
      await this.whenReady();
      await this.client.ping();
    });
  }

  async close(): Promise<void> {
    if (this.client.status === 'ready') await this.client.quit();
    else this.client.disconnect();
  }

  /**
   * Commands fail at once while the client is not connected (enableOfflineQueue: false), which
   * is right for requests but wrong for the first ping at start, a few milliseconds before the
   * connection is up; ping() alone waits for a connection attempt under way (bounded by the
   * connect timeout). A client waiting to reconnect has already lost Redis: that fails at once.
   */
  private whenReady(): Promise<void> {
    const c = this.client;
    if (c.status === 'ready') return Promise.resolve();
    if (c.status === 'wait') c.connect().catch(() => undefined);
    else if (c.status !== 'connecting' && c.status !== 'connect') return Promise.reject(new Error(`Redis is not connected (${c.status})`));
    const timeoutMs = this.readyTimeoutMs;
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        c.off('ready', onReady);
        c.off('error', onError);
        c.off('end', onEnd);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onReady = () => done();
      const onError = (err: Error) => done(err);
      const onEnd = () => done(new Error('Connection is closed.'));
      const timer = setTimeout(() => done(new Error(`Redis not ready after ${timeoutMs} ms`)), timeoutMs);
      c.once('ready', onReady);
      c.once('error', onError);
      c.once('end', onEnd);
    });
  }
}

/** exec() reports a failed command inside the transaction as [err, reply]; surface it as a throw. */
function failOnReplyError(replies: [Error | null, unknown][] | null): unknown[] {
  if (replies === null) throw new Error('Redis transaction was aborted');
  return replies.map(([err, reply]) => {
    if (err !== null) throw err;
    return reply;
  });
}
