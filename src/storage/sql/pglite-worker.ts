/**
 * The embedded database's own thread. PGlite is PostgreSQL compiled to WebAssembly and runs
 * on the thread that calls it: in the request thread it took about 45 % of the embedded
 * service's CPU. Here it runs beside the request thread, on the other core, and PgliteExecutor
 * (pglite.ts) sends it statements as messages. One transaction at a time, as PGlite itself
 * allows: a statement outside a transaction waits for PGlite's own lock.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { READY_ID, type WorkerError, type WorkerReply, type WorkerRequest } from './pglite-protocol.js';

function serialise(err: unknown): WorkerError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: WorkerError['fields'] = {};
  for (const [k, v] of Object.entries(err)) {
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') fields[k] = v;
  }
  return { name: err.name, message: err.message, fields };
}

const port = parentPort!;
const reply = (r: WorkerReply) => port.postMessage(r);
const fail = (id: number, err: unknown) => reply({ id, ok: false, error: serialise(err) });

/** Thrown inside PGlite's transaction() to make it roll back. */
const ROLLBACK = Symbol('rollback');

/** Open transactions: their handle, and how to end them (commit or roll back). */
const open = new Map<number, { ptx: Transaction; end: (commit: boolean, replyId: number) => void }>();

function begin(id: number, tx: number, db: PGlite): void {
  let endId = -1;
  db.transaction(async (ptx) => {
    const commit = await new Promise<boolean>((resolve) => {
      open.set(tx, {
        ptx,
        end: (c, replyId) => {
          endId = replyId;
          resolve(c);
        },
      });
      reply({ id, ok: true });
    });
    open.delete(tx);
    if (!commit) throw ROLLBACK;
  }).then(
    () => reply({ id: endId, ok: true }),
    (err: unknown) => {
      open.delete(tx);
      if (endId < 0) fail(id, err); // BEGIN itself failed: the begin request gets the error
      else if (err === ROLLBACK) reply({ id: endId, ok: true });
      else fail(endId, err); // COMMIT failed
    },
  );
}

async function main(): Promise<void> {
  const dir = (workerData as { dir?: string }).dir;
  let db: PGlite;
  try {
    db = dir !== undefined ? new PGlite(dir) : new PGlite();
    await db.waitReady;
  } catch (err) {
    fail(READY_ID, err);
    return;
  }
  port.on('message', (m: WorkerRequest) => {
    void (async () => {
      try {
        switch (m.op) {
          case 'begin':
            begin(m.id, m.tx, db);
            return;
          case 'end': {
            const t = open.get(m.tx);
            if (t === undefined) throw new Error(`no open transaction ${m.tx}`);
            t.end(m.commit, m.id);
            return;
          }
          case 'query':
          case 'exec': {
            const target = m.tx === undefined ? db : open.get(m.tx)?.ptx;
            if (target === undefined) throw new Error(`no open transaction ${m.tx}`);
            if (m.op === 'exec') {
              await target.exec(m.sql);
              reply({ id: m.id, ok: true });
              return;
            }
            if (m.leads !== undefined) await target.exec(m.leads);
            reply({ id: m.id, ok: true, rows: (await target.query(m.text, m.params as unknown[])).rows });
            return;
          }
          case 'close':
            await db.close();
            reply({ id: m.id, ok: true });
            port.close();
            return;
        }
      } catch (err) {
        fail(m.id, err);
      }
    })();
  });
  reply({ id: READY_ID, ok: true });
}

void main();
