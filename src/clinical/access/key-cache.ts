/**
 * L1 cache of API keys → principals, in front of the store. Every request authenticates, so
 * without it every request would cost a database round trip before doing anything.
 *
 * - Bounded by entries (lru-cache) and by age: an entry is trusted for at most ttlMs (≤ 5 s by
 *   configuration), which bounds how long a revoked key keeps working on any instance even if
 *   no invalidation message reaches it.
 * - A revocation drops the key here at once, and is broadcast (Redis pub/sub when configured)
 *   so other instances drop it at once too; the TTL is the fallback bound.
 * - Concurrent misses coalesce: lru-cache shares one fetch per key in flight, and DataLoader
 *   batches the keys missed in the same tick into one query.
 * - Unknown keys are remembered briefly too (negative entries), so a burst of requests with a
 *   bad key does not reach the database once per request.
 */
import DataLoader from 'dataloader';
import { LRUCache } from 'lru-cache';
import type { Principal } from '../ports.js';

export interface CacheMetrics {
  /** One call per lookup: cache name and whether it was served from the cache. */
  cacheLookup(cache: string, hit: boolean): void;
}

export const NO_CACHE_METRICS: CacheMetrics = { cacheLookup: () => undefined };

export interface KeyCacheOptions {
  ttlMs: number;
  /** Entries at most (keys and negative entries). */
  max?: number;
  /** How long an unknown key is remembered as unknown. */
  negativeTtlMs?: number;
  metrics?: CacheMetrics;
}

const UNKNOWN = Symbol('unknown key');
type Entry = Principal | typeof UNKNOWN;

export class KeyCache {
  private readonly entries: LRUCache<string, Entry, unknown> | null;
  private readonly loader: DataLoader<string, Principal | null>;
  private readonly negativeTtlMs: number;
  private readonly metrics: CacheMetrics;

  constructor(
    /** Looks up many key hashes (hex) at once; returns the live ones by hash. */
    lookup: (hashes: Buffer[]) => Promise<Map<string, Principal>>,
    opts: KeyCacheOptions,
  ) {
    this.metrics = opts.metrics ?? NO_CACHE_METRICS;
    this.negativeTtlMs = Math.min(opts.negativeTtlMs ?? 1000, opts.ttlMs);
    this.loader = new DataLoader<string, Principal | null>(
      async (hashes) => {
        const found = await lookup(hashes.map((h) => Buffer.from(h, 'hex')));
        return hashes.map((h) => found.get(h) ?? null);
      },
      // The LRU is the cache; DataLoader only batches.
      { cache: false, maxBatchSize: 500 },
    );
    this.entries =
      opts.ttlMs <= 0
        ? null
        : new LRUCache<string, Entry, unknown>({
            max: opts.max ?? 10_000,
            ttl: opts.ttlMs,
            // Age counts from the lookup, not from the last use: a hot key is re-checked every ttlMs.
            updateAgeOnGet: false,
            fetchMethod: async (hash) => (await this.loader.load(hash)) ?? UNKNOWN,
          });
  }

  async principal(keyHash: Buffer): Promise<Principal | null> {
    const hash = keyHash.toString('hex');
    if (this.entries === null) {
      this.metrics.cacheLookup('api_keys', false);
      return this.loader.load(hash);
    }
    const status: LRUCache.Status<string, Entry> = {};
    const entry = await this.entries.fetch(hash, { status });
    // A lookup that joined one already in flight cost no query of its own: a hit.
    const hit = status.fetch === 'hit' || status.fetch === 'inflight';
    this.metrics.cacheLookup('api_keys', hit);
    if (entry === UNKNOWN || entry === undefined) {
      if (!hit && entry === UNKNOWN) this.entries.set(hash, UNKNOWN, { ttl: this.negativeTtlMs });
      return null;
    }
    return entry;
  }

  /** Drops a key (by its id) at once: called on revocation, here and on every other instance. */
  forgetKey(keyId: string): void {
    if (this.entries === null) return;
    for (const [hash, entry] of this.entries.entries()) {
      if (entry !== UNKNOWN && entry.keyId === keyId) this.entries.delete(hash);
    }
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }
}
