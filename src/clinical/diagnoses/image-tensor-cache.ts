/**
 * L1 cache of images prepared as model input (issue 13): the tensor the preprocessor built from a
 * media item's bytes for one input spec. A diagnosis citing an image already prepared for that
 * spec skips the blob fetch and the decode, which cost some 25 times the image-kind model's
 * inference (docs/imaging.md).
 *
 * Why a cached tensor cannot be stale: media bytes are immutable under their SHA-256, and the
 * tensor is a pure function of the bytes and of the spec fields that shape it (tensor name, width,
 * height, channels, layout, mean, std), all of which are in the key. A new model version with a
 * different spec therefore misses; one with the same spec gets the very tensor it would have built
 * (maxBatch shapes no tensor and is left out of the key).
 *
 * Why a clinic cannot read another's: the key starts with the clinic id, as the blob store's
 * address does, and the caller (case-imaging.ts) asks only for media that the diagnosis found
 * in its own clinic (a row-level-security read) before the imaging step. Two clinics that
 * uploaded the same bytes each get an entry of their own: no cross-clinic hit, so no timing hint
 * that another clinic holds an image.
 *
 * Bounded by bytes (lru-cache maxSize; least recently used entries go first). Concurrent misses
 * on one key share one preparation (single flight); a failed one, or one whose bytes were not in
 * the store, is not kept, so the next diagnosis tries again. maxBytes 0 keeps nothing (the
 * single flight still joins concurrent misses). Cached tensors are shared: callers must not
 * write to their data (the imaging agent copies them into its batch tensor).
 */
import { LRUCache } from 'lru-cache';
import { NO_CACHE_METRICS, type CacheMetrics } from '../access/key-cache.js';
import type { ImageInputSpec, Tensor } from '../ports.js';

export interface ImageTensorCacheOptions {
  /** Bytes of tensor data (plus a fixed overhead per entry) kept at most; 0: nothing kept. */
  maxBytes: number;
  metrics?: CacheMetrics;
}

/** Object, shape array and list node of one entry, beside its data and key (an estimate). */
const ENTRY_OVERHEAD_BYTES = 256;

export class ImageTensorCache {
  private readonly entries: LRUCache<string, Tensor> | null;
  private readonly inflight = new Map<string, Promise<Tensor | null>>();
  private readonly metrics: CacheMetrics;
  /** Lookups served from an entry, lookups that joined a preparation in flight, preparations started. */
  readonly counts = { hits: 0, joined: 0, misses: 0 };

  constructor(opts: ImageTensorCacheOptions) {
    if (!Number.isInteger(opts.maxBytes) || opts.maxBytes < 0) throw new RangeError(`maxBytes must be a non-negative integer, got ${opts.maxBytes}`);
    this.entries =
      opts.maxBytes === 0
        ? null
        : new LRUCache<string, Tensor>({ maxSize: opts.maxBytes, sizeCalculation: (t, key) => t.data.byteLength + key.length * 2 + ENTRY_OVERHEAD_BYTES });
    this.metrics = opts.metrics ?? NO_CACHE_METRICS;
  }

  /** Every field that shapes the tensor, in a fixed order, after the clinic and the bytes' hash. */
  static key(clinicId: string, sha256: string, spec: ImageInputSpec): string {
    return [clinicId, sha256, spec.name, spec.width, spec.height, spec.channels, spec.layout, spec.mean.join(','), spec.std.join(',')].join('\u0000');
  }

  /**
   * The tensor of the image with this hash in this clinic for this spec: cached, joined to one
   * in flight, or made by `make` (null: no bytes under the hash; not cached).
   */
  get(clinicId: string, sha256: string, spec: ImageInputSpec, make: () => Promise<Tensor | null>): Promise<Tensor | null> {
    const key = ImageTensorCache.key(clinicId, sha256, spec);
    const cached = this.entries?.get(key);
    if (cached !== undefined) {
      this.counts.hits++;
      this.metrics.cacheLookup('image_tensor', true);
      return Promise.resolve(cached);
    }
    const running = this.inflight.get(key);
    if (running !== undefined) {
      this.counts.joined++;
      this.metrics.cacheLookup('image_tensor', true);
      return running;
    }
    this.counts.misses++;
    this.metrics.cacheLookup('image_tensor', false);
    // make runs a microtask later, so the entry below is in place before it can settle.
    const made = Promise.resolve()
      .then(make)
      .then((tensor) => {
        if (tensor !== null) this.entries?.set(key, tensor);
        return tensor;
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, made);
    return made;
  }

  /** Entries and their accounted bytes (for tests and the bench). */
  get size(): { entries: number; bytes: number } {
    return { entries: this.entries?.size ?? 0, bytes: this.entries?.calculatedSize ?? 0 };
  }
}
