import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { StoreLockedError } from '../../clinical/errors.js';
import type { SqlExecutor, SqlTx, TxOptions } from './executor.js';
import { GroupCommit, isRetryableSqlError, runTransaction, type BatchConnection, type BatchRunner } from './group-commit.js';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite keeps its files open for the life of the process and two processes writing the same
 * directory corrupt it, so the owner holds a pid lock file. A stale lock (dead pid) is taken over.
 */
export function acquireDirLock(dir: string): () => void {
  fs.mkdirSync(dir, { recursive: true });
  const lockPath = path.join(dir, 'agenticpet.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lockPath, 'wx', 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => {
        try {
          if (fs.readFileSync(lockPath, 'utf8') === String(process.pid)) fs.unlinkSync(lockPath);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(lockPath, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new StoreLockedError(
          `The embedded database in ${dir} is in use by another AgenticPet process (pid ${pid}), usually the running server. ` +
            'Stop that process first, or set DATABASE_URL to a PostgreSQL server, which many processes can share.',
        );
      }
      fs.rmSync(lockPath, { force: true });
    }
  }
  throw new StoreLockedError(`Could not take the lock on the embedded database in ${dir}`);
}

export interface PgliteOptions {
  /** Directory for the database files; undefined keeps it in memory (tests). */
  dir?: string;
  /** Clinic transactions per shared commit at most (1 turns group commit off). */
  groupCommitMax?: number;
  /** Clinic transactions waiting at most; more are refused (503). */
  queueMax?: number;
  /** Reported with the size of each group-commit batch. */
  onBatch?: (size: number) => void;
}

const DB_SPAN = { 'db.system': 'postgresql', 'db.client': 'pglite' };

export class PgliteExecutor implements SqlExecutor {
  readonly kind = 'pglite' as const;
  private readonly connection = {};
  /**
   * PGlite is one connection and runs one transaction at a time, so clinic transactions that
   * arrive meanwhile queue and then share one commit.
   */
  readonly group: GroupCommit;
  /** One transaction on one connection (see BatchRunner). */
  private readonly runner: BatchRunner;

  private constructor(
    private readonly db: PGlite,
    private readonly releaseLock: () => void,
    opts: PgliteOptions,
  ) {
    this.runner = { begin: null, run: (body) => this.inTransaction(body) };
    this.group = new GroupCommit(
      this.runner,
      {
        slots: 1,
        maxBatch: opts.groupCommitMax ?? 32,
        maxQueue: opts.queueMax ?? 2_000,
        isFatal: () => false,
        isRetryable: isRetryableSqlError,
        onBatch: opts.onBatch,
      },
    );
  }

  static async open(opts: PgliteOptions = {}): Promise<PgliteExecutor> {
    const release = opts.dir !== undefined ? acquireDirLock(opts.dir) : () => undefined;
    try {
      const db = opts.dir !== undefined ? new PGlite(opts.dir) : new PGlite();
      await db.waitReady;
      return new PgliteExecutor(db, release, opts);
    } catch (err) {
      release();
      throw err;
    }
  }

  /** PGlite's transaction() holds its mutex, BEGINs, and COMMITs (or rolls back on a throw). */
  private async inTransaction(body: (conn: BatchConnection) => Promise<void>): Promise<void> {
    await this.db.transaction(async (ptx) => {
      // In process there is no round trip to save: leads simply run before the next statement.
      const leads: string[] = [];
      const runLeads = async (): Promise<void> => {
        if (leads.length === 0) return;
        const script = leads.join('; ');
        leads.length = 0;
        await ptx.exec(script);
      };
      await body({
        identity: this.connection,
        query: async <R>(text: string, params?: readonly unknown[]) => {
          await runLeads();
          return (await ptx.query<R>(text, params as unknown[])).rows;
        },
        exec: async (sql: string) => {
          await runLeads();
          await ptx.exec(sql);
        },
        lead: (statement: string) => {
          leads.push(statement);
        },
      });
      await runLeads();
    });
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts: TxOptions = {}): Promise<T> {
    return runTransaction(this.runner, this.group, DB_SPAN, fn, opts);
  }

  async query<R>(text: string, params?: readonly unknown[]): Promise<R[]> {
    return (await this.db.query<R>(text, params as unknown[])).rows;
  }

  async ping(): Promise<void> {
    await this.db.query('SELECT 1');
  }

  async close(): Promise<void> {
    try {
      await this.db.close();
    } finally {
      this.releaseLock();
    }
  }
}
