/**
 * How a model-registry change reaches the other processes, so each drops its cached serving set
 * (clinical/models/serving.ts) at once: the same two paths as a key revocation (revocations.ts),
 * between the workers of one host through the cluster primary (IPC) and between hosts through
 * Redis pub/sub when REDIS_URL is set. Best effort: AGENTICPET_MODEL_CACHE_TTL_MS bounds a lost message.
 */
import cluster from 'node:cluster';
import type { Redis } from 'ioredis';
import type { ModelChangeBus } from '../../clinical/ports.js';
import { openRedis } from './connection.js';
import { FAIL_FAST_REDIS_OPTIONS } from './sessions.js';

export const MODELS_CHANGED_MESSAGE = 'agenticpet:models-changed';

const isChanged = (m: unknown): boolean => typeof m === 'object' && m !== null && (m as { type?: unknown }).type === MODELS_CHANGED_MESSAGE;

export class ClusterModelChangeBus implements ModelChangeBus {
  async publish(): Promise<void> {
    if (cluster.isWorker && process.send !== undefined) process.send({ type: MODELS_CHANGED_MESSAGE });
  }

  onChange(listener: () => void): void {
    if (!cluster.isWorker) return;
    process.on('message', (m: unknown) => {
      if (isChanged(m)) listener();
    });
  }

  /** In the primary: relays each worker's change to all workers. */
  static relay(): void {
    cluster.on('message', (_worker, m: unknown) => {
      if (!isChanged(m)) return;
      for (const w of Object.values(cluster.workers ?? {})) if (w?.isConnected()) w.send({ type: MODELS_CHANGED_MESSAGE });
    });
  }
}

export class RedisModelChangeBus implements ModelChangeBus {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly channel: string;

  constructor(url: string, prefix: string, onError: (err: Error) => void) {
    this.channel = `${prefix}:models:changed`;
    this.publisher = openRedis(url, { ...FAIL_FAST_REDIS_OPTIONS, lazyConnect: false });
    this.subscriber = openRedis(url, { lazyConnect: false, maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 200, 2000) });
    this.publisher.on('error', onError);
    this.subscriber.on('error', onError);
    this.subscriber.subscribe(this.channel).catch(onError);
  }

  async publish(): Promise<void> {
    await this.publisher.publish(this.channel, '1');
  }

  onChange(listener: () => void): void {
    this.subscriber.on('message', (channel: string) => {
      if (channel === this.channel) listener();
    });
  }

  async close(): Promise<void> {
    this.publisher.disconnect();
    this.subscriber.disconnect();
  }
}

/** Several buses as one. */
export function allModelBuses(buses: ModelChangeBus[]): ModelChangeBus {
  return {
    publish: async () => {
      await Promise.allSettled(buses.map((b) => b.publish()));
    },
    onChange: (listener) => buses.forEach((b) => b.onChange(listener)),
  };
}
