/**
 * Real Redis for the tests. scripts/test.mjs probes Redis once and passes the verdict in
 * AGENTICPET_TEST_REDIS ("redis://..." or "skip:<reason>"); a suite that needs the server is
 * skipped with that reason (or, under AGENTICPET_REQUIRE_SERVICES=1, the runner has already failed).
 * Each run works under a key prefix of its own and deletes its keys at the end.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Redis } from 'ioredis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export function redisSkipReason(): string | false {
  const verdict = process.env.AGENTICPET_TEST_REDIS ?? DEFAULT_REDIS_URL;
  return verdict.startsWith('skip:') ? verdict.slice(5) : false;
}

export function redisUrl(): string {
  const verdict = process.env.AGENTICPET_TEST_REDIS ?? DEFAULT_REDIS_URL;
  return verdict.startsWith('skip:') ? DEFAULT_REDIS_URL : verdict;
}

/** A key prefix no other run uses. */
export function testKeyPrefix(): string {
  return `agenticpet_test_${randomBytes(6).toString('hex')}`;
}

/** A plain client for inspecting what the code under test stored. */
export function adminClient(): Redis {
  const client = new Redis(redisUrl(), { maxRetriesPerRequest: 1, lazyConnect: true });
  client.on('error', () => undefined);
  return client;
}

/** Every key under `prefix:`. */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    found.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return found.sort();
}

/** Deletes every key under `prefix:` (SCAN + DEL). */
export async function deleteKeysUnder(prefix: string): Promise<number> {
  const client = adminClient();
  try {
    const keys = await keysUnder(client, prefix);
    for (let i = 0; i < keys.length; i += 500) await client.del(...keys.slice(i, i + 500));
    return keys.length;
  } finally {
    client.disconnect();
  }
}

/**
 * A TCP proxy in front of the test Redis that a test can take down, bring back or freeze, to
 * watch a client meet a dead, a recovered and a hung server without touching the shared one.
 */
export class RedisProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private frozen = false;
  private held: [net.Socket, Buffer][] = [];
  port = 0;

  async start(): Promise<void> {
    const target = new URL(redisUrl());
    const server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port || 6379), target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      // While frozen the proxy holds requests back: the connection stays open, nothing answers
      // until it thaws (then the server answers everything in order, late).
      client.on('data', (chunk: Buffer) => (this.frozen ? this.held.push([upstream, chunk]) : upstream.write(chunk)));
      upstream.on('data', (chunk) => client.write(chunk));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Refuses new connections and cuts the open ones, as a Redis that died would. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    for (const [upstream, chunk] of this.held.splice(0)) if (!upstream.destroyed) upstream.write(chunk);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
