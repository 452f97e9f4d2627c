/**
 * What a drill sets up, undone in reverse order however it ends (success, failure, Ctrl-C):
 * processes, the database it created, its temporary directory.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export const DEFAULT_PG_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export class Scope {
  private readonly undo: Array<{ what: string; run: () => unknown }> = [];

  defer(what: string, run: () => unknown): void {
    this.undo.push({ what, run });
  }

  async close(): Promise<void> {
    while (this.undo.length > 0) {
      const step = this.undo.pop()!;
      try {
        await step.run();
      } catch (err) {
        console.error(`cleanup (${step.what}): ${(err as Error).message}`);
      }
    }
  }

  tempDir(label: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `agenticpet-drill-${label}-`));
    this.defer(`remove ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A database of the drill's own, dropped at the end (connections included). */
  async database(adminUrl: string, label: string): Promise<string> {
    const name = `agenticpet_drill_${label}_${randomBytes(4).toString('hex')}`;
    await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
    this.defer(`drop database ${name}`, () => adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    const u = new URL(adminUrl);
    u.pathname = `/${name}`;
    return u.toString();
  }
}

export async function adminQuery(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/**
 * Runs `body` in a scope closed afterwards, also on SIGINT/SIGTERM (then the process exits 130
 * once cleaned up). `body` returns the drill's result.
 */
export async function withScope<T>(body: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope();
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`${signal}: cleaning up`);
    void scope.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await body(scope);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await scope.close();
  }
}

/** A port in [from, to] that nothing on 127.0.0.1 listens on now. */
export async function portIn(from: number, to: number, taken: Set<number> = new Set()): Promise<number> {
  const start = from + Math.floor(Math.random() * (to - from + 1));
  for (let i = 0; i <= to - from; i++) {
    const port = from + ((start - from + i) % (to - from + 1));
    if (taken.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${from}-${to}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The drills' port range (loopback only); AGENTICPET_DRILL_PORTS=FROM-TO moves it. */
export function drillPorts(): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(process.env.AGENTICPET_DRILL_PORTS ?? '');
  return m === null ? [15600, 15699] : [Number(m[1]), Number(m[2])];
}
