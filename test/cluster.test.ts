/**
 * `agenticpet serve --workers N` as an operator runs it: real processes on PostgreSQL. Workers
 * share the port, a dead worker is replaced, SIGHUP restarts them one by one without a failed
 * request, /metrics covers the whole host, a revocation reaches every worker at once, and
 * SIGTERM drains and exits 0. Embedded mode refuses more than one worker.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, pgSkipReason, type TestDatabase } from './support/services.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cliArgs = ['--import', 'tsx', path.join(root, 'src/cli.ts')];
const KEY = `apk_cluster_test_${'x'.repeat(24)}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** One request on a connection of its own, so the cluster spreads requests over workers. */
function request(port: number, method: string, url: string, body?: unknown, key = KEY): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, method, path: url, agent: false, headers: { authorization: `Bearer ${key}`, ...(payload ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
      },
    );
    req.on('error', reject);
    // A request the cluster lost must fail the test, not hang it.
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer within 10 s: ${method} ${url}`)));
    req.end(payload);
  });
}

function workerPids(logs: string): number[] {
  return [...logs.matchAll(/"pid":(\d+)[^\n]*AgenticPet is serving/g)].map((m) => Number(m[1]));
}

describe('serve --workers', { skip: pgSkipReason() }, () => {
  let database: TestDatabase;
  let child: ChildProcess;
  let logs = '';
  let port: number;
  let exited: Promise<number | null>;

  before(async () => {
    database = await createTestDatabase();
    port = await freePort();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-cluster-'));
    child = spawn(process.execPath, [...cliArgs, 'serve', '--workers', '2'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: database.url, PORT: String(port), HOST: '127.0.0.1', AGENTICPET_DATA_DIR: dataDir, AGENTICPET_BOOTSTRAP_KEY: KEY, LOG_LEVEL: 'info', REDIS_URL: '' },
    });
    exited = new Promise((resolve) => child.on('close', resolve));
    child.stdout!.on('data', (d) => (logs += d));
    child.stderr!.on('data', (d) => (logs += d));
    const deadline = Date.now() + 60_000;
    while (workerPids(logs).length < 2) {
      if (Date.now() > deadline) throw new Error(`workers did not start:\n${logs}`);
      await sleep(100);
    }
  });

  after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await database.drop();
  });

  it('spreads requests over the workers, and /metrics counts the whole host', async () => {
    const pids = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const res = await request(port, 'GET', '/v1/patients');
      assert.equal(res.status, 200);
    }
    const metrics = await request(port, 'GET', '/metrics');
    const count = Number(/agenticpet_http_request_duration_seconds_count\{method="GET",route="\/v1\/patients",status_code="200"\} (\d+)/.exec(metrics.body)?.[1]);
    assert.ok(count >= 30, `host-wide count ${count}`);
    // Both workers served: each logged its requests with its own pid.
    for (const m of logs.matchAll(/"pid":(\d+)[^\n]*"route":"\/v1\/patients"/g)) pids.add(m[1]!);
    assert.ok(pids.size >= 2, `requests were served by ${pids.size} worker(s)`);
  });

  it('a key revoked through one worker stops working on every worker at once', async () => {
    const created = await request(port, 'POST', '/v1/api-keys', { name: 'temp', role: 'vet' });
    assert.equal(created.status, 201);
    const temp = JSON.parse(created.body) as { id: string; key: string };
    // Warm every worker's cache with the key.
    for (let i = 0; i < 10; i++) assert.equal((await request(port, 'GET', '/v1/patients', undefined, temp.key)).status, 200);
    assert.equal((await request(port, 'DELETE', `/v1/api-keys/${temp.id}`)).status, 200);
    await sleep(50); // one IPC hop through the primary
    for (let i = 0; i < 10; i++) assert.equal((await request(port, 'GET', '/v1/patients', undefined, temp.key)).status, 401, `request ${i} after revocation`);
  });

  it('replaces a worker that dies', async () => {
    const [victim] = workerPids(logs);
    process.kill(victim!, 'SIGKILL');
    const deadline = Date.now() + 30_000;
    while (workerPids(logs).length < 3) {
      if (Date.now() > deadline) throw new Error(`no replacement worker:\n${logs}`);
      await sleep(100);
    }
    assert.match(logs, /worker exited unexpectedly/);
    for (let i = 0; i < 10; i++) assert.equal((await request(port, 'GET', '/healthz')).status, 200);
  });

  it('SIGHUP restarts the workers one at a time without a failed request', async () => {
    const before = workerPids(logs).length;
    let failures = 0;
    let done = false;
    let sent = 0;
    const seen: string[] = [];
    const load = (async () => {
      while (!done) {
        const res = await request(port, 'GET', '/v1/patients').catch((err: Error) => ({ status: 0, body: err.message }));
        sent++;
        if (res.status !== 200) {
          failures++;
          seen.push(`${res.status} ${res.body.slice(0, 200)}`);
        }
      }
    })();
    child.kill('SIGHUP');
    const deadline = Date.now() + 60_000;
    while (!logs.includes('rolling restart done')) {
      if (Date.now() > deadline) throw new Error(`rolling restart did not finish:\n${logs}`);
      await sleep(100);
    }
    done = true;
    await load;
    assert.equal(workerPids(logs).length, before + 2, 'two new workers');
    assert.ok(sent > 10, `only ${sent} requests during the restart`);
    assert.equal(failures, 0, `${failures} of ${sent} requests failed during the rolling restart: ${seen.join('; ')}`);
  });

  it('SIGTERM drains every worker and exits 0', async () => {
    child.kill('SIGTERM');
    assert.equal(await exited, 0, logs.slice(-2000));
  });
});

describe('serve --workers in embedded mode', () => {
  it('refuses more than one worker, saying why', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-cluster-'));
    const env: NodeJS.ProcessEnv = { ...process.env, AGENTICPET_DATA_DIR: dataDir };
    delete env.DATABASE_URL;
    const proc = spawn(process.execPath, [...cliArgs, 'serve', '--workers', '2'], { cwd: root, env });
    let err = '';
    proc.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve) => proc.on('close', resolve));
    assert.equal(code, 2);
    assert.match(err, /owned by one process.*DATABASE_URL/s);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});
