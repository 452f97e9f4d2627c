/**
 * drill:crash — kill -9 of the whole server (primary and every worker at once) under write load
 * on PostgreSQL, then a restart, then proof that nothing acknowledged was lost or left half
 * written:
 *   - every diagnosis answered 201 reads back (GET /v1/diagnoses/:id) exactly as acknowledged,
 *     and its trace (GET …/trace: conclusions with their evidence, provenance) is readable;
 *   - in the database (SQL as the owner, past row-level security): every diagnosis row has its
 *     provenance row and its audit event, no provenance, evidence or audit event points at a
 *     diagnosis that does not exist (the rows of one diagnosis are one transaction: all or none);
 *   - `agenticpet audit verify` passes: the hash chains are intact across the crash.
 * Diagnoses committed but never acknowledged (in flight at the kill) are counted, and checked
 * like the rest. The session tier is in-process here: it is the persistent tier that a crash
 * tests, and no clinical record lives in the ephemeral one.
 *
 *   npm run drill:crash [-- --rate 100 --before 8 --workers 2]
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import pg from 'pg';
import { Load, loadCases, ms, summarize, type Outcome } from './lib/load.js';
import { DEFAULT_PG_ADMIN_URL, drillPorts, portIn, sleep, withScope } from './lib/scope.js';
import { auditVerify, DrillServer, type ServerCode } from './lib/server.js';

export interface CrashDrillOptions {
  root: string;
  code: ServerCode;
  pgAdminUrl: string;
  workers: number;
  ratePerSecond: number;
  /** Seconds of load before the kill. */
  beforeKillSeconds: number;
  log?: (line: string) => void;
}

export interface CrashDrillResult {
  sent: number;
  acknowledged: number;
  unanswered: number;
  otherStatuses: Record<string, number>;
  killedPids: number[];
  restartMs: number;
  /** Acknowledged diagnoses whose report read back identical and whose trace was complete. */
  verifiedOverHttp: number;
  problems: string[];
  sql: SqlChecks;
  auditVerify: { status: number; output: string };
  /** A diagnosis written after the restart (the service takes writes again). */
  writesAfterRestart: boolean;
}

export interface SqlChecks {
  diagnoses: number;
  acknowledgedFound: number;
  committedUnacknowledged: number;
  withoutProvenance: number;
  withoutAuditEvent: number;
  orphanProvenance: number;
  orphanEvidence: number;
  orphanAuditEvents: number;
}

async function sqlChecks(url: string, acknowledged: string[]): Promise<SqlChecks> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const one = async (sql: string, params: unknown[] = []) => Number((await c.query<{ n: string }>(sql, params)).rows[0]!.n);
    const created = `SELECT entity_id, clinic_id FROM audit_events WHERE action = 'create' AND entity_type = 'diagnosis' AND outcome = 'success'`;
    return {
      diagnoses: await one('SELECT count(*) AS n FROM diagnoses'),
      acknowledgedFound: await one('SELECT count(*) AS n FROM diagnoses WHERE id = ANY($1::uuid[])', [acknowledged]),
      committedUnacknowledged: await one('SELECT count(*) AS n FROM diagnoses WHERE NOT (id = ANY($1::uuid[]))', [acknowledged]),
      withoutProvenance: await one('SELECT count(*) AS n FROM diagnoses d WHERE NOT EXISTS (SELECT 1 FROM diagnosis_provenance p WHERE p.clinic_id = d.clinic_id AND p.diagnosis_id = d.id)'),
      withoutAuditEvent: await one(`SELECT count(*) AS n FROM diagnoses d WHERE NOT EXISTS (SELECT 1 FROM (${created}) a WHERE a.clinic_id = d.clinic_id AND a.entity_id = d.id)`),
      orphanProvenance: await one('SELECT count(*) AS n FROM diagnosis_provenance p WHERE NOT EXISTS (SELECT 1 FROM diagnoses d WHERE d.clinic_id = p.clinic_id AND d.id = p.diagnosis_id)'),
      orphanEvidence: await one('SELECT count(*) AS n FROM diagnosis_evidence e WHERE NOT EXISTS (SELECT 1 FROM diagnoses d WHERE d.clinic_id = e.clinic_id AND d.id = e.diagnosis_id)'),
      orphanAuditEvents: await one(`SELECT count(*) AS n FROM (${created}) a WHERE NOT EXISTS (SELECT 1 FROM diagnoses d WHERE d.clinic_id = a.clinic_id AND d.id = a.entity_id)`),
    };
  } finally {
    await c.end();
  }
}

interface Trace {
  diagnosisId?: string;
  conclusions?: Array<{ evidence?: unknown[] }>;
  provenance?: { chainDigest?: string; agents?: unknown; kbVersion?: string };
}

/** Reads each acknowledged diagnosis back over HTTP; returns how many passed and what failed. */
async function verifyOverHttp(origin: string, apiKey: string, acked: Outcome[], concurrency = 8): Promise<{ verified: number; problems: string[] }> {
  const problems: string[] = [];
  let verified = 0;
  let next = 0;
  const get = async (url: string): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(origin + url, { headers: { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(15_000) });
    return { status: res.status, body: res.ok ? await res.json() : await res.text() };
  };
  const worker = async () => {
    while (next < acked.length) {
      const o = acked[next++]!;
      const report = await get(`/v1/diagnoses/${o.id}`);
      const trace = await get(`/v1/diagnoses/${o.id}/trace`);
      const t = trace.body as Trace;
      const why =
        report.status !== 200
          ? `GET /v1/diagnoses/${o.id}: ${report.status}`
          : !isDeepStrictEqual(report.body, o.body)
            ? `${o.id}: the stored report differs from the one acknowledged`
            : trace.status !== 200
              ? `GET /v1/diagnoses/${o.id}/trace: ${trace.status}`
              : t.diagnosisId !== o.id || !t.conclusions?.length || t.conclusions.some((c) => !c.evidence?.length) || !t.provenance?.chainDigest || !t.provenance.kbVersion
                ? `${o.id}: trace incomplete (conclusions, evidence or provenance missing)`
                : undefined;
      if (why === undefined) verified++;
      else if (problems.length < 20) problems.push(why);
      else problems.length === 20 && problems.push('…');
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { verified, problems };
}

export async function runCrashDrill(opts: CrashDrillOptions): Promise<CrashDrillResult> {
  const log = opts.log ?? (() => undefined);
  return withScope(async (scope) => {
    const dataDir = scope.tempDir('crash');
    const databaseUrl = await scope.database(opts.pgAdminUrl, 'crash');
    const [from, to] = drillPorts();
    const server = new DrillServer({
      root: opts.root,
      code: opts.code,
      port: await portIn(from, to),
      workers: opts.workers,
      dataDir,
      databaseUrl,
      redisUrl: undefined,
      redisKeyPrefix: 'ap',
      apiKey: `drill-${randomBytes(24).toString('hex')}`,
    });
    scope.defer('stop the server', () => server.stop());
    await server.start();
    const apiKey = server.apiKey;
    log(`server up: ${opts.workers} workers (pids ${server.pid}, ${server.workerPids().join(', ')}), ${server.origin}, database ${new URL(databaseUrl).pathname.slice(1)}`);

    const load = new Load({ origin: server.origin, apiKey, ratePerSecond: opts.ratePerSecond, keepBodies: true }, loadCases(opts.root));
    load.start();
    await sleep(opts.beforeKillSeconds * 1000);
    const { killed } = await server.killAll();
    log(`kill -9 at ${ms(load.now())} of load: pids ${killed.join(', ')}`);
    const outcomes = await load.stop();
    const s = summarize(outcomes);
    const acked = outcomes.filter((o) => o.status === 201 && o.id !== undefined);
    const unanswered = outcomes.filter((o) => o.status === 0).length;
    const otherStatuses = Object.fromEntries(Object.entries(s.byStatus).filter(([k]) => k !== '201' && !k.startsWith('no answer')));
    log(`load: ${s.sent} sent at ${opts.ratePerSecond}/s, ${acked.length} acknowledged (201), ${unanswered} without an answer (in flight at the kill), other: ${JSON.stringify(otherStatuses)}`);

    const t0 = performance.now();
    await server.start();
    const restartMs = performance.now() - t0;
    log(`restarted: ready after ${ms(restartMs)}`);

    const http = await verifyOverHttp(server.origin, apiKey, acked);
    log(`read back over HTTP: ${http.verified}/${acked.length} acknowledged diagnoses identical, with evidence and provenance`);
    const after = await fetch(`${server.origin}/v1/diagnoses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(loadCases(opts.root)[0]),
      signal: AbortSignal.timeout(15_000),
    });
    const writesAfterRestart = after.status === 201;
    await server.stop();

    const sql = await sqlChecks(databaseUrl, acked.map((o) => o.id!));
    log(
      `database: ${sql.diagnoses} diagnoses (${sql.acknowledgedFound} acknowledged found, ${sql.committedUnacknowledged} committed without an answer); partial rows: ${sql.withoutProvenance} without provenance, ${sql.withoutAuditEvent} without audit event, orphans: ${sql.orphanProvenance} provenance, ${sql.orphanEvidence} evidence, ${sql.orphanAuditEvents} audit events`,
    );
    const audit = auditVerify(opts.root, opts.code, databaseUrl);
    log(`audit verify: exit ${audit.status}: ${audit.output}`);
    return { sent: s.sent, acknowledged: acked.length, unanswered, otherStatuses, killedPids: killed, restartMs, verifiedOverHttp: http.verified, problems: http.problems, sql, auditVerify: audit, writesAfterRestart };
  });
}

/** The verdict: empty when the drill passed. */
export function crashFailures(r: CrashDrillResult): string[] {
  const f: string[] = [];
  if (r.acknowledged === 0) f.push('no diagnosis was acknowledged before the kill');
  if (r.killedPids.length < 2) f.push('the kill did not reach the primary and its workers');
  if (r.verifiedOverHttp !== r.acknowledged) f.push(`${r.acknowledged - r.verifiedOverHttp} acknowledged diagnoses not read back complete: ${r.problems.join('; ')}`);
  if (r.sql.acknowledgedFound !== r.acknowledged) f.push(`${r.acknowledged - r.sql.acknowledgedFound} acknowledged diagnoses missing from the database`);
  for (const k of ['withoutProvenance', 'withoutAuditEvent', 'orphanProvenance', 'orphanEvidence', 'orphanAuditEvents'] as const) if (r.sql[k] !== 0) f.push(`${r.sql[k]} rows: ${k}`);
  if (Object.keys(r.otherStatuses).length > 0) f.push(`answers other than 201 before the kill: ${JSON.stringify(r.otherStatuses)}`);
  if (r.auditVerify.status !== 0) f.push(`audit verify failed: ${r.auditVerify.output}`);
  if (!r.writesAfterRestart) f.push('the restarted service did not take a new diagnosis');
  return f;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { rate: { type: 'string', default: '100' }, before: { type: 'string', default: '8' }, workers: { type: 'string', default: '2' } } });
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const r = await runCrashDrill({
    root,
    code: 'dist',
    pgAdminUrl: process.env.AGENTICPET_DRILL_PG_URL ?? DEFAULT_PG_ADMIN_URL,
    workers: Number(values.workers),
    ratePerSecond: Number(values.rate),
    beforeKillSeconds: Number(values.before),
    log: (line) => console.log(line),
  });
  const failures = crashFailures(r);
  console.log(failures.length === 0 ? 'drill:crash PASSED: nothing acknowledged lost, no partial rows, audit trail intact' : `drill:crash FAILED:\n  ${failures.join('\n  ')}`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}
