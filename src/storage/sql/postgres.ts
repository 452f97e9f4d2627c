import pg from 'pg';
import { StorageUnavailableError } from '../../clinical/errors.js';
import { beginScopedSql, TxCallbacks, type SqlExecutor, type SqlTx, type TxOptions } from './executor.js';

export interface PostgresOptions {
  connectionString: string;
  poolMax: number;
  /** Called with pool errors on idle clients, which would otherwise crash the process. */
  onPoolError?: (err: Error) => void;
}

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '53300']);

/** True when the error means the database could not be reached, not that the SQL was wrong. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code;
  if (code !== undefined && (CONNECTION_ERROR_CODES.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/i.test(err.message);
}

function unavailable(err: unknown): never {
  if (isConnectionError(err)) throw new StorageUnavailableError('PostgreSQL is unreachable', err);
  throw err;
}

export class PostgresExecutor implements SqlExecutor {
  readonly kind = 'postgres' as const;
  private readonly pool: pg.Pool;

  constructor(opts: PostgresOptions) {
    this.pool = new pg.Pool({
      connectionString: opts.connectionString,
      max: opts.poolMax,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
    });
    this.pool.on('error', (err) => opts.onPoolError?.(err));
  }

  async transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts: TxOptions = {}): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      unavailable(err);
    }
    const callbacks = new TxCallbacks();
    let broken: Error | undefined;
    try {
      await client.query(opts.clinicId === undefined ? 'BEGIN' : beginScopedSql(opts.clinicId));
      const tx: SqlTx = {
        connection: client,
        query: async <R>(text: string, params?: readonly unknown[]) => (await client.query(text, params as unknown[])).rows as R[],
        exec: async (sql: string) => {
          await client.query(sql);
        },
        onCommit: (cb) => callbacks.add(cb),
      };
      const result = await fn(tx);
      await client.query('COMMIT');
      callbacks.run();
      return result;
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      else await client.query('ROLLBACK').catch((rollbackErr: Error) => (broken = rollbackErr));
      unavailable(err);
    } finally {
      // A broken connection is destroyed rather than returned to the pool.
      client.release(broken);
    }
  }

  async query<R>(text: string, params?: readonly unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query(text, params as unknown[])).rows as R[];
    } catch (err) {
      unavailable(err);
    }
  }

  /** Pool usage for the metrics: connections open, idle, and requests waiting for one. */
  stats(): { total: number; idle: number; waiting: number } {
    return { total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
