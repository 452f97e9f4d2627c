/**
 * SessionStore in this process: the embedded default, and the fallback while Redis is down.
 * Bounded twice: at most `maxSessions` sessions and about `maxBytes` of stored JSON; beyond
 * either, the least recently used sessions are evicted (a session is ephemeral by contract).
 *
 * Values are kept as the JSON strings Redis would hold, not as objects: a caller gets what the
 * Redis adapter would give it (Dates come back as strings, undefined as null), every get()
 * parses fresh copies the caller may mutate freely, and the size bound measures real data.
 */
import { LRUCache } from 'lru-cache';
import type { AgentMessage, ChainStep, SessionMeta, SessionState, SessionStore, SessionWrite } from '../../clinical/sessions.js';
import { encodeBatch, resultsOf, toJson, ttlMillis } from './encoding.js';

export interface MemorySessionStoreOptions {
  /** Most sessions held at once (default 10,000). */
  maxSessions?: number;
  /** Approximate bound on the memory held, in bytes (default 128 MiB); one session may not exceed it. */
  maxBytes?: number;
  /** How often expired sessions are swept out instead of waiting to be evicted (default 60 s; 0: never). */
  purgeIntervalMs?: number;
}

interface Entry {
  meta: SessionMeta;
  inputs: string[];
  chain: string[];
  messages: string[];
  bytes: number;
}

/** Fixed cost counted per session and per stored value, so many tiny values still count. */
const ENTRY_OVERHEAD = 512;
const VALUE_OVERHEAD = 16;
// V8 keeps a string whose characters are all Latin-1 at one byte per character, any other at
// two (measured: bench/session-memory.ts; counting two for all overstated a session by ~67%).
const TWO_BYTE = /[^\u0000-\u00ff]/;
const sizeOf = (s: string): number => VALUE_OVERHEAD + (TWO_BYTE.test(s) ? 2 : 1) * s.length;

export class SessionTooLargeError extends RangeError {
  constructor(sessionId: string, bytes: number, limit: number) {
    super(`session ${sessionId} would hold about ${bytes} bytes, more than the in-process store's limit of ${limit}`);
    this.name = 'SessionTooLargeError';
  }
}

export class MemorySessionStore implements SessionStore {
  readonly kind = 'memory' as const;
  readonly maxBytes: number;
  private readonly cache: LRUCache<string, Entry>;
  private readonly purgeTimer: NodeJS.Timeout | undefined;

  constructor(opts: MemorySessionStoreOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 128 * 1024 * 1024;
    this.cache = new LRUCache<string, Entry>({
      max: opts.maxSessions ?? 10_000,
      maxSize: this.maxBytes,
      sizeCalculation: (e) => e.bytes,
    });
    const every = opts.purgeIntervalMs ?? 60_000;
    this.purgeTimer = every > 0 ? setInterval(() => this.cache.purgeStale(), every).unref() : undefined;
  }

  /** Sessions held (expired ones included until swept) and their approximate size in bytes. */
  stats(): { sessions: number; bytes: number } {
    return { sessions: this.cache.size, bytes: this.cache.calculatedSize };
  }

  async create(meta: SessionMeta, ttlSeconds: number, initial?: SessionWrite): Promise<void> {
    const ttl = ttlMillis(ttlSeconds);
    const stored: SessionMeta = { id: meta.id, clinicId: meta.clinicId, patientId: meta.patientId, createdAt: meta.createdAt, updatedAt: meta.updatedAt };
    const empty: Entry = { meta: stored, inputs: [], chain: [], messages: [], bytes: ENTRY_OVERHEAD + sizeOf(toJson(stored)) };
    const entry = initial === undefined ? empty : this.appended(meta.id, empty, initial);
    this.checkSize(meta.id, entry.bytes);
    this.cache.set(key(meta.clinicId, meta.id), entry, { ttl });
  }

  async get(clinicId: string, sessionId: string, ttlSeconds: number): Promise<SessionState | null> {
    const ttl = ttlMillis(ttlSeconds);
    const k = key(clinicId, sessionId);
    const e = this.cache.get(k);
    if (e === undefined) return null;
    // Setting the same entry again restarts its TTL with this call's length.
    this.cache.set(k, e, { ttl });
    const chain = e.chain.map((s) => JSON.parse(s) as ChainStep);
    return {
      meta: { ...e.meta },
      inputs: e.inputs.map((s) => JSON.parse(s) as unknown),
      chain,
      results: resultsOf(chain),
      messages: e.messages.map((s) => JSON.parse(s) as AgentMessage),
    };
  }

  async meta(clinicId: string, sessionId: string): Promise<SessionMeta | null> {
    const e = this.cache.get(key(clinicId, sessionId));
    return e === undefined ? null : { ...e.meta };
  }

  async write(clinicId: string, sessionId: string, batch: SessionWrite, ttlSeconds: number): Promise<boolean> {
    const ttl = ttlMillis(ttlSeconds);
    const k = key(clinicId, sessionId);
    const e = this.cache.get(k);
    if (e === undefined) return false;
    const next = this.appended(sessionId, e, batch);
    next.meta = { ...e.meta, updatedAt: new Date().toISOString() };
    // A new entry object: lru-cache recomputes an entry's size only when the value changes.
    this.cache.set(k, next, { ttl });
    return true;
  }

  /** A new entry: `e` with the batch appended; throws, changing nothing, if it would not fit. */
  private appended(sessionId: string, e: Entry, batch: SessionWrite): Entry {
    const { inputs, steps, messages } = encodeBatch(batch);
    let bytes = e.bytes;
    for (const s of [...inputs, ...steps, ...messages]) bytes += sizeOf(s);
    this.checkSize(sessionId, bytes);
    return { meta: e.meta, inputs: [...e.inputs, ...inputs], chain: [...e.chain, ...steps], messages: [...e.messages, ...messages], bytes };
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    if (this.purgeTimer !== undefined) clearInterval(this.purgeTimer);
    this.cache.clear();
  }

  private checkSize(sessionId: string, bytes: number): void {
    if (bytes > this.maxBytes) throw new SessionTooLargeError(sessionId, bytes, this.maxBytes);
  }
}

/** Both ids, unambiguously: another clinic's request for the same session id misses. */
const key = (clinicId: string, sessionId: string): string => JSON.stringify([clinicId, sessionId]);
