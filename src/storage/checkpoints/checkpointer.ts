/**
 * Writes this process's signed audit checkpoints: on a timer (unref'd, so it never keeps the
 * process alive) and once more at graceful shutdown. Nothing here runs on a request: the heads
 * come from the AuditWriter's memory. A store that is down costs a log line and a metric; the
 * same sequence number is tried again at the next interval, so the writer's sequence stays
 * without gaps.
 */
import os from 'node:os';
import type { KeyObject } from 'node:crypto';
import { uuidv7 } from '../../clinical/ids.js';
import type { ChainHead } from '../sql/audit-chain.js';
import { bodyDigest, CHECKPOINT_FORMAT, checkpointName, signCheckpoint, sortedHeads, type CheckpointBody, type SignedCheckpoint } from './checkpoint.js';
import { CheckpointExistsError, type CheckpointStore } from './stores.js';

export interface CheckpointerOptions {
  store: CheckpointStore;
  signingKey: KeyObject;
  /** The committed heads of this process's chains (AuditWriter.heads). */
  heads: () => ChainHead[];
  intervalSeconds: number;
  /** Called with each failed write (the next interval retries). */
  onError?: (err: unknown, name: string) => void;
  /** Called with each written checkpoint's name. */
  onWritten?: (name: string) => void;
  /** Called with the heads a written checkpoint signed (AuditWriter.anchored). */
  onAnchored?: (heads: ChainHead[]) => void;
  /** For tests: a fixed writer id. */
  writer?: string;
}

export class Checkpointer {
  readonly writer: string;
  private readonly host = `${os.hostname()}:${process.pid}`;
  private seq = 1;
  private prev: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<boolean> | null = null;
  private stopped = false;

  constructor(private readonly opts: CheckpointerOptions) {
    this.writer = opts.writer ?? uuidv7();
  }

  start(): this {
    this.timer = setInterval(() => void this.checkpoint(), this.opts.intervalSeconds * 1000);
    this.timer.unref();
    return this;
  }

  /**
   * Writes one checkpoint of the current heads; true when it landed. One at a time: a call while
   * another runs waits for it (a slow store never piles up writes).
   */
  async checkpoint(final = false): Promise<boolean> {
    while (this.running !== null) await this.running;
    if (this.stopped) return false;
    this.running = this.write(final)
      .catch((err: unknown) => {
        this.opts.onError?.(err, checkpointName(this.writer, this.seq));
        return false;
      })
      .finally(() => (this.running = null));
    return this.running;
  }

  /** Stops the timer and writes the final checkpoint (never throws; false if it did not land). */
  async stop(): Promise<boolean> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const landed = await this.checkpoint(true);
    this.stopped = true;
    this.opts.store.close?.();
    return landed;
  }

  private async write(final: boolean): Promise<boolean> {
    // At most twice: once more if the name turns out to be taken by our own earlier attempt.
    for (let attempt = 0; attempt < 2; attempt++) {
      const body: CheckpointBody = {
        format: CHECKPOINT_FORMAT,
        writer: this.writer,
        host: this.host,
        seq: this.seq,
        prev: this.prev,
        time: new Date().toISOString(),
        intervalSeconds: this.opts.intervalSeconds,
        final,
        heads: sortedHeads(this.opts.heads()),
      };
      const name = checkpointName(this.writer, this.seq);
      try {
        await this.opts.store.create(name, `${JSON.stringify(signCheckpoint(body, this.opts.signingKey))}\n`);
        this.advance(body);
        this.opts.onWritten?.(name);
        this.opts.onAnchored?.(body.heads.map((h) => ({ chainId: h.chain, seq: h.seq, hash: h.hash, ...(h.closed === true ? { closed: true as const } : {}) })));
        return true;
      } catch (err) {
        if (!(err instanceof CheckpointExistsError)) {
          this.opts.onError?.(err, name);
          return false;
        }
        // An attempt whose reply was lost did land: link the next checkpoint to what is stored.
        try {
          const stored = JSON.parse(await this.opts.store.read(name)) as SignedCheckpoint;
          if (stored.body?.writer !== this.writer || stored.body.seq !== this.seq) throw new Error(`${name} holds another writer's checkpoint`);
          this.advance(stored.body);
        } catch (readErr) {
          this.opts.onError?.(readErr, name);
          return false;
        }
      }
    }
    return false;
  }

  private advance(body: CheckpointBody): void {
    this.prev = bodyDigest(body);
    this.seq = body.seq + 1;
  }
}
