/**
 * L1 cache of consultation-session metadata (clinic, patient, creation time), in front of the
 * session tier. A diagnosis that names a consultation checks it before the agents run: that it
 * exists for this clinic and concerns the same patient. The fields checked never change for the
 * life of a session, so a cached entry cannot be wrong about them; it can only outlive the
 * session by at most its TTL (5 s), and the session write that follows is the authority on
 * existence (a session gone by then still answers 404). Bounded by entries (lru-cache); only
 * sessions found are cached. Entries come from sessions this instance created or read.
 */
import { LRUCache } from 'lru-cache';
import { NO_CACHE_METRICS, type CacheMetrics } from '../access/key-cache.js';
import type { SessionMeta, SessionStore } from '../sessions.js';

export interface SessionMetaCacheOptions {
  ttlMs?: number;
  max?: number;
  metrics?: CacheMetrics;
}

export class SessionMetaCache {
  private readonly entries: LRUCache<string, SessionMeta>;
  private readonly metrics: CacheMetrics;

  constructor(opts: SessionMetaCacheOptions = {}) {
    this.entries = new LRUCache({ max: opts.max ?? 10_000, ttl: Math.min(opts.ttlMs ?? 5_000, 5_000) });
    this.metrics = opts.metrics ?? NO_CACHE_METRICS;
  }

  private static key(clinicId: string, sessionId: string): string {
    return `${clinicId}|${sessionId}`;
  }

  remember(meta: SessionMeta): void {
    this.entries.set(SessionMetaCache.key(meta.clinicId, meta.id), { ...meta });
  }

  /** The session's metadata, from L1 or else from the session tier; null when there is no such session. */
  async lookup(sessions: Pick<SessionStore, 'meta'>, clinicId: string, sessionId: string): Promise<SessionMeta | null> {
    const cached = this.entries.get(SessionMetaCache.key(clinicId, sessionId));
    this.metrics.cacheLookup('session_meta', cached !== undefined);
    if (cached !== undefined) return { ...cached };
    const meta = await sessions.meta(clinicId, sessionId);
    if (meta !== null) this.remember(meta);
    return meta;
  }
}
