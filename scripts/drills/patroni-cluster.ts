/**
 * A three-node Patroni cluster on loopback for the failover drill: one etcd, three PostgreSQL
 * nodes each under its own Patroni, synchronous replication in strict mode, everything in one
 * mkdtemp directory that stop() removes with every process it started (also after a failure).
 *
 * Timings (bootstrap.dcs), chosen for RTO ≤ 12 s:
 * - ttl 6: the leader key outlives its holder by at most ttl. A kill -9 leaves it to expire,
 *   and that wait dominates the RTO (Patroni's default 30 gives ~20 s on this machine). The
 *   rest (promotion, the third node re-attaching as synchronous standby, the service finding the
 *   new primary) takes ~1 s, and a loaded two-core machine has been seen to add up to 5 s: ttl 6
 *   keeps the RTO under 12 s with that margin (with ttl 7, four runs measured 7.3–13.0 s).
 * - loop_wait 1: the leader renews the key every second, so it expires ttl-1..ttl s after the
 *   kill; replicas watch the key in etcd and race for it as soon as it goes.
 * - retry_timeout 2: how long a DCS or PostgreSQL call may stall before the leader demotes
 *   itself; Patroni requires loop_wait + 2 × retry_timeout ≤ ttl (1 + 4 ≤ 6). Both answer in
 *   milliseconds on loopback; a 2 s stall means a machine too overloaded to trust as leader.
 * - use_slots false, wal_keep_size 256MB: with member slots, the new leader creates the third
 *   node's slot only after its post-promotion checkpoint, and strict mode blocks every commit
 *   until that node streams again: 4-5 s more RTO here. wal_keep_size keeps the WAL a replica
 *   returning within 256 MB of writes needs; a longer absence is a re-clone (Patroni does it).
 * Strict synchronous mode with three nodes: every acknowledged commit is on the leader and the
 * synchronous standby; Patroni promotes only that standby, so RPO is 0, and after the failover
 * the third node becomes the new synchronous standby (with two nodes, strict mode would block
 * every commit until the dead one returned).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface ClusterPorts {
  etcdClient: number;
  etcdPeer: number;
  /** PostgreSQL port of node i is pg + i, its REST API rest + i. */
  pg: number;
  rest: number;
}

export interface Member {
  name: string;
  role: string;
  state: string;
  lag?: number | string;
  timeline?: number;
}

const NODES = 3;
const TIMINGS = { ttl: 6, loop_wait: 1, retry_timeout: 2 };

/** Why the drill cannot run here, or null: the Debian binaries it drives. */
export function missingBinaries(): string | null {
  const missing = ['patroni', 'etcd'].filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  if (pgBinDir() === null) missing.push('PostgreSQL server binaries (/usr/lib/postgresql/*/bin)');
  return missing.length === 0 ? null : `${missing.join(', ')} not installed (Debian: apt-get install patroni etcd-server)`;
}

function pgBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return null;
  const versions = fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'pg_rewind'))).sort((a, b) => Number(b) - Number(a));
  return versions.length === 0 ? null : path.join(root, versions[0]!, 'bin');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class PatroniCluster {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-failover-'));
  private etcd: ChildProcess | undefined;
  private readonly patroni = new Map<string, ChildProcess>();
  /** PostgreSQL must not run as root: with root the processes run as postgres. */
  private readonly asPostgres = process.getuid?.() === 0;

  constructor(private readonly ports: ClusterPorts) {}

  names(): string[] {
    return Array.from({ length: NODES }, (_, i) => `pg${i + 1}`);
  }

  pgPort(name: string): number {
    return this.ports.pg + this.names().indexOf(name);
  }

  /** libpq's multi-host form; the service finds the primary among them (src/storage/sql/primary.ts). */
  databaseUrl(database: string): string {
    return `postgres://postgres@${this.names().map((n) => `127.0.0.1:${this.pgPort(n)}`).join(',')}/${database}?target_session_attrs=read-write`;
  }

  private spawnLogged(name: string, cmd: string, args: string[]): ChildProcess {
    const log = fs.openSync(path.join(this.dir, `${name}.log`), 'a');
    const [bin, argv] = this.asPostgres ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    const child = spawn(bin, argv, { stdio: ['ignore', log, log], cwd: this.dir });
    fs.closeSync(log);
    child.on('error', () => undefined);
    return child;
  }

  log(name: string): string {
    const file = path.join(this.dir, `${name}.log`);
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  }

  async start(): Promise<void> {
    if (this.asPostgres) spawnSync('chown', ['postgres:postgres', this.dir]);
    fs.chmodSync(this.dir, 0o700);
    const { etcdClient, etcdPeer } = this.ports;
    this.etcd = this.spawnLogged('etcd', 'etcd', [
      '--name', 'drill', '--data-dir', path.join(this.dir, 'etcd'),
      '--listen-client-urls', `http://127.0.0.1:${etcdClient}`, '--advertise-client-urls', `http://127.0.0.1:${etcdClient}`,
      '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster', `drill=http://127.0.0.1:${etcdPeer}`,
    ]);
    await this.waitFor('etcd', async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`, { signal: AbortSignal.timeout(1000) })).ok, 20_000);
    for (const name of this.names()) {
      fs.writeFileSync(path.join(this.dir, `${name}.yml`), JSON.stringify(this.config(name), null, 2));
      if (this.asPostgres) spawnSync('chown', ['postgres:postgres', path.join(this.dir, `${name}.yml`)]);
    }
    // The first node bootstraps (initdb); the others then clone it (pg_basebackup) in parallel.
    this.startNode('pg1');
    await this.waitFor('a leader', async () => (await this.members()).some((m) => m.role === 'leader' && m.state === 'running'), 60_000);
    for (const name of this.names().slice(1)) this.startNode(name);
    await this.waitHealthy(90_000);
  }

  private config(name: string): unknown {
    const i = this.names().indexOf(name);
    const bin = pgBinDir()!;
    const hba = ['local all all trust', 'host all all 127.0.0.1/32 trust', 'host replication replicator 127.0.0.1/32 trust'];
    return {
      scope: 'agenticpet-drill',
      namespace: '/agenticpet/',
      name,
      restapi: { listen: `127.0.0.1:${this.ports.rest + i}`, connect_address: `127.0.0.1:${this.ports.rest + i}` },
      etcd3: { hosts: [`127.0.0.1:${this.ports.etcdClient}`] },
      bootstrap: {
        dcs: {
          ...TIMINGS,
          maximum_lag_on_failover: 1_048_576,
          synchronous_mode: true,
          synchronous_mode_strict: true,
          postgresql: {
            use_pg_rewind: true,
            // See the header: without member slots a replica follows the new leader at once.
            use_slots: false,
            // wal_log_hints lets pg_rewind work on a cluster initialised without checksums.
            parameters: { wal_level: 'replica', hot_standby: 'on', wal_log_hints: 'on', max_wal_senders: 10, max_replication_slots: 10, wal_keep_size: '256MB', max_connections: 100, shared_buffers: '32MB', fsync: 'on' },
          },
        },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
      },
      postgresql: {
        listen: `127.0.0.1:${this.pgPort(name)}`,
        connect_address: `127.0.0.1:${this.pgPort(name)}`,
        data_dir: path.join(this.dir, name),
        bin_dir: bin,
        pgpass: path.join(this.dir, `${name}.pgpass`),
        // Loopback only, in a directory of the drill's own: trust keeps the drill free of secrets.
        authentication: { superuser: { username: 'postgres' }, replication: { username: 'replicator' }, rewind: { username: 'postgres' } },
        pg_hba: hba,
        parameters: { unix_socket_directories: this.dir },
      },
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    };
  }

  startNode(name: string): void {
    this.patroni.set(name, this.spawnLogged(name, 'patroni', [path.join(this.dir, `${name}.yml`)]));
  }

  /** The members as Patroni's REST API reports them (any live node answers for the cluster). */
  async members(): Promise<Member[]> {
    for (const name of this.names()) {
      const res = await fetch(`http://127.0.0.1:${this.ports.rest + this.names().indexOf(name)}/cluster`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
      if (res?.ok) return ((await res.json()) as { members: Member[] }).members;
    }
    return [];
  }

  async leader(): Promise<string | undefined> {
    return (await this.members()).find((m) => m.role === 'leader')?.name;
  }

  /** A leader, a synchronous standby and a third node streaming: what strict mode needs to write. */
  async waitHealthy(timeoutMs: number, expectNames = this.names()): Promise<Member[]> {
    let last: Member[] = [];
    await this.waitFor(
      'a healthy cluster (leader, sync standby, replica all streaming)',
      async () => {
        last = await this.members();
        const ok = (m: Member) => m.role === 'leader' ? m.state === 'running' : m.state === 'streaming' || m.state === 'running';
        return expectNames.every((n) => last.some((m) => m.name === n && ok(m))) && last.some((m) => m.role === 'leader') && last.some((m) => m.role === 'sync_standby');
      },
      timeoutMs,
    );
    return last;
  }

  private postmasterPid(name: string): number | undefined {
    const file = path.join(this.dir, name, 'postmaster.pid');
    if (!fs.existsSync(file)) return undefined;
    const pid = Number(fs.readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  /** A node lost: kill -9 its Patroni and its postmaster (which Patroni runs detached). */
  kill(name: string): void {
    const patroni = this.patroni.get(name);
    const postmaster = this.postmasterPid(name);
    // Under runuser the patroni process is runuser's child: kill the whole tree runuser leads.
    if (patroni?.pid !== undefined) this.killTree(patroni.pid);
    if (postmaster !== undefined) {
      try {
        process.kill(postmaster, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }

  private killTree(pid: number): void {
    const children = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l !== '').map(Number);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    for (const child of children) this.killTree(child);
  }

  async waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await check().catch(() => false)) return;
      await sleep(200);
    }
    throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; logs in ${this.dir}:\n${this.names().map((n) => `--- ${n}\n${this.log(n).slice(-1500)}`).join('\n')}`);
  }

  /** Stops everything it started (Patroni stops PostgreSQL; kill -9 what outlives the grace) and removes the directory. */
  async stop(): Promise<void> {
    for (const child of this.patroni.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && [...this.patroni.values()].some((c) => c.exitCode === null && c.signalCode === null)) await sleep(200);
    for (const [name, child] of this.patroni) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) this.killTree(child.pid);
      const postmaster = this.postmasterPid(name);
      if (postmaster !== undefined) {
        try {
          process.kill(postmaster, 'SIGKILL');
        } catch {
          // Stopped by its Patroni.
        }
      }
    }
    if (this.etcd?.pid !== undefined) this.killTree(this.etcd.pid);
    await sleep(300);
    if (process.env.AGENTICPET_DRILL_KEEP !== '1') fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
