/**
 * The service as a drill runs it: `agenticpet serve --workers N` in a process group of its own
 * (the primary and its cluster workers), on a fixed loopback port so a restart answers at the
 * same address, in a data directory of its own. killAll() is kill -9 of the whole group at
 * once, as a host losing power would; stop() is an operator's SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SERVE_NODE_FLAGS } from '../../../src/node-flags.js';

/** `dist`: the build (npm run drill:*, which builds first); `source`: src/ through tsx (the CI tests, no build). */
export type ServerCode = 'dist' | 'source';

export interface ServerOptions {
  root: string;
  code: ServerCode;
  port: number;
  workers: number;
  dataDir: string;
  databaseUrl: string;
  redisUrl: string | undefined;
  redisKeyPrefix: string;
  apiKey: string;
  /** Extra settings for the service. */
  env?: Record<string, string>;
  /** `info` lets servingPids() see each worker start serving (it also logs a line per request). */
  logLevel?: 'warn' | 'info';
}

const INHERITED = /^(PORT|HOST|LOG_LEVEL|DATABASE_|REDIS_|AGENTICPET_)/;

/** The node arguments that run the CLI with `args`, from the build or from source. */
export function cliCommand(root: string, code: ServerCode, args: string[]): string[] {
  return code === 'dist' ? [...SERVE_NODE_FLAGS, path.join(root, 'dist/cli.js'), ...args] : ['--import', 'tsx', path.join(root, 'src/cli.ts'), ...args];
}

export function serverEnv(opts: ServerOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // Settings from the drill's own shell must not change what it measures.
  for (const [k, v] of Object.entries(process.env)) if (!INHERITED.test(k)) env[k] = v;
  Object.assign(env, {
    PORT: String(opts.port),
    HOST: '127.0.0.1',
    LOG_LEVEL: opts.logLevel ?? 'warn',
    DATABASE_URL: opts.databaseUrl,
    AGENTICPET_DATA_DIR: opts.dataDir,
    AGENTICPET_BOOTSTRAP_KEY: opts.apiKey,
    REDIS_KEY_PREFIX: opts.redisKeyPrefix,
    // The drills drive one key far past the production budgets; the check still runs.
    AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '1000000000',
    AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: '1000000000',
    ...opts.env,
  });
  if (opts.redisUrl !== undefined) env.REDIS_URL = opts.redisUrl;
  return env;
}

export class DrillServer {
  readonly origin: string;
  private child: ChildProcess | undefined;
  private output = '';
  /** Log lines (JSON) as they arrive, for drills that watch the service's own account. */
  readonly lines: string[] = [];

  constructor(private readonly opts: ServerOptions) {
    this.origin = `http://127.0.0.1:${opts.port}`;
  }

  get apiKey(): string {
    return this.opts.apiKey;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last few kB the server printed, for error messages. */
  tail(): string {
    return this.output.slice(-4000);
  }

  async start(timeoutMs = 60_000): Promise<void> {
    const args = cliCommand(this.opts.root, this.opts.code, ['serve', '--workers', String(this.opts.workers)]);
    // detached: the primary leads a process group its workers join, so one kill reaches all of them.
    const child = spawn(process.execPath, args, { cwd: this.opts.root, env: serverEnv(this.opts), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    let partial = '';
    const collect = (chunk: Buffer) => {
      const text = chunk.toString();
      this.output = (this.output + text).slice(-64_000);
      const parts = (partial + text).split('\n');
      partial = parts.pop() ?? '';
      // The per-request lines (at info) are not kept: a drill reads what the processes say.
      for (const line of parts) if (!line.includes('"msg":"request"')) this.lines.push(line);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    await this.waitReady(timeoutMs);
  }

  /** Ready when /readyz answers 200 and every worker has said it is serving. */
  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const child = this.child!;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited during start (${child.signalCode ?? child.exitCode}):\n${this.tail()}`);
      const ok = await fetch(`${this.origin}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
        (r) => r.ok,
        () => false,
      );
      // One worker serves in the primary itself (no cluster), so it has no children to wait for.
      if (ok && (this.opts.workers <= 1 || this.workerPids().length >= this.opts.workers)) return;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(`server not ready after ${timeoutMs / 1000} s:\n${this.tail()}`);
  }

  /** The primary's live children: its cluster workers (Linux /proc). */
  workerPids(): number[] {
    const pid = this.child?.pid;
    if (pid === undefined) return [];
    try {
      return fs
        .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter((s) => s !== '')
        .map(Number);
    } catch {
      return [];
    }
  }

  /** Workers that have said they are serving (needs logLevel 'info'). */
  servingPids(): Set<number> {
    const pids = new Set<number>();
    for (const line of this.lines) {
      if (!line.includes('AgenticPet is serving')) continue;
      const m = /"pid":(\d+)/.exec(line);
      if (m !== null) pids.add(Number(m[1]));
    }
    return pids;
  }

  /** kill -9 of the primary and every worker in one signal (the process group). */
  async killAll(): Promise<{ killed: number[] }> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return { killed: [] };
    const killed = [child.pid!, ...this.workerPids()];
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
    // The workers are gone too once no process of the group is left.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && killed.some(alive)) await new Promise((r) => setTimeout(r, 50));
    const survivors = killed.filter(alive);
    if (survivors.length > 0) throw new Error(`processes still alive after kill -9: ${survivors.join(', ')}`);
    return { killed };
  }

  /** SIGTERM to the primary (every worker drains), SIGKILL of the group if it takes too long. */
  async stop(graceMs = 20_000): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([exited, timer])) === 'timeout') {
        process.kill(-child.pid!, 'SIGKILL');
        await exited;
      }
    }
    // Workers of a primary that died first would be orphans still holding the port.
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // The group is empty: nothing left.
    }
  }

  signal(signal: NodeJS.Signals, pid = this.child?.pid): void {
    if (pid !== undefined) process.kill(pid, signal);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie (dead, not yet reaped by its parent) is gone for the drill's purpose.
    return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** `agenticpet audit verify` against the database: its exit code and what it printed. */
export function auditVerify(root: string, code: ServerCode, databaseUrl: string): { status: number; output: string } {
  const env = serverEnv({ root, code, port: 0, workers: 1, dataDir: '/nonexistent', databaseUrl, redisUrl: undefined, redisKeyPrefix: 'ap', apiKey: 'x'.repeat(24) });
  delete env.AGENTICPET_BOOTSTRAP_KEY;
  delete env.AGENTICPET_DATA_DIR;
  const r = spawnSync(process.execPath, cliCommand(root, code, ['audit', 'verify']), { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status ?? 1, output: `${r.stdout}${r.stderr}`.trim() };
}
