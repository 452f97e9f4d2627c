/** The agenticpet CLI as a user runs it: real processes, a real data directory, real PostgreSQL. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { MIGRATIONS } from '../src/storage/sql/migrate.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cliArgs = ['--import', 'tsx', path.join(root, 'src/cli.ts')];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'info', ...extra };
  delete env.DATABASE_URL;
  if (extra.DATABASE_URL !== undefined) env.DATABASE_URL = extra.DATABASE_URL;
  return env;
}

function run(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliArgs, ...args], { cwd: root, env: baseEnv(env) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function serve(env: Record<string, string>): Promise<{ child: ChildProcess; logs: () => string; exited: Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliArgs, 'serve'], { cwd: root, env: baseEnv(env) });
    let logs = '';
    const exited = new Promise<number | null>((r) => child.on('close', r));
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${logs}`)), 30_000);
    const onData = (d: Buffer) => {
      logs += d;
      if (logs.includes('AgenticPet is serving')) {
        clearTimeout(timer);
        resolve({ child, logs: () => logs, exited });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${logs}`));
    });
  });
}

const tmpDirs: string[] = [];
function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-cli-'));
  tmpDirs.push(dir);
  return dir;
}
after(() => tmpDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const port = () => String(20000 + Math.floor(Math.random() * 20000));

describe('agenticpet CLI (embedded)', () => {
  const dataDir = tmpDir();

  it('serve bootstraps a clinic, writes its key 0600 without logging it, refuses a second process, and stops on SIGTERM', async () => {
    const p = port();
    const server = await serve({ AGENTICPET_DATA_DIR: dataDir, PORT: p, HOST: '127.0.0.1' });
    const keyFile = path.join(dataDir, 'bootstrap-key');
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    const key = fs.readFileSync(keyFile, 'utf8').trim();
    assert.ok(!server.logs().includes(key), 'the key must never be logged');
    assert.ok(server.logs().includes(keyFile), 'the log names the key file');
    const res = await fetch(`http://127.0.0.1:${p}/v1/patients`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(res.status, 200);
    await fetch(`http://127.0.0.1:${p}/v1/owners`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"name":"Ann"}' });

    const second = await run(['migrate'], { AGENTICPET_DATA_DIR: dataDir });
    assert.equal(second.code, 3);
    assert.match(second.stderr, /in use by another AgenticPet process \(pid \d+\)/);
    assert.match(second.stderr, /DATABASE_URL/);

    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    assert.match(server.logs(), /shutting down/);
    assert.ok(!fs.existsSync(path.join(dataDir, 'pglite', 'agenticpet.lock')), 'the lock is released');
  });

  it('clinics create prints a working admin key once; audit verify passes on an intact trail', async () => {
    const created = await run(['clinics', 'create', '--name', 'Second Clinic'], { AGENTICPET_DATA_DIR: dataDir });
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /Created clinic "Second Clinic"/);
    assert.match(created.stdout, /apk_[A-Za-z0-9_-]{43}/);
    const verify = await run(['audit', 'verify'], { AGENTICPET_DATA_DIR: dataDir });
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /Audit trail intact: [1-9]\d* events/);
  });

  it('audit verify exits 1 and names the first tampered event', async () => {
    const db = await PgliteExecutor.open({ dir: path.join(dataDir, 'pglite') });
    const [victim] = await db.query<{ id: string }>('SELECT id FROM audit_events ORDER BY occurred_at LIMIT 1');
    await db.query("UPDATE audit_events SET action = 'read' WHERE id = $1", [victim!.id]);
    await db.close();
    const verify = await run(['audit', 'verify'], { AGENTICPET_DATA_DIR: dataDir });
    assert.equal(verify.code, 1);
    assert.match(verify.stderr, new RegExp(`BROKEN .*event ${victim!.id}.*modified`));
  });

  it('refuses bad configuration naming the variable, and bad usage plainly', async () => {
    const bad = await run(['serve'], { AGENTICPET_DATA_DIR: dataDir, PORT: 'eighty' });
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /PORT must be a whole number/);
    const usage = await run(['clinics', 'create'], { AGENTICPET_DATA_DIR: dataDir });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--name/);
  });

  it('AGENTICPET_BOOTSTRAP_KEY becomes the first admin key; no key file is written', async () => {
    const dir = tmpDir();
    const key = 'my-own-bootstrap-key-of-sufficient-length';
    const p = port();
    const server = await serve({ AGENTICPET_DATA_DIR: dir, PORT: p, HOST: '127.0.0.1', AGENTICPET_BOOTSTRAP_KEY: key });
    try {
      const res = await fetch(`http://127.0.0.1:${p}/v1/audit`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(res.status, 200);
      assert.ok(!fs.existsSync(path.join(dir, 'bootstrap-key')));
      assert.ok(!server.logs().includes(key));
    } finally {
      server.child.kill('SIGINT');
      assert.equal(await server.exited, 0);
    }
  });
});

describe('agenticpet CLI (PostgreSQL)', { skip: pgSkipReason() }, () => {
  it('several instances migrating at once apply each migration exactly once', async () => {
    const database = await createTestDatabase();
    try {
      const env = { DATABASE_URL: database.url, AGENTICPET_DATA_DIR: tmpDir() };
      const runs = await Promise.all([1, 2, 3].map(() => run(['migrate'], env)));
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      assert.equal(runs.filter((r) => /Applied migrations/.test(r.stdout)).length, 1);
      const c = new pg.Client({ connectionString: database.url });
      await c.connect();
      const { rows } = await c.query('SELECT count(*)::int AS n FROM schema_migrations');
      await c.end();
      assert.equal(rows[0].n, MIGRATIONS.length);
      const created = await run(['clinics', 'create', '--name', 'On Postgres'], env);
      assert.equal(created.code, 0, created.stderr);
      const verify = await run(['audit', 'verify'], env);
      assert.equal(verify.code, 0, verify.stderr);
    } finally {
      await database.drop();
    }
  });
});
