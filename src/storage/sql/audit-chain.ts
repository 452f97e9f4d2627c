/**
 * Tamper-evident audit trail: each physical connection writes its own hash chain, so concurrent
 * writers (connections, processes, hosts) never wait on a shared lock, and a connection runs one
 * transaction at a time, so a chain's order is its commit order. Each event's hash covers its
 * content, its position and the previous hash; audit_chains holds each chain's head, which
 * exposes a truncated tail. A chain's head advances in memory only after COMMIT.
 *
 * A connection starts a new chain after CHAIN_LENGTH events. The head row is updated by every
 * event, and while any snapshot older than those updates is open (a backup's repeatable-read
 * transaction, a long report) PostgreSQL can prune none of its old versions, so each update walks
 * all of them: unbounded, writes slowed quadratically for as long as the snapshot lasted (measured:
 * a 145 s backup under 300 diagnoses/s took p99 from 88 ms to 9 s with 10k timeouts). A bounded
 * chain bounds that walk.
 */
import { hash } from 'node:crypto';
import { uuidv7 } from '../../clinical/ids.js';
import { canonicalJson } from '../../clinical/canonical-json.js';
import type { AuditEntry, AuditVerification, RequestContext, StoredAuditEvent } from '../../clinical/ports.js';
import type { SqlExecutor, SqlTx } from './executor.js';

export interface ChainHead {
  chainId: string;
  seq: number;
  hash: string;
  /** Its connection moved on to a new chain: this head is the chain's last. */
  closed?: true;
}

const GENESIS = '0'.repeat(64);

/** Everything an event's hash covers: the listed event plus its clinic and detail. */
export interface AuditRow extends StoredAuditEvent {
  clinicId: string;
  detail: Record<string, unknown> | null;
}

export function eventHash(prevHash: string, e: AuditRow): string {
  const body = canonicalJson([
    e.chainId,
    e.seq,
    e.id,
    e.occurredAt.toISOString(),
    e.clinicId,
    e.principalId,
    e.role,
    e.action,
    e.entityType,
    e.entityId,
    e.outcome,
    e.requestId,
    e.sourceIp,
    e.detail,
  ]);
  return hash('sha256', `${prevHash}\n${body}`, 'hex');
}

/** audit_events' columns, in the order of AuditEvent.values. */
export const AUDIT_EVENT_COLUMNS = 'chain_id, seq, id, occurred_at, clinic_id, principal_id, role, action, entity_type, entity_id, outcome, request_id, source_ip, detail, prev_hash, hash';

/** An event ready to insert: its row values (AUDIT_EVENT_COLUMNS order) and its writer. */
export interface AuditEvent {
  values: unknown[];
  writer: string;
}

/**
 * Events of one transaction (one chain, in chain order) as data-modifying CTEs for a statement:
 * the chain head upserted once, to the last event, and every event inserted. `param` adds a
 * value to the statement's parameters and returns its placeholder.
 */
export function auditCtes(events: readonly AuditEvent[], param: (value: unknown) => string): string[] {
  const first = events[0]!.values;
  const last = events[events.length - 1]!.values;
  const rows = events.map((e) => `(${e.values.map(param).join(', ')})`);
  return [
    `chain AS (
       INSERT INTO audit_chains (chain_id, writer, started_at, head_seq, head_hash)
       VALUES (${param(last[0])}, ${param(events[0]!.writer)}, ${param(first[3])}, ${param(last[1])}, ${param(last[15])})
       ON CONFLICT (chain_id) DO UPDATE SET head_seq = EXCLUDED.head_seq, head_hash = EXCLUDED.head_hash
     )`,
    `events AS (
       INSERT INTO audit_events (${AUDIT_EVENT_COLUMNS}) VALUES ${rows.join(', ')}
     )`,
  ];
}

/** Events per chain before its connection starts a new one (see the header). */
export const CHAIN_LENGTH = 5_000;

/** Where one connection's chain stands after its last COMMIT; replaced in place on each commit. */
interface ChainSlot {
  head: ChainHead;
  /** Its connection has moved on to a new chain: the head is final once a checkpoint signed it. */
  retired?: boolean;
}

export class AuditWriter {
  /** Each connection's chain head as committed. */
  private readonly committed = new WeakMap<object, ChainSlot>();
  /**
   * Every chain this writer has committed to (one per connection it ever used, so it grows with
   * connections, not requests): what the signed checkpoints anchor. A slot is added once per
   * connection; a commit only replaces the head in its slot, as it replaced the WeakMap entry.
   */
  private readonly chains: ChainSlot[] = [];
  /** Each open transaction's head (several units of a group commit share one transaction). */
  private readonly pending = new WeakMap<object, ChainHead>();
  /** Units that have registered their commit and rollback callbacks. */
  private readonly hooked = new WeakSet<SqlTx>();

  constructor(
    private readonly writer: string,
    /** Events per chain (CHAIN_LENGTH; smaller in tests). */
    private readonly chainLength = CHAIN_LENGTH,
  ) {}

  /** Appends the event: the chain head upserted and the event inserted, in one statement. */
  async append(tx: SqlTx, ctx: RequestContext, entry: AuditEntry): Promise<void> {
    const params: unknown[] = [];
    const ctes = auditCtes([this.event(tx, ctx, entry)], (v) => `$${params.push(v)}`);
    await tx.query(`WITH ${ctes.join(', ')} SELECT 1`, params);
  }

  /**
   * The next event of this transaction's chain as row values (AUDIT_EVENT_COLUMNS order), for a
   * statement the caller sends (auditSql): the chain head moves on now, and back if the unit is
   * undone, so several units' events may go in one statement in the order they were made.
   */
  event(tx: SqlTx, ctx: RequestContext, entry: AuditEntry): AuditEvent {
    // A transaction stays on one chain; a new one starts only between transactions.
    let head = this.pending.get(tx.txn);
    if (head === undefined) {
      head = this.committed.get(tx.connection)?.head;
      if (head !== undefined && head.seq >= this.chainLength) head = undefined;
    }
    const chainId = head?.chainId ?? uuidv7();
    const row: AuditRow = {
      chainId,
      seq: (head?.seq ?? 0) + 1,
      id: uuidv7(),
      occurredAt: new Date(),
      clinicId: ctx.principal.clinicId,
      principalId: ctx.principal.keyId,
      role: ctx.principal.role,
      action: entry.action,
      entityType: entry.entityType,
      entityId: entry.entityId,
      outcome: entry.outcome,
      requestId: ctx.requestId,
      sourceIp: ctx.sourceIp,
      detail: entry.detail ?? null,
    };
    const prevHash = head?.hash ?? GENESIS;
    const hash = eventHash(prevHash, row);
    if (!this.hooked.has(tx)) {
      this.hooked.add(tx);
      // Undoing this unit (its savepoint) takes the head back to where the unit found it.
      const before = this.pending.get(tx.txn);
      tx.onRollback(() => (before === undefined ? this.pending.delete(tx.txn) : this.pending.set(tx.txn, before)));
      tx.onCommit(() => {
        const committed = this.pending.get(tx.txn)!;
        const slot = this.committed.get(tx.connection);
        if (slot !== undefined && slot.head.chainId === committed.chainId) slot.head = committed;
        else {
          if (slot !== undefined) slot.retired = true;
          const created = { head: committed };
          this.committed.set(tx.connection, created);
          this.chains.push(created);
        }
      });
    }
    this.pending.set(tx.txn, { chainId, seq: row.seq, hash });
    return {
      values: [row.chainId, row.seq, row.id, row.occurredAt, row.clinicId, row.principalId, row.role, row.action, row.entityType, row.entityId, row.outcome, row.requestId, row.sourceIp, row.detail === null ? null : JSON.stringify(row.detail), prevHash, hash],
      writer: this.writer,
    };
  }

  /**
   * The heads this process has committed, from memory rather than the database, so a checkpoint
   * signs what was written here and never a head an administrator has since rewritten.
   */
  heads(): ChainHead[] {
    return this.chains.map((s) => (s.retired === true ? { ...s.head, closed: true as const } : { ...s.head }));
  }

  /**
   * A checkpoint signed these heads: a retired chain signed closed at its final head needs no
   * further checkpoint, so it is dropped and the heads stay as many as the live chains plus those
   * retired since the last checkpoint.
   */
  anchored(signed: readonly ChainHead[]): void {
    const at = new Map(signed.map((h) => [h.chainId, h]));
    for (let i = this.chains.length - 1; i >= 0; i--) {
      const s = this.chains[i]!;
      const h = at.get(s.head.chainId);
      if (s.retired === true && h?.closed === true && h.seq === s.head.seq && h.hash === s.head.hash) this.chains.splice(i, 1);
    }
  }
}

/** An audit_events row as the database returns it. */
export interface EventRecord {
  chain_id: string;
  seq: string | number;
  id: string;
  occurred_at: Date;
  clinic_id: string;
  principal_id: string | null;
  role: string | null;
  action: string;
  entity_type: string;
  entity_id: string | null;
  outcome: string;
  request_id: string | null;
  source_ip: string | null;
  detail: Record<string, unknown> | null;
  prev_hash: string;
  hash: string;
}

/** What an event's hash covers, read from its stored row (overrides: for a test that rewrites one). */
export function auditRowOf(r: EventRecord, overrides: Partial<AuditRow> = {}): AuditRow {
  return {
    chainId: r.chain_id,
    seq: Number(r.seq),
    id: r.id,
    occurredAt: r.occurred_at,
    clinicId: r.clinic_id,
    principalId: r.principal_id,
    role: r.role,
    action: r.action,
    entityType: r.entity_type,
    entityId: r.entity_id,
    outcome: r.outcome,
    requestId: r.request_id,
    sourceIp: r.source_ip,
    detail: r.detail,
    ...overrides,
  };
}

const BATCH = 5000;

/** A chain head signed in a checkpoint outside the database (see storage/checkpoints/). */
export interface AnchoredHead {
  seq: number;
  hash: string;
  /** Which checkpoint signed it, for the message. */
  checkpoint: string;
}

export interface AnchoredVerification extends AuditVerification {
  /** Chains checked against a signed checkpoint. */
  anchoredChains: number;
  /** Events past the last checkpoint of their chain (or in chains no checkpoint names yet): the unanchored gap. */
  unanchoredEvents: number;
}

/**
 * Walks every chain in full and reports the first event that does not hold. Runs unscoped (an
 * executor, or an open transaction: a restore checks what it loaded before it commits).
 * Chains are taken from both tables, so events whose head row was deleted are found; with
 * `anchors` (chain id -> signed head), a chain must also reach each signed head with exactly
 * that hash, which a rewrite that recomputed every hash, a truncation that fixed the head row
 * and a deleted chain cannot.
 */
export async function verifyAuditChains(db: Pick<SqlExecutor, 'query'>, anchors: ReadonlyMap<string, AnchoredHead> = new Map()): Promise<AnchoredVerification> {
  const chains = await db.query<{ chain_id: string; head_seq: string | number | null; head_hash: string | null }>(
    `SELECT chain_id, c.head_seq, c.head_hash
       FROM (SELECT chain_id FROM audit_chains UNION SELECT DISTINCT chain_id FROM audit_events) ids
       LEFT JOIN audit_chains c USING (chain_id)
      ORDER BY c.started_at NULLS FIRST, chain_id`,
  );
  let events = 0;
  let anchoredChains = 0;
  let unanchoredEvents = 0;
  const result = (failure?: AuditVerification['failure']): AnchoredVerification => ({ ok: failure === undefined, chains: chains.length, events, anchoredChains, unanchoredEvents, ...(failure === undefined ? {} : { failure }) });
  const present = new Set(chains.map((c) => c.chain_id));
  for (const [chainId, anchor] of anchors) {
    if (!present.has(chainId)) {
      return result({ chainId, seq: anchor.seq, eventId: null, reason: `${anchor.checkpoint} signed this chain at seq ${anchor.seq} but the database has neither its head nor any of its events: the whole chain was deleted` });
    }
  }
  for (const chain of chains) {
    let expectedSeq = 1;
    let prevHash = GENESIS;
    let lastSeq = 0;
    const anchor = anchors.get(chain.chain_id);
    let hashAtAnchor: string | null = null;
    for (;;) {
      const rows = await db.query<EventRecord>('SELECT * FROM audit_events WHERE chain_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3', [chain.chain_id, expectedSeq, BATCH]);
      for (const r of rows) {
        const seq = Number(r.seq);
        const fail = (reason: string) => result({ chainId: chain.chain_id, seq, eventId: r.id, reason });
        if (chain.head_seq === null) return fail('this event\'s chain has no head row in audit_chains: the head was deleted');
        if (seq !== expectedSeq) return fail(`expected seq ${expectedSeq} but found ${seq}: an event before it was deleted or moved`);
        if (r.prev_hash !== prevHash) return fail('its prev_hash does not match the hash of the event before it: an earlier event was deleted, altered or reordered');
        const computed = eventHash(prevHash, auditRowOf(r));
        if (computed !== r.hash) return fail('its content does not match its hash: the event was modified');
        if (anchor !== undefined && seq === anchor.seq) hashAtAnchor = r.hash;
        prevHash = r.hash;
        lastSeq = seq;
        expectedSeq++;
        events++;
      }
      if (rows.length < BATCH) break;
    }
    if (lastSeq !== Number(chain.head_seq) || prevHash !== chain.head_hash) {
      return result({
        chainId: chain.chain_id,
        seq: lastSeq + 1,
        eventId: null,
        reason: `the chain head records seq ${chain.head_seq} but the last intact event is seq ${lastSeq}: events at the end were deleted`,
      });
    }
    if (anchor !== undefined) {
      if (lastSeq < anchor.seq) {
        return result({ chainId: chain.chain_id, seq: lastSeq + 1, eventId: null, reason: `${anchor.checkpoint} signed this chain at seq ${anchor.seq} but it ends at seq ${lastSeq}: the chain was truncated and its head rewritten` });
      }
      if (hashAtAnchor !== anchor.hash) {
        return result({ chainId: chain.chain_id, seq: anchor.seq, eventId: null, reason: `${anchor.checkpoint} signed hash ${anchor.hash.slice(0, 12)}… at seq ${anchor.seq} but the database holds ${String(hashAtAnchor).slice(0, 12)}…: the chain was rewritten (its hashes recomputed)` });
      }
      anchoredChains++;
      unanchoredEvents += lastSeq - anchor.seq;
    } else {
      unanchoredEvents += lastSeq;
    }
  }
  return result();
}
