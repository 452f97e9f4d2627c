import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { StoreLockedError } from '../../clinical/errors.js';
import { TENANT_SCOPE_SQL, TxCallbacks, type SqlExecutor, type SqlTx, type TxOptions } from './executor.js';

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
}

export class PgliteExecutor implements SqlExecutor {
  readonly kind = 'pglite' as const;
  private readonly connection = {};

  private constructor(
    private readonly db: PGlite,
    private readonly releaseLock: () => void,
  ) {}

  static async open(opts: PgliteOptions = {}): Promise<PgliteExecutor> {
    const release = opts.dir !== undefined ? acquireDirLock(opts.dir) : () => undefined;
    try {
      const db = opts.dir !== undefined ? new PGlite(opts.dir) : new PGlite();
      await db.waitReady;
      return new PgliteExecutor(db, release);
    } catch (err) {
      release();
      throw err;
    }
  }

  async transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts: TxOptions = {}): Promise<T> {
    const callbacks = new TxCallbacks();
    // PGlite is one connection: its transaction() holds a mutex, so transactions run one at a time.
    const result = await this.db.transaction(async (ptx) => {
      if (opts.clinicId !== undefined) await ptx.query(TENANT_SCOPE_SQL, [opts.clinicId]);
      return fn({
        connection: this.connection,
        query: async <R>(text: string, params?: readonly unknown[]) => (await ptx.query<R>(text, params as unknown[])).rows,
        exec: async (sql: string) => {
          await ptx.exec(sql);
        },
        onCommit: (cb) => callbacks.add(cb),
      });
    });
    callbacks.run();
    return result;
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
