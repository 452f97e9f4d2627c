/**
 * Leased request budgets: a key that sends many requests takes several of its budget's tokens
 * from the shared counters at once and spends them in process, so a busy key costs the shared
 * store (Redis) one round trip per lease instead of one per request.
 *
 * What stays exact: the shared counters never admit more than a budget (a lease is granted only
 * from room both budgets have, atomically), so no budget is ever exceeded, whatever the number
 * of processes. What a lease costs: tokens leased but not spent before the lease ends are counted
 * and lost, so a key can be refused up to (lease size - 1) requests early per process holding a
 * lease. That loss is kept small three ways:
 *
 * - a lease grows only while it is spent fast (its tokens used within LEASE_FAST_MS of being
 *   taken: the size doubles, up to MAX_LEASE) and shrinks back when it is not;
 * - a lease never takes more than 1/ROOM_SHARE of the room left in either budget, so near the
 *   end of a budget (and for any small budget) every request goes to the shared store, one token
 *   at a time, exactly as without leases;
 * - a lease ends LEASE_TTL_MS after it was taken, or with its window, whichever is first.
 *
 * The counts a leased admission reports are those of the shared store at the lease, less the
 * tokens this process still holds: the requests actually admitted, as far as this process knows.
 */
import type { RateCounterStore, RateCounts } from './rate-limits.js';

/** A store that can grant several tokens in one call (the Redis counters). */
export interface BulkRateCounterStore extends RateCounterStore {
  /** Like take(), for up to n requests: granted (0..n) of them are admitted and counted. */
  takeMany(keyId: string, clinicId: string, keyLimit: number, clinicLimit: number, windowMs: number, n: number): Promise<RateCounts & { granted: number }>;
}

export const MAX_LEASE = 32;
export const LEASE_FAST_MS = 250;
export const LEASE_TTL_MS = 1_000;
export const ROOM_SHARE = 16;
/** Leases held at most (one per busy key); past this, ended ones are swept. */
const MAX_LEASES = 10_000;

interface Lease {
  tokens: number;
  /** The next lease's size. */
  size: number;
  takenAt: number;
  endsAt: number;
  keyCount: number;
  clinicCount: number;
  keyEndsAt: number;
  clinicEndsAt: number;
}

export class LeasedRateCounterStore implements RateCounterStore {
  private readonly leases = new Map<string, Lease>();
  /** A refill in flight per key: callers that find no token wait for it instead of sending their own. */
  private readonly refills = new Map<string, Promise<void>>();

  constructor(
    private readonly inner: BulkRateCounterStore,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Leases held now (for the tests). */
  get size(): number {
    return this.leases.size;
  }

  async take(keyId: string, clinicId: string, keyLimit: number, clinicLimit: number, windowMs: number): Promise<RateCounts> {
    // While another request of this key refills the lease, wait for it rather than send a refill
    // of its own (bounded: a refill that grants nothing to the waiters lets them refill).
    for (let waits = 0; ; waits++) {
      const spent = this.spend(keyId);
      if (spent !== null) return spent;
      const inFlight = this.refills.get(keyId);
      if (inFlight === undefined || waits >= 4) return this.refill(keyId, clinicId, keyLimit, clinicLimit, windowMs);
      await inFlight;
    }
  }

  /** One token of a live lease, or null. */
  private spend(keyId: string): RateCounts | null {
    const lease = this.leases.get(keyId);
    if (lease === undefined || lease.tokens === 0) return null;
    const now = this.now();
    if (now >= lease.endsAt) return null;
    lease.tokens--;
    return {
      admitted: true,
      keyCount: lease.keyCount - lease.tokens,
      keyResetMs: Math.max(0, lease.keyEndsAt - now),
      clinicCount: lease.clinicCount - lease.tokens,
      clinicResetMs: Math.max(0, lease.clinicEndsAt - now),
    };
  }

  private async refill(keyId: string, clinicId: string, keyLimit: number, clinicLimit: number, windowMs: number): Promise<RateCounts> {
    const previous = this.leases.get(keyId);
    const now = this.now();
    let size = 1;
    if (previous !== undefined) {
      // Spent quickly: the key is busy, lease more; spent slowly or left to end: lease less.
      size = previous.tokens === 0 && now - previous.takenAt < LEASE_FAST_MS ? Math.min(MAX_LEASE, previous.size * 2) : Math.max(1, Math.floor(previous.size / 2));
      const rooms = [keyLimit > 0 ? keyLimit - previous.keyCount : Infinity, clinicLimit > 0 ? clinicLimit - previous.clinicCount : Infinity];
      size = Math.max(1, Math.min(size, Math.floor(Math.min(...rooms) / ROOM_SHARE)));
    }
    let done!: () => void;
    const flight = new Promise<void>((resolve) => (done = resolve));
    this.refills.set(keyId, flight);
    try {
      const r = await this.inner.takeMany(keyId, clinicId, keyLimit, clinicLimit, windowMs, size);
      const at = this.now();
      if (r.granted === 0) {
        // Spent: unless a concurrent refill left tokens (counted already), the request is refused.
        const left = this.spend(keyId);
        if (left !== null) return left;
        this.leases.delete(keyId);
        return { admitted: false, keyCount: r.keyCount, keyResetMs: r.keyResetMs, clinicCount: r.clinicCount, clinicResetMs: r.clinicResetMs };
      }
      if (this.leases.size >= MAX_LEASES) this.sweep(at);
      const keyEndsAt = at + r.keyResetMs;
      const clinicEndsAt = at + r.clinicResetMs;
      const windowEnd = Math.min(keyLimit > 0 ? keyEndsAt : Infinity, clinicLimit > 0 ? clinicEndsAt : Infinity);
      const held = this.leases.get(keyId);
      // Tokens a concurrent refill left are kept (they are counted in the store): merged, not replaced.
      const kept = held !== undefined && at < held.endsAt ? held.tokens : 0;
      this.leases.set(keyId, {
        tokens: kept + r.granted - 1,
        size,
        takenAt: at,
        endsAt: Math.min(at + LEASE_TTL_MS, windowEnd),
        keyCount: r.keyCount,
        clinicCount: r.clinicCount,
        keyEndsAt,
        clinicEndsAt,
      });
      const tokens = kept + r.granted - 1;
      return { admitted: true, keyCount: r.keyCount - tokens, keyResetMs: r.keyResetMs, clinicCount: r.clinicCount - tokens, clinicResetMs: r.clinicResetMs };
    } finally {
      if (this.refills.get(keyId) === flight) this.refills.delete(keyId);
      done();
    }
  }

  private sweep(now: number): void {
    for (const [id, lease] of this.leases) if (now >= lease.endsAt) this.leases.delete(id);
  }
}
