/**
 * The process's metrics on one prom-client Registry (served at GET /metrics, and copied to
 * CloudWatch EMF when METRICS_SINK=emf): HTTP latency by route pattern and status, agent step
 * durations, the triage mix, PostgreSQL pool usage, and prom-client's default process metrics
 * (event-loop lag, memory, GC, CPU) under the same prefix.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CacheMetrics } from '../clinical/access/key-cache.js';
import type { DiagnosisMetrics } from '../clinical/metrics.js';
import type { ChainStep } from '../clinical/sessions.js';

export const METRIC_PREFIX = 'agenticpet_';
export const HTTP_DURATION = 'agenticpet_http_request_duration_seconds';
export const AGENT_STEP_DURATION = 'agenticpet_agent_step_duration_seconds';
export const DIAGNOSES_TOTAL = 'agenticpet_diagnoses_total';
export const POOL_CLIENTS = 'agenticpet_db_pool_clients';
export const POOL_IDLE = 'agenticpet_db_pool_idle_clients';
export const POOL_WAITING = 'agenticpet_db_pool_waiting_clients';
export const POOL_MAX = 'agenticpet_db_pool_max_clients';
export const CACHE_REQUESTS = 'agenticpet_cache_requests_total';
export const GROUP_COMMIT_BATCH = 'agenticpet_group_commit_batch_size';
export const DB_QUEUE_DEPTH = 'agenticpet_db_queue_depth';
export const DB_BATCHES_IN_FLIGHT = 'agenticpet_db_batches_in_flight';
export const OVERLOAD_REJECTIONS = 'agenticpet_overload_rejections_total';
export const AUDIT_CHECKPOINTS = 'agenticpet_audit_checkpoints_total';
export const RATE_LIMITED = 'agenticpet_rate_limited_total';
export const RATE_LIMIT_UNCHECKED = 'agenticpet_rate_limit_unchecked_total';

// Requests are expected in single-digit milliseconds; agent steps in tens of microseconds to
// a few milliseconds (the narrative, with an LLM, in seconds).
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const AGENT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5];

/** What the HTTP layer reports once per response. */
export interface RequestMetrics {
  /** route: the route pattern (never the raw URL); seconds: time to the response. */
  observeRequest(method: string, route: string, statusCode: number, seconds: number): void;
}

/** Connections of a database pool; PostgresExecutor.stats() provides them. */
export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
  max: number;
}

/** The group-commit queue (both adapters). */
export interface QueueStats {
  depth: number;
  inFlight: number;
}

export interface MetricsOptions {
  /** Pool usage to expose as gauges; absent (PGlite) registers no pool gauges. */
  poolStats?: () => PoolStats;
  /** prom-client's process metrics (event-loop lag, memory...); on unless false. */
  defaultMetrics?: boolean;
  /** The group-commit queue, sampled at scrape time. */
  queueStats?: () => QueueStats;
}

export interface AppMetrics {
  registry: Registry;
  http: RequestMetrics;
  diagnoses: DiagnosisMetrics;
  cache: CacheMetrics;
  /** Units per group-commit batch. */
  groupCommitBatch(size: number): void;
  /** A request refused with 503 before doing any work (event loop, queue). */
  overloaded(reason: string): void;
  /** A signed audit checkpoint written, or a write that failed (retried at the next interval). */
  auditCheckpoint(result: 'written' | 'failed'): void;
  /** A request refused with 429; policy: the budget that was spent (api-key, clinic). */
  rateLimited(policy: string): void;
  /** A request admitted without counting it, because the rate-limit counters were unreachable. */
  rateLimitUnchecked(): void;
}

type Child = ReturnType<Histogram<string>['labels']>;

/** Creates the metrics on `registry`; call once per registry. */
export function createMetrics(registry: Registry, opts: MetricsOptions = {}): AppMetrics {
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });

  const httpDuration = new Histogram({
    name: HTTP_DURATION,
    help: 'Time from request to response, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'],
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });
  const agentDuration = new Histogram({
    name: AGENT_STEP_DURATION,
    help: 'Duration of each agent step of a diagnosis, by agent and outcome (ok, failed, timeout, skipped)',
    labelNames: ['agent', 'status'],
    buckets: AGENT_BUCKETS,
    registers: [registry],
  });
  const diagnoses = new Counter({
    name: DIAGNOSES_TOTAL,
    help: 'Diagnoses committed, by triage level (the triage mix)',
    labelNames: ['triage_level'],
    registers: [registry],
  });

  const poolStats = opts.poolStats;
  if (poolStats !== undefined) {
    // Sampled at scrape time (three property reads on pg.Pool), never per query.
    const gauge = (name: string, help: string, read: (s: PoolStats) => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read(poolStats()));
        },
      });
    gauge(POOL_CLIENTS, 'Connections open in the PostgreSQL pool', (s) => s.total);
    gauge(POOL_IDLE, 'Idle connections in the PostgreSQL pool', (s) => s.idle);
    gauge(POOL_WAITING, 'Queries waiting for a PostgreSQL pool connection', (s) => s.waiting);
    gauge(POOL_MAX, 'Largest size of the PostgreSQL pool (DATABASE_POOL_MAX)', (s) => s.max);
  }
  const queueStats = opts.queueStats;
  if (queueStats !== undefined) {
    new Gauge({ name: DB_QUEUE_DEPTH, help: 'Clinic transactions waiting for a database connection (group-commit queue)', registers: [registry], collect() { this.set(queueStats().depth); } });
    new Gauge({ name: DB_BATCHES_IN_FLIGHT, help: 'Group-commit batches running now (connections in use for clinic transactions)', registers: [registry], collect() { this.set(queueStats().inFlight); } });
  }
  const cacheRequests = new Counter({
    name: CACHE_REQUESTS,
    help: 'L1 cache lookups, by cache and result (hit or miss)',
    labelNames: ['cache', 'result'],
    registers: [registry],
  });
  const batchSize = new Histogram({
    name: GROUP_COMMIT_BATCH,
    help: 'Clinic transactions committed together per database transaction (group commit)',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  const overloads = new Counter({
    name: OVERLOAD_REJECTIONS,
    help: 'Requests answered 503 before any work because the process was saturated, by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const checkpoints = new Counter({
    name: AUDIT_CHECKPOINTS,
    help: 'Signed audit checkpoints, by result (written, failed: the store was unreachable; retried at the next interval)',
    labelNames: ['result'],
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: RATE_LIMITED,
    help: 'Requests answered 429 because a budget was spent, by policy (api-key, clinic)',
    labelNames: ['policy'],
    registers: [registry],
  });
  const rateLimitUnchecked = new Counter({
    name: RATE_LIMIT_UNCHECKED,
    help: 'Requests admitted without a rate-limit check because the counters (Redis) were unreachable (fail open)',
    registers: [registry],
  });
  const cacheChildren = new Map<string, ReturnType<Counter<string>['labels']>>();

  // The label combinations are few (routes x methods x status codes): cache each child so a
  // request costs one Map lookup and an observe, not prom-client's label hashing.
  const httpChildren = new Map<string, Child>();
  const agentChildren = new Map<string, Child>();

  return {
    registry,
    http: {
      observeRequest(method, route, statusCode, seconds) {
        const key = `${method} ${statusCode} ${route}`;
        let c = httpChildren.get(key);
        if (c === undefined) httpChildren.set(key, (c = httpDuration.labels(method, route, String(statusCode))));
        c.observe(seconds);
      },
    },
    diagnoses: {
      agentSteps(steps: readonly ChainStep[]) {
        for (const s of steps) {
          const key = `${s.agent} ${s.status}`;
          let c = agentChildren.get(key);
          if (c === undefined) agentChildren.set(key, (c = agentDuration.labels(s.agent, s.status)));
          c.observe(s.durationMs / 1000);
        }
      },
      diagnosisRecorded(triageLevel: string) {
        diagnoses.inc({ triage_level: triageLevel });
      },
    },
    cache: {
      cacheLookup(cache, hit) {
        const key = `${cache} ${hit}`;
        let c = cacheChildren.get(key);
        if (c === undefined) cacheChildren.set(key, (c = cacheRequests.labels(cache, hit ? 'hit' : 'miss')));
        c.inc();
      },
    },
    groupCommitBatch: (size) => batchSize.observe(size),
    overloaded: (reason) => overloads.inc({ reason }),
    auditCheckpoint: (result) => checkpoints.inc({ result }),
    rateLimited: (policy) => rateLimited.inc({ policy }),
    rateLimitUnchecked: () => rateLimitUnchecked.inc(),
  };
}
