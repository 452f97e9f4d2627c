/**
 * How every clinical operation runs: one transaction in the caller's clinic, its audit event
 * written inside that transaction on success, and — when the domain refuses (not found,
 * stale version, ...) — a failure audit event written on its own after the rollback.
 * POSTs with an Idempotency-Key store their response in the same transaction as the write.
 */
import { createHash } from 'node:crypto';
import { DomainError, IdempotencyKeyTakenError, UnprocessableError } from './errors.js';
import type { AuditAction, ClinicalStore, ClinicalTx, RequestContext, StoredResponse } from './ports.js';

export interface AuditDraft {
  action: AuditAction;
  entityType: string;
  entityId: string | null;
  outcome?: string;
  detail?: Record<string, string | number | boolean | null>;
  /** Set by a transaction that turned out to do nothing worth an event of its own. */
  skipAudit?: boolean;
}

export interface Idempotency {
  key: string;
  /** Digest of method, path and body: the same key must come with the same request. */
  requestHash: string;
}

export function requestHash(method: string, path: string, body: Buffer | string): string {
  return createHash('sha256').update(method).update('\0').update(path).update('\0').update(body).digest('hex');
}

export interface Replayable extends StoredResponse {
  replayed?: boolean;
}

export class Operations {
  constructor(readonly store: ClinicalStore) {}

  /** The stored response for this key, or null; 422 when the key came with another request. */
  static async replayOf(tx: ClinicalTx, idem: Idempotency): Promise<Replayable | null> {
    const previous = await tx.findIdempotent(idem.key);
    if (previous === null) return null;
    if (previous.requestHash !== idem.requestHash) {
      throw new UnprocessableError('idempotency-key-reused', 'This Idempotency-Key was already used with a different request');
    }
    return { ...previous.response, replayed: true };
  }

  /**
   * Runs fn in one transaction with its audit event; refusals are audited after rollback.
   * `writesOnly`: fn only writes, its audit event with them (see ClinicalStore.inClinic).
   */
  async run<T>(ctx: RequestContext, draft: AuditDraft, fn: (tx: ClinicalTx, draft: AuditDraft) => Promise<T>, opts: { writesOnly?: boolean } = {}): Promise<T> {
    try {
      return await this.store.inClinic(ctx, async (tx) => {
        const result = await fn(tx, draft);
        if (draft.skipAudit !== true) {
          const { skipAudit: _skip, ...entry } = draft;
          await tx.audit({ ...entry, outcome: draft.outcome ?? 'success' });
        }
        return result;
      }, opts);
    } catch (err) {
      if (err instanceof DomainError) {
        await this.store
          .inClinic(ctx, (tx) => tx.audit({ ...draft, outcome: err.type }))
          .catch(() => undefined /* the refusal itself is what the caller must see */);
      }
      throw err;
    }
  }

  /**
   * A create with optional idempotency: a retry with the same key and request returns the
   * stored response and writes nothing but its audit event; a different request under the same
   * key is refused with 422. `writesOnly` (fn only writes, with its audit event): without a key,
   * the transaction may share its statement with others' (with one, it reads the key first).
   */
  async create(ctx: RequestContext, draft: AuditDraft, idem: Idempotency | undefined, fn: (tx: ClinicalTx, draft: AuditDraft) => Promise<StoredResponse>, opts: { writesOnly?: boolean } = {}): Promise<Replayable> {
    if (idem === undefined) return this.run(ctx, draft, fn, opts);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.run(ctx, draft, async (tx, d) => {
          const previous = await Operations.replayOf(tx, idem);
          if (previous !== null) {
            d.outcome = 'replayed';
            return previous;
          }
          const response = await fn(tx, d);
          await tx.saveIdempotent(idem.key, idem.requestHash, response);
          return response;
        });
      } catch (err) {
        // A concurrent request with the same key committed first: replay its response.
        if (attempt === 0 && err instanceof IdempotencyKeyTakenError) continue;
        throw err;
      }
    }
  }
}
