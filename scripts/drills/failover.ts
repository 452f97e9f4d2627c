/**
 * npm run drill:failover — automatic database failover, measured (issue 11 §3).
 *
 * A three-node Patroni cluster (patroni-cluster.ts), the service on its multi-host DATABASE_URL,
 * a steady write load of POST /v1/diagnoses; then the leader is killed (kill -9 of its Patroni
 * and its postmaster) and the drill prints
 *   RTO: kill → the first diagnosis acknowledged (201) among those sent after the kill;
 *   RPO: acknowledged diagnoses missing afterwards, each read back (GET /v1/diagnoses/:id).
 * The service is never restarted. Last, the old leader's Patroni is started again and the drill
 * shows it rejoined as a replica (pg_rewind when its timeline diverged).
 *
 * Ports 15400–15439 on 127.0.0.1. Env: DRILL_RATE (writes/s, 50), DRILL_BEFORE_S (load before the
 * kill, 10), DRILL_AFTER_S (load after recovery, 5); AGENTICPET_DRILL_KEEP=1 keeps the directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { missingBinaries, PatroniCluster, type Member } from './patroni-cluster.js';

export interface DrillOptions {
  /** Writes per second. */
  rate: number;
  beforeMs: number;
  afterMs: number;
  /** How the service is started: the built dist/cli.js (npm run) or the sources through tsx (tests). */
  service: 'dist' | 'tsx';
  /** Restart the old leader afterwards and wait for it to follow the new one (the CI run skips it for time). */
  rejoin: boolean;
  log: (line: string) => void;
}

export interface DrillResult {
  killed: string;
  newLeader: string | undefined;
  rtoMs: number;
  /** Kill → Patroni's REST API first reports another leader running (the cluster's share of the RTO). */
  promotedMs: number | undefined;
  acknowledged: number;
  missing: number;
  statuses: Record<string, number>;
  /** Undefined when the rejoin was not asked for. */
  rejoinMs: number | undefined;
  rejoined: Member | undefined;
  rewound: boolean;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PORTS = { etcdClient: 15400, etcdPeer: 15401, pg: 15410, rest: 15420 };
const SERVICE_PORT = 15430;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function vignetteBodies(): string[] {
  const file = JSON.parse(fs.readFileSync(path.join(ROOT, 'test/vignettes/vignettes.json'), 'utf8')) as { vignettes: Array<{ request: unknown }> };
  return file.vignettes.map((v) => JSON.stringify(v.request));
}

async function startService(cluster: PatroniCluster, mode: DrillOptions['service'], key: string): Promise<{ child: ChildProcess; tail: () => string }> {
  const dataDir = path.join(cluster.dir, 'service');
  fs.mkdirSync(dataDir);
  const entry = mode === 'dist' ? [path.join(ROOT, 'dist/cli.js')] : ['--import', 'tsx', path.join(ROOT, 'src/cli.ts')];
  const env: Record<string, string | undefined> = {
    ...process.env,
    PORT: String(SERVICE_PORT),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_URL: cluster.databaseUrl('agenticpet'),
    AGENTICPET_DATA_DIR: dataDir,
    AGENTICPET_BOOTSTRAP_KEY: key,
    AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '0',
    AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: '0',
  };
  delete env.REDIS_URL;
  const child = spawn(process.execPath, [...entry, 'serve', '--workers', '1'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-6000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`service exited (${child.exitCode}):\n${tail}`);
    const ok = await fetch(`http://127.0.0.1:${SERVICE_PORT}/readyz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ok) return { child, tail: () => tail };
    await sleep(200);
  }
  throw new Error(`service not ready after 60 s:\n${tail}`);
}

interface Write {
  sentAt: number;
  ackAt?: number;
  status: number | 'error';
  id?: string;
}

/** A steady open-loop load: one request every 1000/rate ms, whatever the answers (no back-off). */
function writeLoad(rate: number, key: string, bodies: string[]) {
  const writes: Write[] = [];
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let n = 0;
  const origin = `http://127.0.0.1:${SERVICE_PORT}`;
  const one = async () => {
    const w: Write = { sentAt: Date.now(), status: 'error' };
    writes.push(w);
    try {
      const res = await fetch(`${origin}/v1/diagnoses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: bodies[n++ % bodies.length],
        signal: AbortSignal.timeout(30_000),
      });
      const body = (await res.json()) as { id?: string };
      w.status = res.status;
      if (res.status === 201) {
        w.ackAt = Date.now();
        w.id = body.id;
      }
    } catch {
      w.status = 'error';
    }
  };
  const started = Date.now();
  const timer = setInterval(() => {
    // Catch up to the schedule after a stalled event loop, so the rate holds on a busy machine.
    const due = Math.floor(((Date.now() - started) * rate) / 1000);
    while (!stopped && writes.length < due) {
      const p = one().finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  }, 5);
  return {
    writes,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

async function readBack(key: string, ids: string[]): Promise<string[]> {
  const missing: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      let status = 0;
      // A 503 on the read is the service, not the data: ask again.
      for (let attempt = 0; attempt < 5; attempt++) {
        status = await fetch(`http://127.0.0.1:${SERVICE_PORT}/v1/diagnoses/${id}`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) }).then((r) => r.status, () => 0);
        if (status !== 503 && status !== 0) break;
        await sleep(500);
      }
      if (status !== 200) missing.push(`${id} (${status})`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return missing;
}

export async function runFailoverDrill(opts: DrillOptions): Promise<DrillResult> {
  const cluster = new PatroniCluster(PORTS);
  let service: { child: ChildProcess; tail: () => string } | undefined;
  const cleanup = async () => {
    if (service !== undefined && service.child.exitCode === null) {
      service.child.kill('SIGTERM');
      await Promise.race([new Promise((r) => service!.child.once('exit', r)), sleep(10_000)]);
      if (service.child.exitCode === null) service.child.kill('SIGKILL');
    }
    await cluster.stop();
  };
  // Ctrl-C (or a CI timeout's SIGTERM) still takes down every process and directory.
  const onSignal = (signal: NodeJS.Signals) => void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const t0 = Date.now();
    await cluster.start();
    opts.log(`cluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${(await cluster.members()).map((m) => `${m.name} ${m.role}`).join(', ')}`);
    const leader = (await cluster.leader())!;
    const admin = new pg.Client({ host: '127.0.0.1', port: cluster.pgPort(leader), user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query('CREATE DATABASE agenticpet');
    await admin.end();

    const key = `drill-${randomBytes(24).toString('hex')}`;
    service = await startService(cluster, opts.service, key);
    opts.log(`service up on a ${cluster.names().length}-host DATABASE_URL; load ${opts.rate} writes/s`);
    const load = writeLoad(opts.rate, key, vignetteBodies());
    await sleep(opts.beforeMs);

    const killed = (await cluster.leader())!;
    const killedAt = Date.now();
    cluster.kill(killed);
    opts.log(`kill -9 ${killed} (patroni + postmaster) at +${((killedAt - t0) / 1000).toFixed(1)} s`);
    const deadline = killedAt + 60_000;
    let promotedMs: number | undefined;
    const watchPromotion = (async () => {
      while (promotedMs === undefined && Date.now() < deadline) {
        const members = await cluster.members();
        if (members.some((m) => m.role === 'leader' && m.name !== killed && m.state === 'running')) promotedMs = Date.now() - killedAt;
        else await sleep(100);
      }
    })();
    let recovered: Write | undefined;
    while (recovered === undefined && Date.now() < deadline) {
      await sleep(50);
      recovered = load.writes.filter((w) => w.sentAt >= killedAt && w.ackAt !== undefined).sort((a, b) => a.ackAt! - b.ackAt!)[0];
    }
    await watchPromotion;
    if (recovered === undefined) throw new Error(`no write acknowledged within 60 s of the kill:\n${service.tail()}`);
    const rtoMs = recovered.ackAt! - killedAt;
    await sleep(opts.afterMs);
    await load.stop();

    const acknowledged = load.writes.filter((w) => w.id !== undefined).map((w) => w.id!);
    const missing = await readBack(key, acknowledged);
    const statuses: Record<string, number> = {};
    for (const w of load.writes) statuses[String(w.status)] = (statuses[String(w.status)] ?? 0) + 1;
    const newLeader = await cluster.leader();

    // The old leader returns: its Patroni finds another leader, rewinds its data directory if its
    // timeline diverged, and follows the new one.
    const result: DrillResult = { killed, newLeader, rtoMs, promotedMs, acknowledged: acknowledged.length, missing: missing.length, statuses, rejoinMs: undefined, rejoined: undefined, rewound: false };
    if (!opts.rejoin) return result;
    const logBefore = cluster.log(killed).length;
    const rejoinStart = Date.now();
    cluster.startNode(killed);
    const members = await cluster.waitHealthy(60_000);
    const rejoinLog = cluster.log(killed).slice(logBefore);
    return {
      ...result,
      rejoinMs: Date.now() - rejoinStart,
      rejoined: members.find((m) => m.name === killed),
      rewound: /running pg_rewind/i.test(rejoinLog),
    };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

export function describeResult(r: DrillResult): string[] {
  const statuses = Object.entries(r.statuses).map(([s, n]) => `${s}: ${n}`).join(', ');
  return [
    `killed leader      ${r.killed}; new leader ${r.newLeader ?? 'none'}`,
    `RTO                ${(r.rtoMs / 1000).toFixed(2)} s (kill -9 → first acknowledged write sent after it; target ≤ 12 s); new leader running after ${r.promotedMs === undefined ? '?' : (r.promotedMs / 1000).toFixed(2)} s`,
    `RPO                ${r.missing} of ${r.acknowledged} acknowledged diagnoses missing (each read back; target 0)`,
    `answers            ${statuses}`,
    r.rejoinMs === undefined
      ? 'old leader rejoin  not run'
      : `old leader rejoin  ${r.rejoined === undefined ? 'not seen' : `${r.rejoined.name} ${r.rejoined.role} ${r.rejoined.state}, timeline ${r.rejoined.timeline ?? '?'}, lag ${r.rejoined.lag ?? '?'}`} in ${(r.rejoinMs / 1000).toFixed(1)} s${r.rewound ? ' (after pg_rewind)' : ''}`,
  ];
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const missing = missingBinaries();
  if (missing !== null) {
    console.error(`drill:failover cannot run: ${missing}`);
    process.exit(2);
  }
  const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
  const result = await runFailoverDrill({
    rate: num('DRILL_RATE', 50),
    beforeMs: num('DRILL_BEFORE_S', 10) * 1000,
    afterMs: num('DRILL_AFTER_S', 5) * 1000,
    service: 'dist',
    rejoin: true,
    log: (line) => console.log(line),
  });
  for (const line of describeResult(result)) console.log(line);
  process.exit(result.missing === 0 && result.rtoMs <= 12_000 && result.rejoined !== undefined ? 0 : 1);
}
