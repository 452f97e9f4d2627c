/** What the orchestrator asks the load generator to do, and what it answers. Plain data: it crosses IPC. */

export interface HttpCall {
  method: 'GET' | 'POST';
  path: string;
  /** JSON text; sent with Content-Type: application/json. */
  body?: string;
  /** The body holds signalment placeholders (bench/lib/vary.ts), filled anew for each request. */
  vary?: boolean;
}

export type ScenarioSpec =
  /** Each request is one of `calls`, drawn by the seeded PRNG. */
  | { name: string; kind: 'calls'; auth: boolean; calls: HttpCall[] }
  /**
   * A consultation: POST /v1/consultations (start), POST .../inputs (inputs), POST .../diagnose.
   * Three requests per flow, each sent as soon as the previous one has answered.
   */
  | { name: string; kind: 'flow'; auth: true; cases: Array<{ start: string; inputs: string }>; vary?: boolean };

export type LoadKind = 'saturation' | 'constant';

export interface Job {
  origin: string;
  apiKey: string;
  scenario: ScenarioSpec;
  load: LoadKind;
  durationSec: number;
  seed: number;
  /** saturation: closed-loop connections. */
  connections: number;
  /** constant: requests per second offered (a flow counts as 3 requests). */
  rate: number;
  /** constant: size of the connection pool the open loop dispatches into. */
  poolConnections: number;
  /** constant: how long to wait for outstanding responses once dispatching has stopped. */
  graceSec: number;
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  count: number;
}

export interface Errors {
  /** Answered with a status outside 2xx. */
  non2xx: number;
  /** No answer in time: for the open loop, still outstanding when the grace period ended. */
  timeouts: number;
  /** Connection refused/reset, parse errors. */
  socket: number;
  /** Flow steps never sent because an earlier step of the same flow failed. */
  skipped: number;
  total: number;
}

export interface Measured {
  scenario: string;
  load: LoadKind;
  /** Requests per second dispatched by the open loop (null for the closed loop). */
  offeredRps: number | null;
  targetRps: number | null;
  /** 2xx responses per second of elapsed time. */
  achievedRps: number;
  completed2xx: number;
  sent: number;
  elapsedSec: number;
  /** Milliseconds; for the open loop measured from each request's scheduled send time. */
  latencyMs: LatencySummary;
  errors: Errors;
  statusCodes: Record<string, number>;
  /** Open loop only: how late requests were handed to the pool relative to their schedule. */
  pacing?: {
    /** Timer lateness: actual hand-over to the pool minus scheduled time. */
    dispatchLagMs: LatencySummary;
    /** Most units (requests or flows) dispatched by one timer tick (about 1 ms). */
    maxPerTick: number;
    windowSec: number;
    /** Requests dispatched in each second of the window (by scheduled time). */
    dispatchedPerSecond: number[];
    /** 2xx responses received in each second since t0 (grace period included). */
    completedPerSecond: number[];
    flowsOffered?: number;
  };
  /** Flow scenario, open loop only: from a flow's scheduled start to its last response. */
  flowLatencyMs?: LatencySummary;
}

export type ToLoadgen = { type: 'job'; id: number; job: Job };
export type FromLoadgen = { type: 'result'; id: number; result: Measured } | { type: 'error'; id: number; message: string } | { type: 'ready' };
