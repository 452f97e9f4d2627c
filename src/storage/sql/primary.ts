/**
 * Where the writable PostgreSQL is. node-postgres takes one host per connection string, unlike
 * libpq, so a multi-host DATABASE_URL in libpq's form
 *
 *   postgres://user@10.0.0.1:5432,10.0.0.2:5432,10.0.0.3:5432/agenticpet?target_session_attrs=read-write
 *
 * is resolved here: every host is probed at once (`SHOW transaction_read_only`, libpq's own test
 * for read-write), the first writable one in the listed order gets the pool, and when that pool
 * reports the primary lost (connection refused or cut, a read-only transaction after a demotion)
 * it is retired and the next request probes again. While no host is writable — a Patroni failover
 * between the leader's death and the promotion — requests fail at once with a 503 rather than
 * queueing for a primary that may be seconds away; probes are throttled so the outage does not
 * turn into a connection storm on the replicas.
 *
 * A single-host URL keeps one pool for the process's life, as before: the host may be a proxy
 * (HAProxy on Patroni's /primary check) or a DNS name (Aurora's cluster endpoint) that follows
 * the primary by itself, so reconnecting to the same name is how it follows a failover.
 */
import pg from 'pg';
import { StorageUnavailableError } from '../../clinical/errors.js';

export interface PgHost {
  /** host:port, for messages. */
  label: string;
  /** The connection string with this host alone (pg lets the string's host win over options). */
  url: string;
}

const URL_PARTS = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)(.*)$/;

/** Splits libpq's `host1:port1,host2:port2` authority into one single-host URL per host. */
export function parseHosts(url: string): PgHost[] {
  const m = URL_PARTS.exec(url);
  if (m === null) return [{ label: url, url }];
  const [, scheme, userinfo, authority, rest] = m as unknown as [string, string, string | undefined, string, string];
  return authority.split(',').map((part) => ({
    label: part === '' ? 'localhost' : part,
    url: `${scheme}${userinfo === undefined ? '' : `${userinfo}@`}${part}${rest}`,
  }));
}

/** Errors that say this connection's server is not (or no longer) a writable primary. */
const NOT_PRIMARY = new Set(['25006']);

export function isNotPrimaryError(err: unknown): boolean {
  return NOT_PRIMARY.has((err as { code?: string } | null)?.code ?? '');
}

/** Time between probe rounds while no primary is known: a failover takes seconds, not ms. */
const PROBE_INTERVAL_MS = 250;
/** A probe of one host: on loopback or in a VPC an answer takes milliseconds. */
const PROBE_TIMEOUT_MS = 1_000;
/** Retry-After of the 503 while a failover is in progress: the new primary is seconds away. */
const FAILOVER_RETRY_AFTER_S = 1;

export interface PrimaryLocatorOptions {
  connectionString: string;
  pool: Omit<pg.PoolConfig, 'connectionString' | 'host' | 'port'>;
  onPoolError?: (err: Error) => void;
  /** Called when a pool is opened on a newly found primary (host:port), for the logs. */
  onPrimary?: (host: string) => void;
  isLoss: (err: unknown) => boolean;
}

export class PrimaryLocator {
  private readonly hosts: PgHost[];
  /** The pool on the primary, when one is known. */
  current: pg.Pool | undefined;
  private probing: Promise<pg.Pool> | undefined;
  private lastFailure = 0;
  private lastFailureDetail = '';
  /** Pools being closed after a loss, with the promise of their end. */
  private readonly retired = new Map<pg.Pool, Promise<void>>();

  constructor(private readonly opts: PrimaryLocatorOptions) {
    this.hosts = parseHosts(opts.connectionString);
    if (this.hosts.length <= 1) this.current = this.open(opts.connectionString);
  }

  /** True when the URL names several hosts and the primary is found by probing. */
  get probes(): boolean {
    return this.hosts.length > 1;
  }

  /** The primary's pool: the known one, or the outcome of a probe round. */
  pool(): pg.Pool | Promise<pg.Pool> {
    if (this.current !== undefined) return this.current;
    if (this.probing !== undefined) return this.probing;
    if (Date.now() - this.lastFailure < PROBE_INTERVAL_MS) {
      return Promise.reject(this.noPrimary());
    }
    this.probing = this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  /**
   * The pool reported an error: if it means the primary is gone or demoted, the pool is retired
   * (its idle connections closed, its busy ones destroyed as they are released with their error)
   * and the next request looks for the primary again.
   */
  lost(pool: pg.Pool, err: unknown): void {
    if (!this.probes || pool !== this.current || !this.opts.isLoss(err)) return;
    this.current = undefined;
    this.retire(pool);
  }

  async close(): Promise<void> {
    await this.probing?.catch(() => undefined);
    const current = this.current;
    this.current = undefined;
    await Promise.all([...this.retired.values(), current?.end()]);
  }

  private retire(pool: pg.Pool): void {
    this.retired.set(
      pool,
      pool
        .end()
        .catch(() => undefined)
        .finally(() => this.retired.delete(pool)),
    );
  }

  private open(connectionString: string): pg.Pool {
    const pool = new pg.Pool({ ...this.opts.pool, connectionString });
    pool.on('error', (err) => {
      this.opts.onPoolError?.(err);
      // An idle connection dropping is the earliest sign of a dead primary: retire the pool now
      // rather than on the next request's failed query.
      this.lost(pool, err);
    });
    return pool;
  }

  private async probe(): Promise<pg.Pool> {
    const verdicts = await Promise.all(this.hosts.map((h) => probeHost(h.url)));
    const index = verdicts.findIndex((v) => v === 'writable');
    if (index < 0) {
      this.lastFailure = Date.now();
      this.lastFailureDetail = this.hosts.map((h, i) => `${h.label} ${verdicts[i]}`).join(', ');
      throw this.noPrimary();
    }
    const host = this.hosts[index]!;
    const pool = this.open(host.url);
    this.current = pool;
    this.opts.onPrimary?.(host.label);
    return pool;
  }

  private noPrimary(): StorageUnavailableError {
    return new StorageUnavailableError(`No writable PostgreSQL primary among ${this.hosts.length} hosts (${this.lastFailureDetail}); a failover may be in progress`, undefined, FAILOVER_RETRY_AFTER_S);
  }
}

async function probeHost(connectionString: string): Promise<string> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: PROBE_TIMEOUT_MS, query_timeout: PROBE_TIMEOUT_MS });
  // An error after connect (the server going away mid-probe) is answered by the query's rejection.
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ transaction_read_only: string }>('SHOW transaction_read_only');
    return rows[0]?.transaction_read_only === 'off' ? 'writable' : 'read-only';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}
