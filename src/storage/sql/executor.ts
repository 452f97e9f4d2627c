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
  /** Runs after COMMIT succeeded; never after a rollback. */
  onCommit(fn: () => void): void;
}

export interface TxOptions {
  /** Run under row-level security for this clinic. */
  clinicId?: string;
}

export interface SqlExecutor {
  readonly kind: 'postgres' | 'pglite';
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
 * BEGIN and the tenant scope as one simple-protocol script, saving a round trip per
 * transaction. The clinic id is inlined, so it must be a canonical uuid (it always comes from
 * the api_keys table, never from a request).
 */
export function beginScopedSql(clinicId: string): string {
  if (!UUID.test(clinicId)) throw new Error('clinic id is not a canonical uuid');
  return `BEGIN; SELECT set_config('role', '${APP_ROLE}', true), set_config('app.clinic_id', '${clinicId}', true)`;
}

export class TxCallbacks {
  private readonly callbacks: Array<() => void> = [];
  add(fn: () => void): void {
    this.callbacks.push(fn);
  }
  run(): void {
    for (const fn of this.callbacks) fn();
  }
}
