/**
 * The seed's audit trail, hash-chained exactly as AuditWriter does it (eventHash from
 * src/storage/sql/audit-chain.ts), so `agenticpet audit verify` passes on the seeded database.
 *
 * Like the service, each database connection writes its own chain. The seed simulates the
 * fleet: time is cut into epochs (a day by default, e.g. one deployment), each epoch runs
 * `tasks` service processes with `connections` pooled connections each, and every event goes
 * to one of those connections at random. Events arrive in time order; a chain's events get
 * strictly increasing times, and a chain's row (with its head) is written when its epoch ends.
 */
import { eventHash, type AuditRow } from '../../src/storage/sql/audit-chain.js';
import { esc, escJson, NULL, type TableSink } from './seed-copy.js';
import { uuidv7At, type Rng } from './seed-data.js';

const GENESIS = '0'.repeat(64);

export interface AuditInput {
  t: number;
  clinicId: string;
  principalId: string;
  role: string;
  action: string;
  entityType: string;
  entityId: string | null;
  outcome: string;
  requestId: string;
  sourceIp: string | null;
  detail: Record<string, string | number | boolean | null> | null;
}

interface Chain {
  writer: string;
  chainId: string | null;
  startedMs: number;
  seq: number;
  hash: string;
  lastMs: number;
}

export interface AuditOptions {
  epochMs: number;
  tasks: number;
  connections: number;
}

export class AuditTrail {
  events = 0;
  chainsWritten = 0;
  readonly byAction = new Map<string, number>();
  private epoch = Number.NEGATIVE_INFINITY;
  private chains: Chain[] = [];

  constructor(
    private readonly eventSink: TableSink,
    private readonly chainSink: TableSink,
    private readonly rng: Rng,
    private readonly opts: AuditOptions,
  ) {}

  emit(e: AuditInput): void {
    const epoch = Math.floor(e.t / this.opts.epochMs);
    if (epoch > this.epoch) this.startEpoch(epoch);
    const chain = this.chains[Math.floor(this.rng() * this.chains.length)]!;
    const ms = Math.max(Math.floor(e.t), chain.lastMs + 1);
    if (chain.chainId === null) {
      // The service makes a chain id (uuidv7) when a connection writes its first event.
      chain.chainId = uuidv7At(ms);
      chain.startedMs = ms;
    }
    const row: AuditRow = {
      chainId: chain.chainId,
      seq: chain.seq + 1,
      id: uuidv7At(ms),
      occurredAt: new Date(ms),
      clinicId: e.clinicId,
      principalId: e.principalId,
      role: e.role,
      action: e.action,
      entityType: e.entityType,
      entityId: e.entityId,
      outcome: e.outcome,
      requestId: e.requestId,
      sourceIp: e.sourceIp,
      detail: e.detail,
    };
    const hash = eventHash(chain.hash, row);
    this.eventSink.add(
      `${row.chainId}\t${row.seq}\t${row.id}\t${row.occurredAt.toISOString()}\t${row.clinicId}\t${row.principalId}\t${row.role}\t${esc(row.action)}\t${esc(row.entityType)}\t` +
        `${row.entityId ?? NULL}\t${esc(row.outcome)}\t${esc(row.requestId!)}\t${row.sourceIp === null ? NULL : esc(row.sourceIp)}\t${row.detail === null ? NULL : escJson(row.detail)}\t${chain.hash}\t${hash}\n`,
    );
    chain.seq = row.seq;
    chain.hash = hash;
    chain.lastMs = ms;
    this.events++;
    const key = `${e.action} ${e.entityType}`;
    this.byAction.set(key, (this.byAction.get(key) ?? 0) + 1);
  }

  /** Writes the heads of the chains still open; call once, after the last event. */
  finish(): void {
    this.closeEpoch();
    this.chains = [];
  }

  private startEpoch(epoch: number): void {
    this.closeEpoch();
    this.epoch = epoch;
    this.chains = [];
    for (let t = 0; t < this.opts.tasks; t++) {
      // A Fargate task's hostname and the Node process id, as writerName() reports them.
      const host = `ip-10-0-${Math.floor(this.rng() * 3) * 16 + 1 + Math.floor(this.rng() * 15)}-${1 + Math.floor(this.rng() * 254)}.ec2.internal`;
      const writer = `${host}:${1 + Math.floor(this.rng() * 60)}`;
      for (let c = 0; c < this.opts.connections; c++) this.chains.push({ writer, chainId: null, startedMs: 0, seq: 0, hash: GENESIS, lastMs: 0 });
    }
  }

  private closeEpoch(): void {
    for (const c of this.chains) {
      if (c.chainId === null) continue;
      this.chainSink.add(`${c.chainId}\t${esc(c.writer)}\t${new Date(c.startedMs).toISOString()}\t${c.seq}\t${c.hash}\n`);
      this.chainsWritten++;
    }
  }
}
