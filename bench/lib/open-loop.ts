/**
 * Constant rate: an open loop. Request i is due at t0 + i/rate; a timer dispatches every request
 * whose time has come (never more), whether or not earlier ones have answered, into a large
 * connection pool. Each latency runs from the request's scheduled time, not from when it was
 * actually written, so time spent waiting behind a slow server or a late timer is counted
 * (no coordinated omission). When the duration is over, dispatching stops; responses still
 * outstanding after the grace period are counted as timeouts.
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { microsecondHistogram, recordMs, summarize } from './histogram.js';
import type { Errors, HttpCall, Job, Measured } from './jobs.js';
import { mulberry32, pick } from './prng.js';
import { varied } from './vary.js';

const FAILED = Symbol('failed');
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function openLoop(job: Job): Promise<Measured> {
  const s = job.scenario;
  const random = mulberry32(job.seed);
  const timeoutMs = 30_000;
  const pool = new Pool(job.origin, { connections: job.poolConnections, pipelining: 1, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, keepAliveTimeout: 60_000 });
  const auth: Record<string, string> = s.auth ? { authorization: `Bearer ${job.apiKey}` } : {};
  const jsonHeaders = { ...auth, 'content-type': 'application/json' };

  const latency = microsecondHistogram();
  const flowLatency = microsecondHistogram();
  const lag = microsecondHistogram();
  const statusCodes: Record<string, number> = {};
  const errors: Errors = { non2xx: 0, timeouts: 0, socket: 0, skipped: 0, total: 0 };
  const stepsPerUnit = s.kind === 'flow' ? 3 : 1;
  const unitIntervalMs = (1000 * stepsPerUnit) / job.rate;
  const units = Math.floor((job.durationSec * 1000) / unitIntervalMs);
  const seconds = Math.ceil(job.durationSec + job.graceSec) + 1;
  const dispatchedPerSecond: number[] = new Array<number>(seconds).fill(0);
  const completedPerSecond: number[] = new Array<number>(seconds).fill(0);
  let t0 = 0;
  let sent = 0;
  let completed2xx = 0;
  let outstanding = 0;
  let activeFlows = 0;
  let lastSettled = 0;
  let closed = false;

  /** One HTTP request; counts its outcome unless the run is already closed. */
  async function send(call: HttpCall, intendedAt: number, wantJson: boolean): Promise<unknown> {
    if (closed) return FAILED;
    if (call.vary === true && call.body !== undefined) call = { ...call, body: varied(call.body, random) };
    sent++;
    outstanding++;
    let status = 0;
    let data: unknown;
    let error: { code?: string } | undefined;
    try {
      const res = await pool.request({ method: call.method, path: call.path, headers: call.body === undefined ? auth : jsonHeaders, body: call.body });
      status = res.statusCode;
      if (wantJson && status >= 200 && status < 300) data = await res.body.json();
      else await res.body.arrayBuffer();
    } catch (err) {
      error = err as { code?: string };
    }
    outstanding--;
    if (closed) return FAILED; // already counted as a timeout when the run closed
    const now = performance.now();
    lastSettled = now;
    if (error !== undefined) {
      if (TIMEOUT_CODES.has(error.code ?? '')) errors.timeouts++;
      else errors.socket++;
      return FAILED;
    }
    statusCodes[status] = (statusCodes[status] ?? 0) + 1;
    if (status < 200 || status >= 300) {
      errors.non2xx++;
      return FAILED;
    }
    completed2xx++;
    const sec = Math.floor((now - t0) / 1000);
    if (sec >= 0 && sec < seconds) completedPerSecond[sec]!++;
    recordMs(latency, now - intendedAt);
    return data ?? true;
  }

  // A dependent step cannot be sent before the previous answer: its latency runs from that answer.
  async function flow(scheduled: number, c: { start: string; inputs: string }): Promise<void> {
    activeFlows++;
    try {
      const started = await send({ method: 'POST', path: '/v1/consultations', body: c.start, vary: s.kind === 'flow' && s.vary === true }, scheduled, true);
      if (started === FAILED) {
        if (!closed) errors.skipped += 2;
        return;
      }
      const id = (started as { id: string }).id;
      const inputs = await send({ method: 'POST', path: `/v1/consultations/${id}/inputs`, body: c.inputs }, performance.now(), false);
      if (inputs === FAILED) {
        if (!closed) errors.skipped += 1;
        return;
      }
      const diagnosed = await send({ method: 'POST', path: `/v1/consultations/${id}/diagnose` }, performance.now(), false);
      if (diagnosed !== FAILED) recordMs(flowLatency, performance.now() - scheduled);
    } finally {
      activeFlows--;
    }
  }

  function dispatch(scheduled: number): void {
    if (s.kind === 'flow') void flow(scheduled, pick(random, s.cases));
    else void send(pick(random, s.calls), scheduled, false);
  }

  let next = 0;
  let maxPerTick = 0;
  t0 = performance.now() + 20;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      let n = 0;
      // Every unit whose scheduled time has come, and no more.
      while (next < units && t0 + next * unitIntervalMs <= now) {
        const scheduled = t0 + next * unitIntervalMs;
        recordMs(lag, now - scheduled);
        dispatchedPerSecond[Math.floor((scheduled - t0) / 1000)]! += stepsPerUnit;
        dispatch(scheduled);
        next++;
        n++;
      }
      if (n > maxPerTick) maxPerTick = n;
      if (next >= units) return resolve();
      // Node's timers fire no sooner than 1 ms: at rates above 1000/s a tick dispatches 1-2 units.
      setTimeout(tick, Math.max(0, t0 + next * unitIntervalMs - performance.now()));
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  const windowEnd = t0 + units * unitIntervalMs;
  const deadline = performance.now() + job.graceSec * 1000;
  while ((outstanding > 0 || activeFlows > 0) && performance.now() < deadline) await sleep(5);

  closed = true;
  const offered = units * stepsPerUnit;
  const unfinished = offered - completed2xx - errors.non2xx - errors.timeouts - errors.socket - errors.skipped;
  errors.timeouts += unfinished;
  errors.total = errors.non2xx + errors.timeouts + errors.socket + errors.skipped;
  const elapsedMs = Math.max(windowEnd, lastSettled) - t0;
  await pool.destroy().catch(() => undefined);

  const windowSec = Math.round(units * unitIntervalMs) / 1000;
  return {
    scenario: s.name,
    load: 'constant',
    targetRps: job.rate,
    offeredRps: Math.round((offered / windowSec) * 10) / 10,
    achievedRps: Math.round((completed2xx / (elapsedMs / 1000)) * 10) / 10,
    completed2xx,
    sent,
    elapsedSec: Math.round(elapsedMs) / 1000,
    latencyMs: summarize(latency),
    errors,
    statusCodes,
    pacing: {
      dispatchLagMs: summarize(lag),
      maxPerTick,
      windowSec,
      dispatchedPerSecond: dispatchedPerSecond.slice(0, Math.ceil(windowSec)),
      completedPerSecond: trimZeros(completedPerSecond),
      ...(s.kind === 'flow' ? { flowsOffered: units } : {}),
    },
    ...(s.kind === 'flow' ? { flowLatencyMs: summarize(flowLatency) } : {}),
  };
}

function trimZeros(xs: number[]): number[] {
  let end = xs.length;
  while (end > 0 && xs[end - 1] === 0) end--;
  return xs.slice(0, end);
}
