/**
 * Group commit: clinic transactions that arrive while every connection is busy wait in a queue,
 * and the next free connection runs up to maxBatch of them in ONE database transaction — one
 * BEGIN, one COMMIT, one WAL flush — instead of one each. Per-request semantics are kept:
 *
 * - each unit runs under its own savepoint and its own tenant scope (role + app.clinic_id), so
 *   row-level security confines it to its clinic exactly as in a transaction of its own;
 * - a unit that fails is rolled back to its savepoint and rejected with its own error; the
 *   others go on and commit;
 * - a unit is resolved only after the COMMIT that holds its writes succeeded; if the COMMIT
 *   (or the connection) fails, every unit of the batch is rejected and nothing was written;
 * - a unit that hit a deadlock or serialization failure is run once more, in a later batch;
 * - units started `writesOnly` (they only call SqlTx.write, as a diagnosis does) that follow each
 *   other in a batch for the same clinic share one savepoint, one tenant scope and ONE statement
 *   for their writes (multi-row, see SharedWrite): one round trip and one plan for all of them.
 *   If that statement fails, each of them is run again alone in a later batch (as it would have
 *   been without sharing), so one bad unit never fails the others.
 *
 * Under light load a batch holds one unit and runs at once: batching adds no waiting, it only
 * uses the queueing that saturation causes anyway. The queue is bounded: past maxQueue a new
 * unit is refused at once with OverloadedError (503 + Retry-After) rather than waiting.
 */
import type { Attributes } from '@opentelemetry/api';
import { OverloadedError } from '../../clinical/errors.js';
import { bindToActiveContext, withSpan } from '../../observability/tracing.js';
import { scopeSql, sqlTx, TxCallbacks, type SharedWrite, type SqlTx, type TxOptions } from './executor.js';

/** A connection inside an open batch transaction. */
export interface BatchConnection {
  readonly identity: object;
  query<R>(text: string, params?: readonly unknown[]): Promise<R[]>;
  /** A simple-protocol script of one or more statements. */
  exec(sql: string): Promise<void>;
  /**
   * A parameterless statement (BEGIN, SAVEPOINT, the tenant scope) that must run before the
   * next query or exec: the driver sends it in the same write as that one, so it costs no round
   * trip of its own. Leads still pending when the body ends run with the COMMIT.
   */
  lead(statement: string): void;
}

/**
 * Runs body in one transaction on one connection. The body's first lead is `begin` when the
 * runner needs one ("BEGIN"; null where the driver opens the transaction itself); the runner
 * commits when body resolves and rolls back when it throws.
 */
export interface BatchRunner {
  readonly begin: string | null;
  run(body: (conn: BatchConnection) => Promise<void>): Promise<void>;
}

export interface GroupCommitOptions {
  /** Batches in flight at once (connections given to clinic transactions). */
  slots: number;
  /** Units per batch at most (each is a subtransaction; PostgreSQL caches 64 per backend). */
  maxBatch: number;
  /** Units waiting for a connection at most; more are refused with OverloadedError. */
  maxQueue: number;
  /** Errors after which the connection or transaction is unusable: the whole batch fails. */
  isFatal(err: unknown): boolean;
  /** Errors worth one more attempt (deadlock, serialization failure). */
  isRetryable(err: unknown): boolean;
  /** Reported once per batch with its number of units. */
  onBatch?(size: number): void;
}

interface Unit {
  clinicId: string;
  fn: (tx: SqlTx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  callbacks: TxCallbacks;
  attempts: number;
  /** Only writes (TxOptions.writesOnly): may share a statement with its neighbours. */
  writesOnly: boolean;
  /** Its shared statement failed once: it runs alone now, its writes sent as it makes them. */
  alone: boolean;
  /** Writes held for the shared statement. */
  writes: SharedWrite[];
  state: 'pending' | 'kept' | 'failed' | 'retry';
  result?: unknown;
  error?: unknown;
}

export class GroupCommit {
  private readonly queue: Unit[] = [];
  private active = 0;

  constructor(
    private readonly runner: BatchRunner,
    private readonly opts: GroupCommitOptions,
  ) {}

  /** Reports each batch's size (set once metrics exist, after the executor opened). */
  observe(onBatch: (size: number) => void): void {
    this.opts.onBatch = onBatch;
  }

  /** Units waiting for a connection. */
  get depth(): number {
    return this.queue.length;
  }

  /** Batches running now. */
  get inFlight(): number {
    return this.active;
  }

  run<T>(clinicId: string, fn: (tx: SqlTx) => Promise<T>, writesOnly = false): Promise<T> {
    if (this.queue.length >= this.opts.maxQueue) {
      return Promise.reject(new OverloadedError(`Too many transactions are waiting for the database (${this.queue.length}); retry shortly`, 'db_queue'));
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ clinicId, fn, resolve: resolve as (v: unknown) => void, reject, callbacks: new TxCallbacks(), attempts: 0, writesOnly, alone: false, writes: [], state: 'pending' });
      this.pump();
    });
  }

  private pump(): void {
    while (this.active < this.opts.slots && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.opts.maxBatch);
      this.active++;
      void this.runBatch(batch).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  private async runBatch(batch: Unit[]): Promise<void> {
    this.opts.onBatch?.(batch.length);
    const txn = {};
    try {
      await this.runner.run(async (conn) => {
        // BEGIN, each unit's savepoint and its tenant scope are leads: they travel with the
        // unit's first statement, so a unit that runs one statement costs one round trip.
        if (this.runner.begin !== null) conn.lead(this.runner.begin);
        if (batch.length === 1) {
          // Alone: no savepoint needed, a failure rolls back the whole transaction.
          const unit = batch[0]!;
          conn.lead(scopeSql(unit.clinicId));
          unit.result = await unit.fn(sqlTx(conn, conn.identity, txn, unit.callbacks));
          unit.state = 'kept';
          return;
        }
        let release = false;
        // Writes-only units of one clinic, run and waiting for their shared statement.
        let group: Unit[] = [];
        const flush = async (): Promise<void> => {
          if (group.length === 0) return;
          const units = group;
          group = [];
          if (release) conn.lead('RELEASE SAVEPOINT unit');
          conn.lead('SAVEPOINT unit');
          conn.lead(scopeSql(units[0]!.clinicId));
          try {
            for (const { text, params } of sharedStatements(units.flatMap((u) => u.writes))) await conn.query(text, params);
            for (const unit of units) unit.state = 'kept';
            release = true;
          } catch (err) {
            if (this.opts.isFatal(err)) throw err;
            await conn.exec('ROLLBACK TO SAVEPOINT unit; RELEASE SAVEPOINT unit');
            release = false;
            // Undone latest first, as each unit's callbacks restore what the unit found.
            for (let i = units.length - 1; i >= 0; i--) units[i]!.callbacks.rolledBack();
            if (units.length === 1) this.failed(units[0]!, err);
            else {
              // Which of them failed is unknown: each runs again alone (no attempt used up).
              for (const unit of units) {
                unit.state = 'retry';
                unit.alone = true;
              }
            }
          }
        };
        for (const unit of batch) {
          if (unit.writesOnly && !unit.alone) {
            if (group.length > 0 && group[0]!.clinicId !== unit.clinicId) await flush();
            try {
              unit.result = await unit.fn(sqlTx(conn, conn.identity, txn, unit.callbacks, unit.writes));
              group.push(unit);
            } catch (err) {
              // It sent nothing: dropping its writes undoes it.
              unit.writes.length = 0;
              unit.callbacks.rolledBack();
              this.failed(unit, err);
            }
            continue;
          }
          await flush();
          if (release) conn.lead('RELEASE SAVEPOINT unit');
          conn.lead('SAVEPOINT unit');
          conn.lead(scopeSql(unit.clinicId));
          try {
            unit.result = await unit.fn(sqlTx(conn, conn.identity, txn, unit.callbacks));
            unit.state = 'kept';
            release = true;
          } catch (err) {
            if (this.opts.isFatal(err)) throw err;
            // Runs any of this unit's leads still pending first, so the savepoint exists.
            await conn.exec('ROLLBACK TO SAVEPOINT unit; RELEASE SAVEPOINT unit');
            release = false;
            unit.callbacks.rolledBack();
            this.failed(unit, err);
          }
        }
        await flush();
      });
    } catch (err) {
      // Nothing of this batch was committed.
      for (const unit of batch) {
        if (unit.state === 'failed' || unit.state === 'retry') continue;
        unit.callbacks.rolledBack();
        if (batch.length === 1) this.failed(unit, err);
        else {
          unit.state = 'failed';
          unit.error = err;
        }
      }
    }
    for (const unit of batch) {
      if (unit.state === 'kept') {
        unit.callbacks.committed();
        unit.resolve(unit.result);
      } else if (unit.state === 'failed') unit.reject(unit.error);
      else if (unit.state === 'retry') {
        unit.state = 'pending';
        unit.callbacks = new TxCallbacks();
        unit.writes = [];
        this.queue.unshift(unit);
      }
    }
  }

  private failed(unit: Unit, err: unknown): void {
    if (unit.attempts === 0 && this.opts.isRetryable(err)) {
      unit.attempts++;
      unit.state = 'retry';
    } else {
      unit.state = 'failed';
      unit.error = err;
    }
  }
}

/** Held writes as statements: each run of consecutive writes of one kind becomes one. */
function sharedStatements(writes: readonly SharedWrite[]): Array<{ text: string; params: unknown[] }> {
  const out: Array<{ text: string; params: unknown[] }> = [];
  let run: SharedWrite[] = [];
  for (const w of writes) {
    if (run.length > 0 && run[0]!.statement !== w.statement) {
      out.push(run[0]!.statement(run));
      run = [];
    }
    run.push(w);
  }
  if (run.length > 0) out.push(run[0]!.statement(run));
  return out;
}

/** PostgreSQL SQLSTATEs after which the same work may succeed if run again. */
export function isRetryableSqlError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === '40P01' || code === '40001';
}

/**
 * A transaction on either executor: a clinic's goes through group commit, a system one (key
 * lookups, bootstrap, migrations) runs alone. Either way it is a span of its own request, even
 * when it runs inside a batch another request started.
 */
export async function runTransaction<T>(runner: BatchRunner, group: GroupCommit, span: Attributes, fn: (tx: SqlTx) => Promise<T>, opts: TxOptions): Promise<T> {
  const traced = bindToActiveContext((tx: SqlTx) => withSpan(opts.clinicId === undefined ? 'db system transaction' : 'db transaction', span, () => fn(tx)));
  if (opts.clinicId !== undefined) return group.run(opts.clinicId, traced, opts.writesOnly === true);
  const callbacks = new TxCallbacks();
  let result: T;
  try {
    await runner.run(async (conn) => {
      if (runner.begin !== null) conn.lead(runner.begin);
      result = await traced(sqlTx(conn, conn.identity, undefined, callbacks));
    });
  } catch (err) {
    callbacks.rolledBack();
    throw err;
  }
  callbacks.committed();
  return result!;
}
