/**
 * A throw-away PostgreSQL cluster for a drill, built with the Debian binaries
 * (/usr/lib/postgresql/<version>/bin): initdb, pg_ctl start/stop, and plain SQL over TCP on
 * loopback. PostgreSQL refuses to run as root, so every server-side command runs as the
 * `postgres` user when the drill itself runs as root (CI, the dev container).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';

export interface CommandResult {
  stdout: string;
  stderr: string;
  ms: number;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** The newest PostgreSQL under /usr/lib/postgresql that has initdb, or undefined. */
export function findPgBinDir(root = '/usr/lib/postgresql'): string | undefined {
  if (!fs.existsSync(root)) return undefined;
  const versions = fs
    .readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && fs.existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : path.join(root, versions[0], 'bin');
}

/** The first executable named `name` on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Runs a command (as postgres when we are root) in `cwd`, failing with its output's tail. */
export function runAsPostgres(cmd: string, args: string[], opts: { cwd: string; timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<CommandResult> {
  const [file, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    // cwd matters: runuser keeps it, and postgres may not be able to read the caller's directory.
    execFile(file, argv, { cwd: opts.cwd, timeout: opts.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const ms = performance.now() - started;
      if (err) {
        const why = err.killed ? `timed out after ${opts.timeoutMs / 1000} s` : `exit ${err.code ?? err.signal}`;
        reject(new Error(`${path.basename(cmd)} ${args.join(' ')}: ${why}\n${(stderr || stdout).slice(-3000)}`));
        return;
      }
      resolve({ stdout, stderr, ms });
    });
  });
}

/** Makes a directory (tree) the postgres user owns, mode 0700 as PostgreSQL and pgBackRest want. */
export function postgresOwnedDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  if (isRoot) {
    const { uid, gid } = postgresIds();
    fs.chownSync(dir, uid, gid);
  }
}

let ids: { uid: number; gid: number } | undefined;
function postgresIds(): { uid: number; gid: number } {
  if (ids !== undefined) return ids;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (line === undefined) throw new Error('there is no postgres user (apt-get install postgresql creates it)');
  const [, , uid, gid] = line.split(':');
  ids = { uid: Number(uid), gid: Number(gid) };
  return ids;
}

/** Whether the drill can run PostgreSQL here: a reason it cannot, or null. */
export function clusterUnavailable(): string | null {
  if (findPgBinDir() === undefined) return 'no PostgreSQL server binaries under /usr/lib/postgresql/<version>/bin (apt-get install postgresql)';
  if (isRoot) {
    try {
      postgresIds();
    } catch (err) {
      return (err as Error).message;
    }
  }
  return null;
}

/** Resolves true when nothing listens on 127.0.0.1:port. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** `count` free ports from [from, to], in order (the drill keeps to the range it was given). */
export async function freePorts(from: number, to: number, count: number): Promise<number[]> {
  const found: number[] = [];
  for (let p = from; p <= to && found.length < count; p++) if (await portFree(p)) found.push(p);
  if (found.length < count) throw new Error(`fewer than ${count} free ports in ${from}-${to}`);
  return found;
}

export class LocalCluster {
  running = false;

  constructor(
    readonly binDir: string,
    readonly dataDir: string,
    readonly port: number,
    /** Where the server's Unix socket and its lock file go: the drill's own temp dir, not /run. */
    readonly socketDir: string,
    private readonly workDir: string,
  ) {}

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  urlFor(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  private bin(name: string): string {
    return path.join(this.binDir, name);
  }

  async initdb(): Promise<void> {
    postgresOwnedDir(path.dirname(this.dataDir));
    await runAsPostgres(this.bin('initdb'), ['-D', this.dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-instructions'], { cwd: this.workDir, timeoutMs: 120_000 });
  }

  /** Appends settings to postgresql.conf (a restored copy inherits them, as in production). */
  appendConf(settings: Record<string, string | number>): void {
    const lines = Object.entries(settings).map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v.replace(/'/g, "''")}'`}`);
    fs.appendFileSync(path.join(this.dataDir, 'postgresql.conf'), `\n# agenticpet drill\n${lines.join('\n')}\n`);
  }

  /** pg_ctl start -w on this cluster's port; recovery (if any) runs before it accepts connections. */
  async start(timeoutS = 120): Promise<CommandResult> {
    const log = path.join(path.dirname(this.dataDir), `${path.basename(this.dataDir)}.log`);
    const result = await runAsPostgres(this.bin('pg_ctl'), ['start', '-w', '-t', String(timeoutS), '-D', this.dataDir, '-l', log, '-o', `-p ${this.port} -k ${this.socketDir}`], {
      cwd: this.workDir,
      timeoutMs: (timeoutS + 10) * 1000,
    }).catch((err: Error) => {
      const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-3000) : '';
      throw new Error(`${err.message}\n--- server log ---\n${tail}`);
    });
    this.running = true;
    return result;
  }

  /** fast: rolls back open transactions and checkpoints; immediate: like a crash (cleanup on failure). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!fs.existsSync(path.join(this.dataDir, 'postmaster.pid'))) {
      this.running = false;
      return;
    }
    await runAsPostgres(this.bin('pg_ctl'), ['stop', '-w', '-t', '60', '-m', mode, '-D', this.dataDir], { cwd: this.workDir, timeoutMs: 70_000 });
    this.running = false;
  }

  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.urlFor(database), connectionTimeoutMillis: 10_000, statement_timeout: 60_000 });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }
}
