/**
 * Write load for the drills: POST /v1/diagnoses at a bounded rate (open loop: a request starts
 * every 1/rate s whether or not the last one was answered, up to a cap in flight), each answer
 * recorded with its status, latency, diagnosis id and session-store header.
 *
 * Each request carries an Idempotency-Key and, like any HTTP/1.1 client that keeps connections
 * alive (browsers, undici, load balancers), is sent again (at most twice more) when the connection it reused
 * was closed by the server before any answer came: a server closing an idle keep-alive
 * connection cannot stop a request already on its way. The key makes another send safe (at
 * most one diagnosis is stored); such retries are counted apart. A failure on a new connection,
 * or on the third send, is a failed request.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

export interface Outcome {
  /** ms since the load started. */
  start: number;
  end: number;
  /** HTTP status, 0 when no answer came (connection refused or reset, timeout). */
  status: number;
  error: string | undefined;
  /** For a 201: the diagnosis id and the body as acknowledged. */
  id: string | undefined;
  body: unknown;
  sessionStore: string | undefined;
  /** Sent a second time after its reused connection was closed under it. */
  retried: boolean;
}

export interface LoadOptions {
  origin: string;
  apiKey: string;
  ratePerSecond: number;
  maxInFlight?: number;
  /** Keep-alive connections (as a load balancer keeps them); false opens one per request. */
  keepAlive?: boolean;
  timeoutMs?: number;
  /** Keep each acknowledged body (the crash drill compares them with what is read back). */
  keepBodies?: boolean;
}

export function loadCases(root: string): unknown[] {
  const file = JSON.parse(fs.readFileSync(path.join(root, 'test/vignettes/vignettes.json'), 'utf8')) as { vignettes: Array<{ request: unknown }> };
  return file.vignettes.map((v) => v.request);
}

export class Load {
  readonly outcomes: Outcome[] = [];
  private readonly agent: http.Agent;
  private readonly bodies: Buffer[];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private readonly pending = new Set<Promise<void>>();
  private t0 = 0;
  /** Requests not sent because maxInFlight were outstanding (the service fell behind). */
  skipped = 0;

  constructor(
    private readonly opts: LoadOptions,
    cases: unknown[],
  ) {
    this.agent = new http.Agent({ keepAlive: opts.keepAlive ?? true, maxSockets: opts.maxInFlight ?? 256 });
    this.bodies = cases.map((c) => Buffer.from(JSON.stringify(c)));
  }

  /** ms since start(). */
  now(): number {
    return performance.now() - this.t0;
  }

  start(): void {
    this.t0 = performance.now();
    const interval = 1000 / this.opts.ratePerSecond;
    let sent = 0;
    // One tick per 10 ms sends what the schedule owes, so the rate holds whatever the timer's jitter.
    this.timer = setInterval(() => {
      const due = Math.floor(this.now() / interval);
      while (sent < due) {
        sent++;
        if (this.inFlight >= (this.opts.maxInFlight ?? 256)) {
          this.skipped++;
          continue;
        }
        this.send(this.bodies[sent % this.bodies.length]!);
      }
    }, 10);
  }

  /** Stops sending and waits for every request in flight to end. */
  async stop(): Promise<Outcome[]> {
    clearInterval(this.timer);
    await Promise.all([...this.pending]);
    this.agent.destroy();
    return this.outcomes;
  }

  private send(body: Buffer): void {
    this.inFlight++;
    const start = this.now();
    const key = randomUUID();
    const p = (async () => {
      let o = await this.attempt(body, key);
      let sends = 1;
      // The pool may hold several connections to the process that closed them: up to three sends.
      while (sends < 3 && o.status === 0 && o.reusedSocket && (o.error === 'ECONNRESET' || o.error === 'EPIPE')) {
        sends++;
        o = await this.attempt(body, key);
      }
      const retried = sends > 1;
      if (o.status === 0) o.error = `${o.error} (${o.reusedSocket ? 'on a reused connection' : 'on a new connection'}${retried ? `, send ${sends}` : ''})`;
      this.inFlight--;
      const { reusedSocket: _, ...outcome } = o;
      this.outcomes.push({ start, end: this.now(), ...outcome, retried });
    })();
    this.pending.add(p);
    void p.then(() => this.pending.delete(p));
  }

  private attempt(body: Buffer, key: string): Promise<Omit<Outcome, 'start' | 'end' | 'retried'> & { reusedSocket: boolean }> {
    return new Promise((resolve) => {
      let settled = false;
      let reusedSocket = false;
      const done = (o: Omit<Outcome, 'start' | 'end' | 'retried'>) => {
        if (settled) return;
        settled = true;
        resolve({ ...o, reusedSocket });
      };
      const failed = (error: string) => done({ status: 0, error, id: undefined, body: undefined, sessionStore: undefined });
      const u = new URL('/v1/diagnoses', this.opts.origin);
      const req = http.request(
        {
          host: u.hostname,
          port: u.port,
          method: 'POST',
          path: u.pathname,
          agent: this.agent,
          headers: { authorization: `Bearer ${this.opts.apiKey}`, 'content-type': 'application/json', 'content-length': body.length, 'idempotency-key': key },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => failed(err.message));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString();
            const parsed = status === 201 ? (JSON.parse(text) as { id?: string }) : undefined;
            const sessionStore = res.headers['x-session-store'];
            done({ status, error: status >= 400 ? text.slice(0, 300) : undefined, id: parsed?.id, body: this.opts.keepBodies ? parsed : undefined, sessionStore: typeof sessionStore === 'string' ? sessionStore : undefined });
          });
        },
      );
      req.on('socket', () => (reusedSocket = req.reusedSocket));
      req.on('error', (err) => failed((err as NodeJS.ErrnoException).code ?? err.message));
      req.setTimeout(this.opts.timeoutMs ?? 15_000, () => req.destroy(new Error('timeout')));
      req.end(body);
    });
  }
}

export interface Summary {
  sent: number;
  /** Sent twice (same Idempotency-Key) after the reused connection was closed under the first. */
  retried: number;
  byStatus: Record<string, number>;
  ok2xx: number;
  /** Share of requests answered 2xx, in percent. */
  okShare: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(outcomes: Outcome[]): Summary {
  const byStatus: Record<string, number> = {};
  for (const o of outcomes) {
    const k = o.status === 0 ? `no answer (${o.error})` : String(o.status);
    byStatus[k] = (byStatus[k] ?? 0) + 1;
  }
  const ok2xx = outcomes.filter((o) => o.status >= 200 && o.status < 300).length;
  const lat = outcomes.map((o) => o.end - o.start).sort((a, b) => a - b);
  const q = (p: number) => (lat.length === 0 ? 0 : lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!);
  return { sent: outcomes.length, retried: outcomes.filter((o) => o.retried).length, byStatus, ok2xx, okShare: outcomes.length === 0 ? 0 : (100 * ok2xx) / outcomes.length, p50: q(0.5), p99: q(0.99), max: lat.at(-1) ?? 0 };
}

export const ms = (n: number): string => `${Math.round(n).toLocaleString('en-US')} ms`;
