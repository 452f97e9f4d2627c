/**
 * How a key revocation reaches the other processes, so each drops the key from its L1 cache at
 * once: between the workers of one host through the cluster primary (IPC), and between hosts
 * through Redis pub/sub when REDIS_URL is set. Both are best effort: the cache TTL (at most 5 s)
 * bounds a revocation that a lost message did not carry.
 */
import cluster from 'node:cluster';
import type { Redis } from 'ioredis';
import type { RevocationBus } from '../../clinical/access/access.js';
import { openRedis } from './connection.js';
import { FAIL_FAST_REDIS_OPTIONS } from './sessions.js';

export const KEY_REVOKED_MESSAGE = 'agenticpet:key-revoked';

interface RevokedMessage {
  type: typeof KEY_REVOKED_MESSAGE;
  keyId: string;
}

function isRevokedMessage(m: unknown): m is RevokedMessage {
  return typeof m === 'object' && m !== null && (m as RevokedMessage).type === KEY_REVOKED_MESSAGE && typeof (m as RevokedMessage).keyId === 'string';
}

/** Between the workers of this host: a worker tells the primary, which tells every worker. */
export class ClusterRevocationBus implements RevocationBus {
  async publish(keyId: string): Promise<void> {
    if (cluster.isWorker && process.send !== undefined) process.send({ type: KEY_REVOKED_MESSAGE, keyId } satisfies RevokedMessage);
  }

  onRevoked(listener: (keyId: string) => void): void {
    if (!cluster.isWorker) return;
    process.on('message', (m: unknown) => {
      if (isRevokedMessage(m)) listener(m.keyId);
    });
  }

  /** In the primary: relays each worker's revocation to all workers. */
  static relay(): void {
    cluster.on('message', (_worker, m: unknown) => {
      if (!isRevokedMessage(m)) return;
      for (const w of Object.values(cluster.workers ?? {})) if (w?.isConnected()) w.send(m);
    });
  }
}

/** Between hosts: Redis pub/sub on one channel; ioredis resubscribes after a reconnect. */
export class RedisRevocationBus implements RevocationBus {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly channel: string;

  constructor(url: string, prefix: string, onError: (err: Error) => void) {
    this.channel = `${prefix}:api-keys:revoked`;
    this.publisher = openRedis(url, { ...FAIL_FAST_REDIS_OPTIONS, lazyConnect: false });
    // A subscriber waits for messages, so it keeps retrying its connection instead of failing fast.
    this.subscriber = openRedis(url, { lazyConnect: false, maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 200, 2000) });
    this.publisher.on('error', onError);
    this.subscriber.on('error', onError);
    this.subscriber.subscribe(this.channel).catch(onError);
  }

  async publish(keyId: string): Promise<void> {
    await this.publisher.publish(this.channel, keyId);
  }

  onRevoked(listener: (keyId: string) => void): void {
    this.subscriber.on('message', (channel: string, keyId: string) => {
      if (channel === this.channel) listener(keyId);
    });
  }

  async close(): Promise<void> {
    this.publisher.disconnect();
    this.subscriber.disconnect();
  }
}

/** Several buses as one: a revocation goes out on each. */
export function allBuses(buses: RevocationBus[]): RevocationBus {
  return {
    publish: async (keyId) => {
      await Promise.allSettled(buses.map((b) => b.publish(keyId)));
    },
    onRevoked: (listener) => buses.forEach((b) => b.onRevoked(listener)),
  };
}
