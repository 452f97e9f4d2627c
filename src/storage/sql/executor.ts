/**
 * The SQL executor: the one seam between the repositories and a database driver. Two
 * adapters (pg pool, embedded PGlite) run the same SQL and the same migrations.
 *
 * A transaction opened for a clinic switches to the unprivileged `agenticpet_app` role and
 * sets `app.clinic_id`, so PostgreSQL row-level security confines every statement to that
 * clinic even if a query forgets its filter. System transactions (auth lookup, bootstrap,
 * migrations, audit verification) run as the connecting role.
 */
export interface SqlTx {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<R[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /** Identity of the physical connection, stable across transactions on it. */
  readonly connection: object;
  /**
   * Identity of the physical transaction. With group commit several units of work (each its
   * own SqlTx, isolated by a savepoint) share one; otherwise it is the SqlTx itself.
   */
  readonly txn: object;
  /** Runs after COMMIT succeeded; never after a rollback. */
  onCommit(fn: () => void): void;
  /** Runs when this unit's work is undone (its savepoint or the whole transaction rolled back). */
  onRollback(fn: () => void): void;
  /**
   * A write that answers nothing. Sent at once, unless the unit was started with `writesOnly`
   * inside a group-commit batch: then it is held, and the writes of the batch's units of the same
   * clinic go as ONE statement built by their shared `statement` (see group-commit.ts).
   */
  write(w: SharedWrite): Promise<void>;
}

/**
 * A write that several units may send as one statement: `statement` receives this write and
 * those of the same kind from the units after it in a batch, in order, and returns one statement
 * that does all of them (multi-row VALUES). Writes merge when their `statement` is the same function.
 */
export interface SharedWrite {
  readonly statement: (writes: readonly SharedWrite[]) => { text: string; params: unknown[] };
}

/** The statement for one write alone. */
export function statementOf(w: SharedWrite): { text: string; params: unknown[] } {
  return w.statement([w]);
}

export interface TxOptions {
  /** Run under row-level security for this clinic. */
  clinicId?: string;
  /**
   * The transaction only writes, through SqlTx.write (a query or exec in it is a bug and fails):
   * group commit may then send its writes in one statement with other units' of the same clinic.
   */
  writesOnly?: boolean;
}

/** The group-commit queue of an executor, as the metrics see it. */
export interface CommitQueue {
  readonly depth: number;
  readonly inFlight: number;
  observe(onBatch: (size: number) => void): void;
}

export interface SqlExecutor {
  readonly kind: 'postgres' | 'pglite';
  /** Where clinic transactions queue and share commits. */
  readonly group?: CommitQueue;
  transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts?: TxOptions): Promise<T>;
  /** Autocommit statement as the connecting role. */
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<R[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const APP_ROLE = 'agenticpet_app';

/** SQL that scopes the current transaction to a clinic under RLS. */
export const TENANT_SCOPE_SQL = `SELECT set_config('role', '${APP_ROLE}', true), set_config('app.clinic_id', $1, true)`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The tenant scope as one parameterless statement, a lead that travels with the unit's first
 * statement (group-commit.ts). The clinic id is inlined, so it must be a canonical uuid (it always
 * comes from the api_keys table, never from a request).
 */
export function scopeSql(clinicId: string): string {
  if (!UUID.test(clinicId)) throw new Error('clinic id is not a canonical uuid');
  return `SELECT set_config('role', '${APP_ROLE}', true), set_config('app.clinic_id', '${clinicId}', true)`;
}

/** The commit and rollback callbacks of one unit of work. */
export class TxCallbacks {
  private readonly commits: Array<() => void> = [];
  private readonly rollbacks: Array<() => void> = [];
  onCommit(fn: () => void): void {
    this.commits.push(fn);
  }
  onRollback(fn: () => void): void {
    this.rollbacks.push(fn);
  }
  committed(): void {
    for (const fn of this.commits) fn();
  }
  /** Latest first, as savepoints unwind. */
  rolledBack(): void {
    for (let i = this.rollbacks.length - 1; i >= 0; i--) this.rollbacks[i]!();
  }
}

/**
 * Wraps a driver connection as a SqlTx whose callbacks go to `callbacks`. With `held`, the unit
 * is writes-only: its writes are collected there for a shared statement and a query fails.
 */
export function sqlTx(
  conn: { query<R>(text: string, params?: readonly unknown[]): Promise<R[]>; exec(sql: string): Promise<void> },
  connection: object,
  txn: object | undefined,
  callbacks: TxCallbacks,
  held?: SharedWrite[],
): SqlTx {
  const refuse = () => Promise.reject(new Error('a writes-only transaction may only write (SqlTx.write)'));
  const tx: SqlTx = {
    connection,
    get txn() {
      return txn ?? tx;
    },
    query: held === undefined ? (text, params) => conn.query(text, params) : refuse,
    exec: held === undefined ? (sql) => conn.exec(sql) : refuse,
    write:
      held === undefined
        ? async (w) => {
            const { text, params } = statementOf(w);
            await conn.query(text, params);
          }
        : (w) => {
            held.push(w);
            return Promise.resolve();
          },
    onCommit: (fn) => callbacks.onCommit(fn),
    onRollback: (fn) => callbacks.onRollback(fn),
  };
  return tx;
}
