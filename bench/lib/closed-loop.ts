/**
 * Saturation: a closed loop with autocannon. Each of `connections` connections sends its next
 * request as soon as the previous one has answered, so the server runs as fast as it can and
 * the figure that matters is requests per second.
 */
import autocannon from 'autocannon';
import { microsecondHistogram, recordMs, summarize } from './histogram.js';
import type { HttpCall, Job, Measured } from './jobs.js';
import { mulberry32, pick, type Random } from './prng.js';
import { varied } from './vary.js';

type Headers = Record<string, string>;

interface FlowContext {
  case?: { start: string; inputs: string };
  id?: string | undefined;
}

// autocannon writes Content-Length into the headers object it is given, so each request gets a fresh one.
function callRequest(call: HttpCall, auth: Headers, random: Random): Partial<autocannon.Request> {
  if (call.vary === true && call.body !== undefined) call = { ...call, body: varied(call.body, random) };
  return call.body === undefined
    ? { method: call.method, path: call.path, headers: { ...auth }, body: Buffer.alloc(0) }
    : { method: call.method, path: call.path, headers: { ...auth, 'content-type': 'application/json' }, body: call.body };
}

function requestsFor(job: Job): autocannon.Request[] {
  const random = mulberry32(job.seed);
  const s = job.scenario;
  const auth: Headers = s.auth ? { authorization: `Bearer ${job.apiKey}` } : {};
  if (s.kind === 'calls') {
    return [{ setupRequest: (req) => ({ ...req, ...callRequest(pick(random, s.calls), auth, random) }) }];
  }
  // Returning null from setupRequest makes autocannon abandon this flow and start a new one.
  const abandon = null as unknown as autocannon.Request;
  return [
    {
      setupRequest: (req, ctx) => {
        const c = ctx as FlowContext;
        c.case = pick(random, s.cases);
        c.id = undefined;
        return { ...req, ...callRequest({ method: 'POST', path: '/v1/consultations', body: c.case.start, vary: s.vary }, auth, random) };
      },
      onResponse: (status, body, ctx) => {
        (ctx as FlowContext).id = status === 201 ? (JSON.parse(body) as { id: string }).id : undefined;
      },
    },
    {
      setupRequest: (req, ctx) => {
        const c = ctx as FlowContext;
        if (c.id === undefined || c.case === undefined) return abandon;
        return { ...req, ...callRequest({ method: 'POST', path: `/v1/consultations/${c.id}/inputs`, body: c.case.inputs }, auth, random) };
      },
      onResponse: (status, _body, ctx) => {
        if (status !== 200) (ctx as FlowContext).id = undefined;
      },
    },
    {
      setupRequest: (req, ctx) => {
        const c = ctx as FlowContext;
        if (c.id === undefined) return abandon;
        return { ...req, ...callRequest({ method: 'POST', path: `/v1/consultations/${c.id}/diagnose` }, auth, random) };
      },
    },
  ];
}

/** Runs autocannon; `onResponse` sees every response's status and latency (ms, from hrtime). */
export function run(opts: autocannon.Options, onResponse?: (status: number, ms: number) => void): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(opts, (err, result) => (err ? reject(err) : resolve(result)));
    if (onResponse !== undefined) instance.on('response', (_client, status, _bytes, ms) => onResponse(status, ms));
  });
}

export async function closedLoop(job: Job): Promise<Measured> {
  // autocannon's own histogram mixes every status in whole ms; this one keeps the 2xx, in µs,
  // as the open loop does (a fast 503 from overload protection must not pass for a fast answer).
  const latency = microsecondHistogram();
  const r = await run(
    {
      url: job.origin,
      connections: job.connections,
      pipelining: 1,
      duration: job.durationSec,
      timeout: 30,
      requests: requestsFor(job),
    },
    (status, ms) => {
      if (status >= 200 && status < 300) recordMs(latency, ms);
    },
  );
  const ok = r['2xx'];
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = v.count ?? 0;
  const errors = { non2xx: r.non2xx, timeouts: r.timeouts, socket: Math.max(0, r.errors - r.timeouts), skipped: r.resets, total: 0 };
  errors.total = errors.non2xx + errors.timeouts + errors.socket + errors.skipped;
  return {
    scenario: job.scenario.name,
    load: 'saturation',
    offeredRps: null,
    targetRps: null,
    achievedRps: Math.round((ok / r.duration) * 10) / 10,
    completed2xx: ok,
    sent: r.requests.sent,
    elapsedSec: r.duration,
    latencyMs: summarize(latency),
    errors,
    statusCodes,
  };
}
