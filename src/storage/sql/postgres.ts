import pg from 'pg';
import { StorageUnavailableError } from '../../clinical/errors.js';
import type { SqlExecutor, SqlTx, TxOptions } from './executor.js';
import { GroupCommit, isRetryableSqlError, runTransaction, type BatchConnection, type BatchRunner } from './group-commit.js';
import { isNotPrimaryError, PrimaryLocator } from './primary.js';

export interface PostgresOptions {
  connectionString: string;
  poolMax: number;
  /** Called with pool errors on idle clients, which would otherwise crash the process. */
  onPoolError?: (err: Error) => void;
  /** Clinic transactions per shared commit at most (1 turns group commit off). */
  groupCommitMax?: number;
  /** Clinic transactions waiting for a connection at most; more are refused (503). */
  queueMax?: number;
  /** Reported with the size of each group-commit batch. */
  onBatch?: (size: number) => void;
  /** Called with host:port when a multi-host URL's primary is found (at start, after a failover). */
  onPrimary?: (host: string) => void;
}

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '53300']);

/** True when the error means the database could not be reached, not that the SQL was wrong. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code;
  if (code !== undefined && (CONNECTION_ERROR_CODES.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/i.test(err.message);
}

/**
 * True when this connection can no longer write: the server went away, or it is up but read-only
 * (25006: a primary demoted by a failover, or a standby). The connection is destroyed, its
 * transaction (the whole group-commit batch) fails with nothing written, and the request is 503.
 */
export function isPrimaryLost(err: unknown): boolean {
  return isConnectionError(err) || isNotPrimaryError(err);
}

function unavailable(err: unknown): never {
  if (err instanceof StorageUnavailableError) throw err;
  if (isNotPrimaryError(err)) throw new StorageUnavailableError('PostgreSQL is read-only (not the primary); a failover may be in progress', err, 1);
  if (isConnectionError(err)) throw new StorageUnavailableError('PostgreSQL is unreachable', err);
  throw err;
}

/**
 * Statement names: each distinct parameterised SQL text is prepared once per connection and then
 * only bound and executed, instead of parsed and planned on every call (the write of a diagnosis
 * is a four-table CTE). The texts are the repositories' own, a small finite set (filters combine
 * a few fixed fragments), so the map stays small; a name is never reused for another text.
 */
const statementNames = new Map<string, string>();
const MAX_NAMED_STATEMENTS = 500;

function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) statementNames.set(text, (name = `ap${statementNames.size + 1}`));
  return name;
}

interface Corkable {
  connection: { stream: { cork(): void; uncork(): void } };
}

/**
 * A pooled client as a BatchConnection. The pool's clients run in pg's pipeline mode, which sends
 * a query without waiting for the one before it to be answered; the leads (BEGIN, SAVEPOINT, the
 * tenant scope) go as one simple-protocol script and the statement right behind it, corked into
 * one socket write, and each is answered in turn. The server runs them in the order sent, as it
 * does queries a unit issues together (Promise.all), which pipeline mode now also sends at once.
 * The script starts with BEGIN or SAVEPOINT, so once it runs at all, a failure in it aborts the
 * transaction and the statement behind it fails unrun (25P02); it cannot fail to parse, being
 * constant text and a clinic id that scopeSql checked is a canonical uuid.
 */
function batchConnection(client: pg.PoolClient): BatchConnection {
  const leads: string[] = [];
  const takeLeads = (): string => {
    const script = leads.join('; ');
    leads.length = 0;
    return script;
  };
  return {
    identity: client,
    query: async <R>(text: string, params?: readonly unknown[]) => {
      const config = params === undefined || params.length === 0 ? { text } : { name: statementName(text), text, values: params as unknown[] };
      if (leads.length === 0) return (await client.query(config)).rows as R[];
      const { stream } = (client as unknown as Corkable).connection;
      stream.cork();
      let ahead: Promise<unknown>;
      let main: Promise<pg.QueryResult>;
      try {
        ahead = client.query(takeLeads());
        main = client.query(config);
      } finally {
        stream.uncork();
      }
      // Both are awaited, so neither rejection goes unheard.
      const [lead, result] = await Promise.allSettled([ahead, main]);
      if (lead.status === 'rejected') throw lead.reason;
      if (result.status === 'rejected') throw result.reason;
      return result.value.rows as R[];
    },
    exec: async (sql: string) => {
      await client.query(leads.length === 0 ? sql : `${takeLeads()}; ${sql}`);
    },
    lead: (statement: string) => {
      leads.push(statement);
    },
  };
}

const DB_SPAN = { 'db.system': 'postgresql', 'db.client': 'pg' };

export class PostgresExecutor implements SqlExecutor {
  readonly kind = 'postgres' as const;
  /** The pool on the primary; with a multi-host URL, found and refound by probing. */
  private readonly locator: PrimaryLocator;
  private readonly poolMax: number;
  /** Clinic transactions go through group commit; system ones (auth, migrations) do not. */
  readonly group: GroupCommit;
  /** One transaction on one connection (see BatchRunner). */
  private readonly runner: BatchRunner;

  constructor(opts: PostgresOptions) {
    this.poolMax = opts.poolMax;
    this.locator = new PrimaryLocator({
      connectionString: opts.connectionString,
      pool: {
        max: opts.poolMax,
        connectionTimeoutMillis: 5_000,
        idleTimeoutMillis: 30_000,
        // A primary that vanishes without a reset (a host lost, not a process) is noticed by the
        // kernel's keepalive probes on an idle connection instead of never.
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
        // See batchConnection: lets a transaction's leads share a round trip with its first statement.
        pipeline: true,
      },
      onPoolError: opts.onPoolError,
      onPrimary: opts.onPrimary,
      isLoss: isPrimaryLost,
    });
    this.runner = { begin: 'BEGIN', run: (body) => this.onConnection(body) };
    this.group = new GroupCommit(
      this.runner,
      {
        // One connection stays free for system queries (key lookups) and health checks.
        slots: Math.max(1, opts.poolMax - 1),
        maxBatch: opts.groupCommitMax ?? 32,
        maxQueue: opts.queueMax ?? 2_000,
        isFatal: isPrimaryLost,
        isRetryable: isRetryableSqlError,
        onBatch: opts.onBatch,
      },
    );
  }

  /** Runs body on a pooled connection, then COMMIT; ROLLBACK (or a destroyed connection) on error. */
  private async onConnection(body: (conn: BatchConnection) => Promise<void>): Promise<void> {
    const pool = this.locator.current ?? (await this.locator.pool());
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      this.locator.lost(pool, err);
      unavailable(err);
    }
    let broken: Error | undefined;
    // A checked-out client whose connection drops between queries emits 'error'; unheard, that
    // would crash the process. The next query fails anyway, and the client is destroyed below.
    const onError = (err: Error) => {
      broken = err;
      this.locator.lost(pool, err);
    };
    client.on('error', onError);
    try {
      const conn = batchConnection(client);
      await body(conn);
      // With any leads still pending (a body that ran no statement), in the same script.
      await conn.exec('COMMIT');
    } catch (err) {
      if (isPrimaryLost(err)) {
        broken = err as Error;
        this.locator.lost(pool, err);
      } else await client.query('ROLLBACK').catch((rollbackErr: Error) => (broken = rollbackErr));
      unavailable(err);
    } finally {
      client.off('error', onError);
      // A broken connection is destroyed rather than returned to the pool.
      client.release(broken);
    }
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts: TxOptions = {}): Promise<T> {
    return runTransaction(this.runner, this.group, DB_SPAN, fn, opts);
  }

  async query<R>(text: string, params?: readonly unknown[]): Promise<R[]> {
    const pool = this.locator.current ?? (await this.locator.pool());
    try {
      // pg releases the client with the error, which destroys it.
      return (await pool.query(text, params as unknown[])).rows as R[];
    } catch (err) {
      this.locator.lost(pool, err);
      unavailable(err);
    }
  }

  /** Pool usage for the metrics: connections open, idle, and requests waiting for one. */
  stats(): { total: number; idle: number; waiting: number; max: number } {
    const pool = this.locator.current;
    return { total: pool?.totalCount ?? 0, idle: pool?.idleCount ?? 0, waiting: pool?.waitingCount ?? 0, max: this.poolMax };
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.locator.close();
  }
}
