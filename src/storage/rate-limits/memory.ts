/**
 * The request budgets' counters in process, for the embedded mode (no Redis): the same windows
 * as the Redis script (a window starts with the first request counted in it; a refused request
 * counts against neither budget), counted per process. Under `serve --workers N` without Redis
 * each worker keeps its own counts, so a client spreading over the workers gets up to N budgets.
 *
 * Memory is bounded by the keys and clinics that made a request in the last window: windows
 * that have ended are swept at most once per window length, from take() itself (no timer).
 */
import type { RateCounterStore, RateCounts } from '../../clinical/access/rate-limits.js';

interface Window {
  count: number;
  /** performance.now() at which the window ends (a monotonic clock: wall-clock steps do not move it). */
  endsAt: number;
}

export class MemoryRateCounterStore implements RateCounterStore {
  private readonly keys = new Map<string, Window>();
  private readonly clinics = new Map<string, Window>();
  private nextSweepAt = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  async take(keyId: string, clinicId: string, keyLimit: number, clinicLimit: number, windowMs: number): Promise<RateCounts> {
    const now = this.now();
    if (now >= this.nextSweepAt) this.sweep(now, windowMs);
    const key = keyLimit > 0 ? current(this.keys, keyId, now) : undefined;
    const clinic = clinicLimit > 0 ? current(this.clinics, clinicId, now) : undefined;
    const admitted = (key === undefined || key.count < keyLimit) && (clinic === undefined || clinic.count < clinicLimit);
    if (admitted) {
      if (key !== undefined) this.count(this.keys, keyId, key, now, windowMs);
      if (clinic !== undefined) this.count(this.clinics, clinicId, clinic, now, windowMs);
    }
    return {
      admitted,
      keyCount: key?.count ?? 0,
      keyResetMs: key === undefined ? 0 : remainingMs(key, now, windowMs),
      clinicCount: clinic?.count ?? 0,
      clinicResetMs: clinic === undefined ? 0 : remainingMs(clinic, now, windowMs),
    };
  }

  /** The entries held (for the tests of the sweep). */
  get size(): number {
    return this.keys.size + this.clinics.size;
  }

  private count(map: Map<string, Window>, id: string, w: Window, now: number, windowMs: number): void {
    if (w.count === 0) {
      w.endsAt = now + windowMs;
      map.set(id, w);
    }
    w.count++;
  }

  private sweep(now: number, windowMs: number): void {
    for (const map of [this.keys, this.clinics]) for (const [id, w] of map) if (w.endsAt <= now) map.delete(id);
    this.nextSweepAt = now + windowMs;
  }
}

/** The id's window if it is still running, else a fresh (not yet stored) one. */
function current(map: Map<string, Window>, id: string, now: number): Window {
  const w = map.get(id);
  return w !== undefined && w.endsAt > now ? w : { count: 0, endsAt: 0 };
}

function remainingMs(w: Window, now: number, windowMs: number): number {
  return w.count === 0 ? windowMs : w.endsAt - now;
}
