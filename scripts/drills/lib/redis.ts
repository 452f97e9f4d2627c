/**
 * Redis servers of a drill's own on loopback (never the shared 6379): a plain server that can
 * be killed and started again on the same port, and a Sentinel group (a primary, a replica and
 * sentinels) whose primary can be killed to make the sentinels fail over.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { sleep } from './scope.js';

async function client<T>(port: number, run: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await run(c);
  } finally {
    c.disconnect();
  }
}

/** Resolves once a PING on `port` answers, within `timeoutMs`. */
export async function waitPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await client(port, (c) => c.ping()).then(() => true, () => false)) return;
    if (Date.now() > deadline) throw new Error(`nothing answers PING on 127.0.0.1:${port} after ${timeoutMs / 1000} s`);
    await sleep(50);
  }
}

export function redisCommand<T>(port: number, run: (c: Redis) => Promise<T>): Promise<T> {
  return client(port, run);
}

/** One redis-server (or, with `sentinel`, redis-sentinel) process; start() may be called again after kill(). */
export class RedisProcess {
  private child: ChildProcess | undefined;
  private log = '';

  constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly extra: string[] = [],
    private readonly sentinel = false,
  ) {
    fs.mkdirSync(dir, { recursive: true });
  }

  async start(): Promise<void> {
    const conf = path.join(this.dir, this.sentinel ? 'sentinel.conf' : 'redis.conf');
    // Sentinel rewrites its configuration file as it learns the group, so each gets its own.
    // Nothing persisted: a restarted server comes back empty, so every key in it afterwards was written after its return.
    const persistence = this.sentinel ? [] : ['save ""', 'appendonly no'];
    const lines = [`port ${this.port}`, 'bind 127.0.0.1', `dir ${this.dir}`, 'protected-mode no', ...persistence, ...this.extra];
    if (!this.sentinel || !fs.existsSync(conf)) fs.writeFileSync(conf, `${lines.join('\n')}\n`);
    const bin = this.sentinel ? 'redis-sentinel' : 'redis-server';
    const child = spawn(bin, [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (d: Buffer) => (this.log = (this.log + d.toString()).slice(-8000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('error', (err) => (this.log += `\n${bin}: ${err.message}`));
    await waitPing(this.port).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.log}`);
    });
  }

  /** kill -9: the server is gone at once, as a host or a container would be. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await exited;
  }

  tail(): string {
    return this.log;
  }
}

export interface SentinelGroup {
  primary: RedisProcess;
  replica: RedisProcess;
  sentinels: RedisProcess[];
  name: string;
  /** REDIS_URL for the service. */
  url: string;
  /** The primary's port according to the sentinel at `sentinelPort`. */
  primaryPort(sentinelPort?: number): Promise<number>;
}

/**
 * A primary, one replica and `count` sentinels (quorum: a majority). `downAfterMs` is how long
 * a primary must be unreachable before a sentinel calls it down; the failover follows as soon
 * as a majority agree and elect a leader (about a second on loopback).
 */
export async function startSentinelGroup(dir: string, ports: number[], opts: { downAfterMs: number; name?: string }, onCreated: (p: RedisProcess) => void): Promise<SentinelGroup> {
  const [pp, rp, ...sp] = ports;
  if (pp === undefined || rp === undefined || sp.length < 3) throw new Error('a Sentinel group needs 5 ports');
  const name = opts.name ?? 'drillprimary';
  const primary = new RedisProcess(pp, path.join(dir, 'primary'));
  onCreated(primary);
  await primary.start();
  const replica = new RedisProcess(rp, path.join(dir, 'replica'), [`replicaof 127.0.0.1 ${pp}`]);
  onCreated(replica);
  await replica.start();
  const quorum = Math.floor(sp.length / 2) + 1;
  const sentinels = sp.map(
    (port, i) =>
      new RedisProcess(
        port,
        path.join(dir, `sentinel-${i + 1}`),
        [`sentinel monitor ${name} 127.0.0.1 ${pp} ${quorum}`, `sentinel down-after-milliseconds ${name} ${opts.downAfterMs}`, `sentinel failover-timeout ${name} 10000`, `sentinel parallel-syncs ${name} 1`],
        true,
      ),
  );
  for (const s of sentinels) {
    onCreated(s);
    await s.start();
  }
  // The replica must be in sync and every sentinel must know the others (they find each other
  // through the primary's hello channel) before a failover can be voted.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const linked = await redisCommand(rp, (c) => c.info('replication')).then((i) => /master_link_status:up/.test(i), () => false);
    const known = await Promise.all(sentinels.map((s) => redisCommand(s.port, (c) => c.call('SENTINEL', 'sentinels', name) as Promise<unknown[]>).then((l) => l.length, () => 0)));
    const replicasSeen = await Promise.all(sentinels.map((s) => redisCommand(s.port, (c) => c.call('SENTINEL', 'replicas', name) as Promise<unknown[]>).then((l) => l.length, () => 0)));
    if (linked && known.every((n) => n >= sentinels.length - 1) && replicasSeen.every((n) => n >= 1)) break;
    if (Date.now() > deadline) throw new Error(`Sentinel group not formed after 20 s (replica linked: ${linked}, sentinels known: ${known.join('/')}, replicas seen: ${replicasSeen.join('/')})`);
    await sleep(200);
  }
  return {
    primary,
    replica,
    sentinels,
    name,
    url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${name}`,
    primaryPort: async (sentinelPort = sentinels[0]!.port) => {
      const addr = (await redisCommand(sentinelPort, (c) => c.call('SENTINEL', 'get-master-addr-by-name', name))) as [string, string] | null;
      if (addr === null) throw new Error('the sentinels know no primary');
      return Number(addr[1]);
    },
  };
}
