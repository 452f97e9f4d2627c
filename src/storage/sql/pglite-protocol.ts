/**
 * The messages between PgliteExecutor (pglite.ts) and the embedded database's thread
 * (pglite-worker.ts). Types and constants only: importing this runs nothing.
 */
export type WorkerRequest =
  | { id: number; op: 'query'; text: string; params?: readonly unknown[]; leads?: string; tx?: number }
  | { id: number; op: 'exec'; sql: string; tx?: number }
  | { id: number; op: 'begin'; tx: number }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'close' };

/** An error as it crosses the thread boundary: its message and its own scalar fields (code, constraint...). */
export interface WorkerError {
  name: string;
  message: string;
  fields: Record<string, string | number | boolean | null>;
}

export type WorkerReply = { id: number; ok: true; rows?: unknown[] } | { id: number; ok: false; error: WorkerError };

/** The id of the reply that says the database is open (or could not be opened). */
export const READY_ID = 0;
