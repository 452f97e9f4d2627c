/**
 * COPY ... FROM STDIN (text format) into one table over a connection of its own, streamed: rows
 * are gathered into chunks of ~256 KiB and written with backpressure, and each batch is one COPY
 * statement (its own transaction), so memory stays bounded whatever the volume.
 */
import { execFile } from 'node:child_process';
import pg from 'pg';
import { from as copyFrom, type CopyStreamQuery } from 'pg-copy-streams';

/** NULL in COPY text format. */
export const NULL = '\\N';

/** A text value for COPY text format: backslash, tab, newline and carriage return escaped. */
export function esc(s: string): string {
  return /[\\\t\n\r]/.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r')) : s;
}

/** JSON for a jsonb column: JSON.stringify escapes every control character, so only backslashes remain. */
export function escJson(value: unknown): string {
  const s = JSON.stringify(value);
  return s.includes('\\') ? s.replace(/\\/g, '\\\\') : s;
}

export const orNull = (s: string | null | undefined): string => (s === null || s === undefined ? NULL : esc(s));

const CHUNK = 256 * 1024;

/** Lowers the scheduling priority of this connection's server process, like `nice` does for ours. */
export async function reniceBackend(client: pg.Client, niceness: number): Promise<boolean> {
  const [row] = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
  return new Promise((resolve) => execFile('renice', ['-n', String(niceness), '-p', String(row!.pid)], (err) => resolve(err === null)));
}

export class TableSink {
  rows = 0;
  private stream: CopyStreamQuery | undefined;
  private finished: Promise<void> | undefined;
  private failure: Error | undefined;
  private parts: string[] = [];
  private size = 0;

  constructor(
    readonly table: string,
    readonly columns: readonly string[],
    private readonly client: pg.Client,
  ) {}

  /** Adds one row (columns already escaped, tab-separated, newline-terminated). */
  add(line: string, rows = 1): void {
    this.parts.push(line);
    this.size += line.length;
    this.rows += rows;
  }

  get full(): boolean {
    return this.size >= CHUNK;
  }

  /** Sends what is gathered; waits only when the connection pushes back. */
  async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.size === 0) return;
    const stream = this.open();
    const data = this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!stream.write(data)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          stream.off('error', onError);
          resolve();
        };
        const onError = (err: Error) => {
          stream.off('drain', onDrain);
          reject(err);
        };
        stream.once('drain', onDrain);
        stream.once('error', onError);
      });
    }
  }

  /** Ends this batch's COPY: resolves once PostgreSQL has committed it. */
  async endBatch(): Promise<void> {
    await this.flush();
    const stream = this.stream;
    const finished = this.finished;
    this.stream = undefined;
    this.finished = undefined;
    if (stream === undefined) return;
    stream.end();
    await finished;
  }

  private open(): CopyStreamQuery {
    if (this.stream !== undefined) return this.stream;
    const stream = this.client.query(copyFrom(`COPY ${this.table} (${this.columns.join(', ')}) FROM STDIN`));
    this.finished = new Promise<void>((resolve, reject) => {
      stream.on('finish', resolve);
      stream.on('error', (err: Error) => {
        this.failure = new Error(`COPY ${this.table}: ${err.message}`);
        reject(this.failure);
      });
    });
    // A failure surfaces at the next flush or endBatch; keep it from being unhandled meanwhile.
    this.finished.catch(() => undefined);
    this.stream = stream;
    return stream;
  }
}
