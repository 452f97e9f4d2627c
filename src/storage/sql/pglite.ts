import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { StorageUnavailableError, StoreLockedError } from '../../clinical/errors.js';
import type { SqlExecutor, SqlTx, TxOptions } from './executor.js';
import { GroupCommit, isRetryableSqlError, runTransaction, type BatchConnection, type BatchRunner } from './group-commit.js';
import { READY_ID, type WorkerError, type WorkerReply, type WorkerRequest } from './pglite-protocol.js';

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

/** Requests as sent: without the id, which the executor assigns. */
type Request = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * Starts pglite-worker on its own thread. Under tsx (tests, bench scripts) the worker is a
 * TypeScript file, and a worker thread does not inherit tsx's loader, so it registers it first.
 */
function startWorker(dir: string | undefined): Worker {
  const ts = import.meta.url.endsWith('.ts');
  const entry = new URL(`./pglite-worker${ts ? '.ts' : '.js'}`, import.meta.url);
  if (!ts) return new Worker(entry, { workerData: { dir } });
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry.href)}); })`, { eval: true, workerData: { dir } });
}

/** The database's error, rebuilt on this side with its fields (code, constraint, detail...). */
function rebuild(e: WorkerError): Error {
  const err = Object.assign(new Error(e.message), e.fields);
  err.name = e.name;
  return err;
}

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
  private readonly pending = new Map<number, { resolve: (rows: unknown[] | undefined) => void; reject: (err: unknown) => void }>();
  private nextId = READY_ID + 1;
  private nextTx = 1;
  /** Set once the worker has exited: every call fails at once with this. */
  private gone: Error | null = null;

  private constructor(
    private readonly worker: Worker,
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
    worker.on('message', (r: WorkerReply) => this.settle(r));
    const lost = (err: Error) => {
      this.gone ??= new StorageUnavailableError('The embedded database stopped; restart the service', err);
      for (const p of this.pending.values()) p.reject(this.gone);
      this.pending.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`the embedded database's thread exited with code ${code}`)));
    // An idle database thread does not keep the process alive; one with work in flight does.
    worker.unref();
  }

  static async open(opts: PgliteOptions = {}): Promise<PgliteExecutor> {
    const release = opts.dir !== undefined ? acquireDirLock(opts.dir) : () => undefined;
    let worker: Worker | undefined;
    try {
      worker = startWorker(opts.dir);
      const w = worker;
      await new Promise<void>((resolve, reject) => {
        const onReady = (r: WorkerReply) => {
          if (r.id !== READY_ID) return;
          w.off('message', onReady);
          if (r.ok) resolve();
          else reject(rebuild(r.error));
        };
        w.on('message', onReady);
        w.once('error', reject);
        w.once('exit', (code) => reject(new Error(`the embedded database's thread exited with code ${code} while opening`)));
      });
      worker.removeAllListeners('error').removeAllListeners('exit');
      return new PgliteExecutor(worker, release, opts);
    } catch (err) {
      await worker?.terminate();
      release();
      throw err;
    }
  }

  private settle(r: WorkerReply): void {
    const p = this.pending.get(r.id);
    if (p === undefined) return;
    this.pending.delete(r.id);
    if (this.pending.size === 0) this.worker.unref();
    if (r.ok) p.resolve(r.rows);
    else p.reject(rebuild(r.error));
  }

  private call(req: Request): Promise<unknown[] | undefined> {
    if (this.gone !== null) return Promise.reject(this.gone);
    const id = this.nextId++;
    if (this.pending.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id });
    });
  }

  /**
   * One transaction on the database thread: BEGIN there, the body's statements, then COMMIT
   * (or ROLLBACK when the body throws). Leads travel with the next statement.
   */
  private async inTransaction(body: (conn: BatchConnection) => Promise<void>): Promise<void> {
    const tx = this.nextTx++;
    await this.call({ op: 'begin', tx });
    const leads: string[] = [];
    const takeLeads = (): string | undefined => {
      if (leads.length === 0) return undefined;
      const script = leads.join('; ');
      leads.length = 0;
      return script;
    };
    try {
      await body({
        identity: this.connection,
        query: async <R>(text: string, params?: readonly unknown[]) => (await this.call({ op: 'query', tx, text, params, leads: takeLeads() })) as R[],
        exec: async (sql: string) => {
          const before = takeLeads();
          await this.call({ op: 'exec', tx, sql: before === undefined ? sql : `${before}; ${sql}` });
        },
        lead: (statement: string) => {
          leads.push(statement);
        },
      });
      const rest = takeLeads();
      if (rest !== undefined) await this.call({ op: 'exec', tx, sql: rest });
    } catch (err) {
      await this.call({ op: 'end', tx, commit: false }).catch(() => undefined);
      throw err;
    }
    await this.call({ op: 'end', tx, commit: true });
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts: TxOptions = {}): Promise<T> {
    return runTransaction(this.runner, this.group, DB_SPAN, fn, opts);
  }

  async query<R>(text: string, params?: readonly unknown[]): Promise<R[]> {
    return (await this.call({ op: 'query', text, params })) as R[];
  }

  async ping(): Promise<void> {
    await this.call({ op: 'query', text: 'SELECT 1' });
  }

  async close(): Promise<void> {
    try {
      if (this.gone === null) await this.call({ op: 'close' });
      await this.worker.terminate();
    } finally {
      this.releaseLock();
    }
  }
}
