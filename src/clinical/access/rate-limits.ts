/**
 * Request budgets per API key and per clinic, checked after authentication (an unauthenticated
 * request is answered 401 before it can spend anyone's budget). Both budgets are fixed windows
 * that start at the first admitted request and are checked together: a request is admitted only
 * if both have room, and then it is counted against both. A refused request counts against
 * neither, so a key hammering past its own budget cannot use up the budget its clinic shares
 * with the clinic's other keys.
 *
 * The counters live behind RateCounterStore: Redis when REDIS_URL is set (shared by every
 * instance; one script call per request, or per lease of several for a busy key: rate-leases.ts),
 * in-process otherwise.
 *
 * When the store fails (Redis unreachable or hung) the request is admitted unchecked: the budgets
 * protect the service from a runaway client, they are not a meter anyone is billed by, and
 * refusing a vet's diagnosis because the counter is away would turn a Redis outage into an API
 * outage. Saturation is still guarded by the load shedding (event-loop lag, database queue).
 * After a failure the store is skipped for a second, so a hung Redis costs one command timeout
 * per second rather than one per request; the caller is told once per outage (and again on
 * recovery), and every unchecked request is counted.
 */
import type { Principal } from '../ports.js';
import { DomainError } from '../errors.js';

/** Counters of one request's budgets, after the request (or as they stood, when it was refused). */
export interface RateCounts {
  admitted: boolean;
  /** Requests counted in the key's current window (0 when its limit is off). */
  keyCount: number;
  /** Milliseconds until the key's window ends. */
  keyResetMs: number;
  clinicCount: number;
  clinicResetMs: number;
}

/** Where the counters live. A limit of 0 leaves that budget out (neither read nor counted). */
export interface RateCounterStore {
  take(keyId: string, clinicId: string, keyLimit: number, clinicLimit: number, windowMs: number): Promise<RateCounts>;
}

export type RatePolicyName = 'api-key' | 'clinic';

/** One budget as a response reports it (draft-ietf-httpapi-ratelimit-headers: r and t). */
export interface BudgetState {
  policy: RatePolicyName;
  limit: number;
  remaining: number;
  /** Whole seconds until the window ends (rounded up, so never early). */
  resetSeconds: number;
}

export interface RateDecision {
  admitted: boolean;
  /** The budgets that apply, api-key first; absent ones are switched off. */
  budgets: BudgetState[];
}

export interface RateLimiterOptions {
  /** Requests per window per API key; 0 switches this budget off. */
  keyLimit: number;
  /** Requests per window per clinic (all its keys together); 0 switches it off. */
  clinicLimit: number;
  /** Window length, ms (60 000 in service; the tests shorten it). */
  windowMs?: number;
  /** After a store failure, admit unchecked for this long before trying the store again (default 1000). */
  retryAfterMs?: number;
  /** The store failed and requests are now admitted unchecked (called once per outage). */
  onUnavailable?: (err: unknown) => void;
  /** The store answered again after an outage. */
  onRecovered?: () => void;
  /** A request admitted without being counted, because the store is unavailable. */
  onUnchecked?: () => void;
  /** A request refused; policy: the budget that was spent (the key's when both were). */
  onRefused?: (policy: RatePolicyName) => void;
}

export class RateLimiter {
  readonly keyLimit: number;
  readonly clinicLimit: number;
  readonly windowMs: number;
  private readonly retryAfterMs: number;
  private skipUntil = 0;
  private unavailable = false;

  constructor(
    private readonly store: RateCounterStore,
    private readonly opts: RateLimiterOptions,
  ) {
    this.keyLimit = opts.keyLimit;
    this.clinicLimit = opts.clinicLimit;
    this.windowMs = opts.windowMs ?? 60_000;
    this.retryAfterMs = opts.retryAfterMs ?? 1_000;
  }

  /** False when both budgets are off: the caller need not call check() at all. */
  get enabled(): boolean {
    return this.keyLimit > 0 || this.clinicLimit > 0;
  }

  /**
   * Counts one request of this principal, if both budgets have room. Null: not checked (the
   * store is unavailable, or both budgets are off); the request goes ahead without figures.
   * Never throws.
   */
  async check(principal: Principal): Promise<RateDecision | null> {
    if (!this.enabled) return null;
    if (this.skipUntil !== 0 && Date.now() < this.skipUntil) {
      this.opts.onUnchecked?.();
      return null;
    }
    let counts: RateCounts;
    try {
      counts = await this.store.take(principal.keyId, principal.clinicId, this.keyLimit, this.clinicLimit, this.windowMs);
    } catch (err) {
      this.skipUntil = Date.now() + this.retryAfterMs;
      if (!this.unavailable) {
        this.unavailable = true;
        this.opts.onUnavailable?.(err);
      }
      this.opts.onUnchecked?.();
      return null;
    }
    if (this.unavailable) {
      this.unavailable = false;
      this.skipUntil = 0;
      this.opts.onRecovered?.();
    }
    const budgets: BudgetState[] = [];
    if (this.keyLimit > 0) budgets.push(budget('api-key', this.keyLimit, counts.keyCount, counts.keyResetMs));
    if (this.clinicLimit > 0) budgets.push(budget('clinic', this.clinicLimit, counts.clinicCount, counts.clinicResetMs));
    if (!counts.admitted) this.opts.onRefused?.(budgets.find((b) => b.remaining === 0)?.policy ?? 'api-key');
    return { admitted: counts.admitted, budgets };
  }
}

function budget(policy: RatePolicyName, limit: number, count: number, resetMs: number): BudgetState {
  return { policy, limit, remaining: Math.max(0, limit - count), resetSeconds: Math.max(0, Math.ceil(resetMs / 1000)) };
}

/** 429: a budget is spent. Retry-After is the time until every spent budget has reset. */
export class RateLimitedError extends DomainError {
  readonly retryAfterSeconds: number;

  constructor(decision: RateDecision, windowMs: number) {
    const spent = decision.budgets.filter((b) => b.remaining === 0);
    const retryAfterSeconds = Math.max(1, ...spent.map((b) => b.resetSeconds));
    const windowSeconds = Math.round(windowMs / 1000);
    const what = spent.map((b) => (b.policy === 'api-key' ? `this API key's ${b.limit}` : `this clinic's ${b.limit}`)).join(' and ');
    super(429, 'rate-limited', 'Too Many Requests', `The budget of ${what} requests per ${windowSeconds} s is spent; retry in ${retryAfterSeconds} s`, {
      policies: spent.map((b) => b.policy),
      retryAfterSeconds,
    });
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
