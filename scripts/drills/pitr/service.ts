/**
 * The AgenticPet service as the drill runs it: `agenticpet serve` (migrations run at start)
 * against the drill's cluster, one worker, sessions in process, and the diagnoses it is sent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** How to start the CLI: the build (what npm start runs) or the sources through tsx (tests). */
export type CliEntry = 'dist' | 'source';

export function cliArgs(root: string, entry: CliEntry): string[] {
  return entry === 'dist' ? [path.join(root, 'dist/cli.js')] : ['--import', 'tsx', path.join(root, 'src/cli.ts')];
}

/** The environment of a CLI run against `databaseUrl`, without whatever this shell points at. */
export function cliEnv(databaseUrl: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(AGENTICPET_|DATABASE_|REDIS_)/.test(k) || k === 'PORT' || k === 'HOST') delete env[k];
  return { ...env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn', ...extra };
}

export interface RunningService {
  origin: string;
  apiKey: string;
  stop(): Promise<void>;
}

export async function startService(opts: { root: string; entry: CliEntry; databaseUrl: string; port: number; dataDir: string; timeoutMs?: number }): Promise<RunningService> {
  const apiKey = `drill-${randomBytes(24).toString('hex')}`;
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const env = cliEnv(opts.databaseUrl, {
    PORT: String(opts.port),
    HOST: '127.0.0.1',
    AGENTICPET_DATA_DIR: opts.dataDir,
    AGENTICPET_BOOTSTRAP_KEY: apiKey,
    // The drill writes faster than a clinic's budget; the limits are not what it measures.
    AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '0',
    AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: '0',
  });
  const child = spawn(process.execPath, [...cliArgs(opts.root, opts.entry), 'serve', '--workers', '1'], { cwd: opts.root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (d: Buffer) => (tail = (tail + d.toString()).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stop = () => stopChild(child);
  const origin = `http://127.0.0.1:${opts.port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`agenticpet serve exited (${child.signalCode ?? child.exitCode}):\n${tail}`);
      if (Date.now() > deadline) throw new Error(`agenticpet serve not ready after ${(opts.timeoutMs ?? 90_000) / 1000} s:\n${tail}`);
      const ok = await fetch(`${origin}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { origin, apiKey, stop };
}

/** SIGTERM (graceful: in-flight requests finish), SIGKILL after 15 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000).unref());
  if ((await Promise.race([exited, timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

/**
 * POSTs `count` diagnoses (the vignette cases, round robin) with `concurrency` in flight and
 * returns the ids of those acknowledged (201). Anything else fails the drill: the sets must be
 * exactly what the service acknowledged.
 */
export async function writeDiagnoses(service: RunningService, bodies: unknown[], count: number, concurrency = 8): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const body = bodies[next++ % bodies.length];
      const res = await fetch(`${service.origin}/v1/diagnoses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${service.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      if (res.status !== 201) throw new Error(`POST /v1/diagnoses: ${res.status} ${text.slice(0, 500)}`);
      const id = (JSON.parse(text) as { id?: unknown }).id;
      if (typeof id !== 'string') throw new Error(`POST /v1/diagnoses answered 201 without an id: ${text.slice(0, 200)}`);
      ids.push(id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return ids;
}

export function loadVignetteBodies(root: string): unknown[] {
  const file = JSON.parse(fs.readFileSync(path.join(root, 'test/vignettes/vignettes.json'), 'utf8')) as { vignettes: Array<{ request: unknown }> };
  return file.vignettes.map((v) => v.request);
}
