/**
 * A SessionStore that keeps working while Redis does not: every operation tries the primary
 * (Redis) and, when it throws, is served by the fallback (in-process) instead. A session made
 * in the fallback lives only in this process and only until it expires; losing it never loses
 * a clinical record, so serving the consultation from memory beats failing it.
 *
 * Choices, kept simple on purpose:
 * - A session created in the fallback stays there (no migration to Redis on recovery); reads
 *   and writes look in the fallback whenever the primary fails or has no such session, so it
 *   stays usable until it expires. New sessions go to Redis again as soon as it answers.
 * - After a primary failure the primary is skipped for `primaryRetryAfterMs` (1 s by default):
 *   a Redis that hangs instead of refusing costs one command timeout per second, not one per
 *   request.
 * - Degradation is reported per request: `withTracking()` returns a view of this store whose
 *   `degraded` flag says whether any operation made through it was served by the fallback
 *   (because the primary failed, or because the session lives in the fallback). The counter
 *   agenticpet_session_store_fallback_total{operation} counts the same events process-wide.
 */
import { Counter, Registry } from 'prom-client';
import type { SessionMeta, SessionState, SessionStore, SessionWrite } from '../../clinical/sessions.js';

export type SessionOperation = 'create' | 'get' | 'meta' | 'write' | 'ping';

export const FALLBACK_COUNTER = 'agenticpet_session_store_fallback_total';

/** A per-request view: the SessionStore port plus what happened to this view's operations. */
export interface TrackedSessionStore extends SessionStore {
  /** True once an operation made through this view was served by the fallback store. */
  readonly degraded: boolean;
  /** Those operations, in the order they ran. */
  readonly fallbackOperations: readonly SessionOperation[];
}

export interface ResilientSessionStoreOptions {
  /** Where the fallback counter is registered; a new Registry when absent. */
  registry?: Registry;
  /** Told about each primary failure (to log it); the operation is then served by the fallback. */
  onPrimaryError?: (err: unknown, operation: SessionOperation) => void;
  /** After a primary failure, go straight to the fallback for this long (default 1000 ms; 0: always try). */
  primaryRetryAfterMs?: number;
}

type Note = (operation: SessionOperation) => void;
type Attempt<T> = { ok: true; value: T } | { ok: false };

export class ResilientSessionStore implements SessionStore {
  readonly kind: SessionStore['kind'];
  readonly registry: Registry;
  private readonly fallbacks: Counter<'operation'>;
  private readonly retryAfterMs: number;
  private primaryDownUntil = 0;

  constructor(
    private readonly primary: SessionStore,
    private readonly fallback: SessionStore,
    private readonly opts: ResilientSessionStoreOptions = {},
  ) {
    this.kind = primary.kind;
    this.registry = opts.registry ?? new Registry();
    this.retryAfterMs = opts.primaryRetryAfterMs ?? 1_000;
    // Two stores on one registry (tests, a restart of the composition root) share the counter.
    const existing = this.registry.getSingleMetric(FALLBACK_COUNTER);
    this.fallbacks =
      existing instanceof Counter
        ? (existing as Counter<'operation'>)
        : new Counter({
            name: FALLBACK_COUNTER,
            help: 'Session store operations served by the in-process fallback instead of Redis',
            labelNames: ['operation'],
            registers: [this.registry],
          });
  }

  /** A view for one request; its `degraded` flag covers only the operations made through it. */
  withTracking(): TrackedSessionStore {
    return new TrackedView(this);
  }

  create(meta: SessionMeta, ttlSeconds: number, initial?: SessionWrite): Promise<void> {
    return this.createNoting(meta, ttlSeconds, initial);
  }

  get(clinicId: string, sessionId: string, ttlSeconds: number): Promise<SessionState | null> {
    return this.getNoting(clinicId, sessionId, ttlSeconds);
  }

  meta(clinicId: string, sessionId: string): Promise<SessionMeta | null> {
    return this.metaNoting(clinicId, sessionId);
  }

  write(clinicId: string, sessionId: string, batch: SessionWrite, ttlSeconds: number): Promise<boolean> {
    return this.writeNoting(clinicId, sessionId, batch, ttlSeconds);
  }

  ping(): Promise<void> {
    return this.pingNoting();
  }

  async close(): Promise<void> {
    const closed = await Promise.allSettled([this.primary.close(), this.fallback.close()]);
    for (const c of closed) if (c.status === 'rejected') throw c.reason;
  }

  /** @internal the operations, telling `note` when the fallback served them. */
  async createNoting(meta: SessionMeta, ttlSeconds: number, initial?: SessionWrite, note?: Note): Promise<void> {
    const p = await this.tryPrimary('create', () => this.primary.create(meta, ttlSeconds, initial));
    if (p.ok) return;
    await this.fallback.create(meta, ttlSeconds, initial);
    this.servedByFallback('create', note);
  }

  /** @internal */
  async getNoting(clinicId: string, sessionId: string, ttlSeconds: number, note?: Note): Promise<SessionState | null> {
    const p = await this.tryPrimary('get', () => this.primary.get(clinicId, sessionId, ttlSeconds));
    if (p.ok && p.value !== null) return p.value;
    const state = await this.fallback.get(clinicId, sessionId, ttlSeconds);
    // A miss in both, with the primary answering, is an ordinary miss.
    if (!p.ok || state !== null) this.servedByFallback('get', note);
    return state;
  }

  /** @internal */
  async metaNoting(clinicId: string, sessionId: string, note?: Note): Promise<SessionMeta | null> {
    const p = await this.tryPrimary('meta', () => this.primary.meta(clinicId, sessionId));
    if (p.ok && p.value !== null) return p.value;
    const meta = await this.fallback.meta(clinicId, sessionId);
    if (!p.ok || meta !== null) this.servedByFallback('meta', note);
    return meta;
  }

  /** @internal */
  async writeNoting(clinicId: string, sessionId: string, batch: SessionWrite, ttlSeconds: number, note?: Note): Promise<boolean> {
    const p = await this.tryPrimary('write', () => this.primary.write(clinicId, sessionId, batch, ttlSeconds));
    if (p.ok && p.value) return true;
    const written = await this.fallback.write(clinicId, sessionId, batch, ttlSeconds);
    if (!p.ok || written) this.servedByFallback('write', note);
    return written;
  }

  /** @internal */
  async pingNoting(note?: Note): Promise<void> {
    const p = await this.tryPrimary('ping', () => this.primary.ping());
    if (p.ok) return;
    await this.fallback.ping();
    this.servedByFallback('ping', note);
  }

  private async tryPrimary<T>(operation: SessionOperation, run: () => Promise<T>): Promise<Attempt<T>> {
    if (Date.now() < this.primaryDownUntil) return { ok: false };
    try {
      return { ok: true, value: await run() };
    } catch (err) {
      this.primaryDownUntil = Date.now() + this.retryAfterMs;
      this.opts.onPrimaryError?.(err, operation);
      return { ok: false };
    }
  }

  private servedByFallback(operation: SessionOperation, note: Note | undefined): void {
    this.fallbacks.inc({ operation });
    note?.(operation);
  }
}

class TrackedView implements TrackedSessionStore {
  readonly kind: SessionStore['kind'];
  private readonly ops: SessionOperation[] = [];
  private readonly note: Note = (op) => this.ops.push(op);

  constructor(private readonly store: ResilientSessionStore) {
    this.kind = store.kind;
  }

  get degraded(): boolean {
    return this.ops.length > 0;
  }

  get fallbackOperations(): readonly SessionOperation[] {
    return [...this.ops];
  }

  create(meta: SessionMeta, ttlSeconds: number, initial?: SessionWrite): Promise<void> {
    return this.store.createNoting(meta, ttlSeconds, initial, this.note);
  }

  get(clinicId: string, sessionId: string, ttlSeconds: number): Promise<SessionState | null> {
    return this.store.getNoting(clinicId, sessionId, ttlSeconds, this.note);
  }

  meta(clinicId: string, sessionId: string): Promise<SessionMeta | null> {
    return this.store.metaNoting(clinicId, sessionId, this.note);
  }

  write(clinicId: string, sessionId: string, batch: SessionWrite, ttlSeconds: number): Promise<boolean> {
    return this.store.writeNoting(clinicId, sessionId, batch, ttlSeconds, this.note);
  }

  ping(): Promise<void> {
    return this.store.pingNoting(this.note);
  }

  /** The view does not own the store: closing a request's view must not close it for everyone. */
  async close(): Promise<void> {}
}
