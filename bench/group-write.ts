/**
 * The diagnosis write under group commit, two ways, on a schema shaped like the service's
 * (row-level security on clinic_id, the foreign keys to clinics and to the audit chain, the
 * audit indexes, lz4 on the report): a batch of --batch diagnoses in one transaction, each unit
 * under its own savepoint and tenant scope with one three-table statement (what the service does
 * today), against the same diagnoses written as one multi-row statement per batch (one scope,
 * the audit chain head upserted once). Prints, per diagnosis, this process's CPU and the host's
 * PostgreSQL CPU.
 *
 *   npx tsx bench/group-write.ts [--diagnoses 15000] [--batch 3] [--concurrency 3] [--rounds 2] [--pg-url URL]
 *
 * A figure, not a test. The local server only; a database of its own, dropped at the end.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import { diagnosisReport, diagnosisReportJson } from '../src/clinical/diagnoses/diagnosis-report.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { caseFromRequest, loadVignettes } from '../test/vignettes/evaluate.js';
import { DEFAULT_PG_ADMIN_URL } from './lib/service.js';
import { serverCpuSeconds } from './lib/server-cpu.js';

const { values } = parseArgs({
  options: {
    diagnoses: { type: 'string', default: '15000' },
    batch: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    'report-type': { type: 'string', default: 'json' },
    'pg-url': { type: 'string', default: DEFAULT_PG_ADMIN_URL },
  },
});
const total = Number(values.diagnoses);
const batch = Number(values.batch);

const kb = loadKnowledgeBase(undefined);
const registry = new AgentRegistry(kb, null, { default: 250, narrative: 250 }).warm();
const reports: Array<{ input: string; report: string; chain: string }> = [];
for (const v of loadVignettes()) {
  const input = caseFromRequest(kb, v.request);
  const result = await orchestrate(registry, input);
  const report = diagnosisReport({ id: randomUUID(), createdAt: new Date().toISOString(), requestId: 'bench', patientId: null, encounterId: null, sessionId: 'cs_bench', input, result, kbVersion: kb.version, sessionStore: 'redis' });
  reports.push({ input: JSON.stringify(input), report: diagnosisReportJson(report, result), chain: JSON.stringify(result.steps.map((s) => ({ seq: s.seq, agent: s.agent, inputDigest: s.inputDigest, status: s.status }))) });
}

const SCHEMA = `
CREATE ROLE gw_app NOLOGIN;
CREATE FUNCTION cur_clinic() RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('app.clinic_id', true), '')::uuid $$;
CREATE TABLE clinics (id uuid PRIMARY KEY);
CREATE TABLE d (clinic_id uuid NOT NULL REFERENCES clinics (id), id uuid NOT NULL, patient_id uuid, encounter_id uuid, consultation_id text, species text NOT NULL, triage_level text NOT NULL, top_condition text, kb_version text NOT NULL, input ${values['report-type']} NOT NULL, report ${values['report-type']} NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (clinic_id, id));
CREATE INDEX d_by_patient ON d (clinic_id, patient_id, id) WHERE patient_id IS NOT NULL;
CREATE TABLE p (clinic_id uuid NOT NULL, diagnosis_id uuid NOT NULL, agents json, kb_version text, chain_digest text, chain json, request_id text, session_id text, recorded_at timestamptz, evidence json, PRIMARY KEY (clinic_id, diagnosis_id), FOREIGN KEY (clinic_id, diagnosis_id) REFERENCES d (clinic_id, id) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE chains (chain_id uuid PRIMARY KEY, writer text NOT NULL, started_at timestamptz NOT NULL, head_seq bigint NOT NULL, head_hash text NOT NULL);
CREATE TABLE a (chain_id uuid NOT NULL REFERENCES chains (chain_id), seq bigint NOT NULL, id uuid NOT NULL UNIQUE, occurred_at timestamptz NOT NULL, clinic_id uuid NOT NULL, principal_id uuid, role text, action text NOT NULL, entity_type text NOT NULL, entity_id uuid, outcome text NOT NULL, request_id text, source_ip text, detail jsonb, prev_hash text NOT NULL, hash text NOT NULL, PRIMARY KEY (chain_id, seq));
CREATE INDEX a_by_entity ON a (clinic_id, entity_type, entity_id, occurred_at);
CREATE INDEX a_by_time ON a (clinic_id, occurred_at);
DO $$ BEGIN ALTER TABLE d ALTER COLUMN report SET COMPRESSION lz4, ALTER COLUMN input SET COMPRESSION lz4; EXCEPTION WHEN feature_not_supported THEN NULL; END $$;
ALTER TABLE d ENABLE ROW LEVEL SECURITY; CREATE POLICY d_t ON d USING (clinic_id = cur_clinic()) WITH CHECK (clinic_id = cur_clinic());
ALTER TABLE p ENABLE ROW LEVEL SECURITY; CREATE POLICY p_t ON p USING (clinic_id = cur_clinic()) WITH CHECK (clinic_id = cur_clinic());
ALTER TABLE a ENABLE ROW LEVEL SECURITY; CREATE POLICY a_t ON a USING (clinic_id = cur_clinic()) WITH CHECK (clinic_id = cur_clinic());
GRANT SELECT, INSERT ON d, p, a, clinics TO gw_app; GRANT SELECT, INSERT, UPDATE ON chains TO gw_app;`;

const clinicId = randomUUID();
const SCOPE = `SELECT set_config('role', 'gw_app', true), set_config('app.clinic_id', '${clinicId}', true)`;
const D_COLS = 12;
const P_COLS = 8; // besides clinic_id, diagnosis_id
const A_COLS = 14; // besides clinic_id and entity_id (the diagnosis)

/** One unit's values: diagnosis row, provenance row, audit event row. */
function unit(i: number, chainId: string, seq: number) {
  const r = reports[i % reports.length]!;
  const id = randomUUID();
  const now = new Date();
  return {
    d: [clinicId, id, null, null, 'cs_bench', 'dog', 'urgent', 'gastroenteritis_acute', kb.version, r.input, r.report, now],
    p: ['{"intake":"1.0.0","labs":"1.0.0"}', kb.version, 'f'.repeat(64), r.chain, 'req-bench', 'cs_bench', now, '[]'],
    a: [chainId, seq, randomUUID(), now, randomUUID(), 'vet', 'create', 'diagnosis', 'success', 'req-bench', '127.0.0.1', '{"patientId":null}', 'a'.repeat(64), 'b'.repeat(64)],
  };
}

const ONE = `WITH report AS (
  INSERT INTO d (clinic_id, id, patient_id, encounter_id, consultation_id, species, triage_level, top_condition, kb_version, input, report, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
), provenance AS (
  INSERT INTO p (clinic_id, diagnosis_id, agents, kb_version, chain_digest, chain, request_id, session_id, recorded_at, evidence)
  VALUES ($1, $2, $13, $14, $15, $16, $17, $18, $19, $20)
), chain AS (
  INSERT INTO chains (chain_id, writer, started_at, head_seq, head_hash) VALUES ($21, 'bench', $24, $22, $34)
  ON CONFLICT (chain_id) DO UPDATE SET head_seq = EXCLUDED.head_seq, head_hash = EXCLUDED.head_hash RETURNING chain_id
)
INSERT INTO a (chain_id, seq, id, occurred_at, clinic_id, principal_id, role, action, entity_type, entity_id, outcome, request_id, source_ip, detail, prev_hash, hash)
SELECT chain_id, $22, $23, $24, $1, $25, $26, $27, $28, $2, $29, $30, $31, $32, $33, $34 FROM chain`;

/** The batch of n as one statement: n rows per table, the chain head upserted once (to the last event). */
function many(n: number): string {
  let k = 0;
  const rows = (count: number, lead: string[] = []) => `(${[...lead, ...Array.from({ length: count }, () => `$${++k}`)].join(', ')})`;
  const dRows: string[] = [];
  const pRows: string[] = [];
  const aRows: string[] = [];
  for (let u = 0; u < n; u++) {
    const base = k;
    dRows.push(rows(D_COLS));
    pRows.push(rows(P_COLS, [`$${base + 1}::uuid`, `$${base + 2}::uuid`]));
    const a = Array.from({ length: A_COLS }, () => `$${++k}`);
    aRows.push(`(${[a[0], a[1], a[2], a[3], `$${base + 1}::uuid`, a[4], a[5], a[6], a[7], `$${base + 2}::uuid`, ...a.slice(8)].join(', ')})`);
  }
  const last = k - A_COLS;
  return `WITH report AS (
  INSERT INTO d (clinic_id, id, patient_id, encounter_id, consultation_id, species, triage_level, top_condition, kb_version, input, report, created_at) VALUES ${dRows.join(', ')}
), provenance AS (
  INSERT INTO p (clinic_id, diagnosis_id, agents, kb_version, chain_digest, chain, request_id, session_id, recorded_at, evidence) VALUES ${pRows.join(', ')}
), chain AS (
  INSERT INTO chains (chain_id, writer, started_at, head_seq, head_hash) VALUES ($${last + 1}, 'bench', $${last + 4}, $${last + 2}, $${last + 14})
  ON CONFLICT (chain_id) DO UPDATE SET head_seq = EXCLUDED.head_seq, head_hash = EXCLUDED.head_hash
)
INSERT INTO a (chain_id, seq, id, occurred_at, clinic_id, principal_id, role, action, entity_type, entity_id, outcome, request_id, source_ip, detail, prev_hash, hash)
VALUES ${aRows.join(', ')}`;
}

interface Corkable {
  connection: { stream: { cork(): void; uncork(): void } };
}

async function run(kind: 'savepoints' | 'multi-row', pool: pg.Pool, next: { i: number }): Promise<void> {
  const client = await pool.connect();
  const chainId = randomUUID();
  let seq = 0;
  try {
    while (next.i < total) {
      const first = next.i;
      next.i += batch;
      const units = Array.from({ length: batch }, (_, u) => unit(first + u, chainId, ++seq));
      const { stream } = (client as unknown as Corkable).connection;
      if (kind === 'savepoints') {
        stream.cork();
        const waits = [client.query('BEGIN')];
        for (const [u, x] of units.entries()) {
          waits.push(client.query('SAVEPOINT unit'), client.query(SCOPE), client.query({ name: 'one', text: ONE, values: [...x.d, ...x.p, ...x.a] }));
          if (u < units.length - 1) waits.push(client.query('RELEASE SAVEPOINT unit'));
        }
        stream.uncork();
        await Promise.all(waits);
      } else {
        stream.cork();
        const begin = client.query('BEGIN');
        const scope = client.query(SCOPE);
        const write = client.query({ name: `many${batch}`, text: many(batch), values: units.flatMap((x) => [...x.d, ...x.p, ...x.a]) });
        stream.uncork();
        await Promise.all([begin, scope, write]);
      }
      await client.query('COMMIT');
    }
  } finally {
    client.release();
  }
}

const admin = new pg.Client({ connectionString: values['pg-url'] });
await admin.connect();
const dbName = `agenticpet_groupwrite_${Date.now()}`;
await admin.query(`CREATE DATABASE ${dbName}`);
const url = Object.assign(new URL(values['pg-url']!), { pathname: `/${dbName}` }).toString();
try {
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query('DROP ROLE IF EXISTS gw_app').catch(() => undefined);
  await setup.query(SCHEMA);
  await setup.query('INSERT INTO clinics VALUES ($1)', [clinicId]);
  await setup.end();
  console.log(`${total} diagnoses per run in batches of ${batch}, ${values.concurrency} connections, ${reports.length} distinct reports`);
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const kind of ['savepoints', 'multi-row'] as const) {
      const pool = new pg.Pool({ connectionString: url, max: Number(values.concurrency), pipeline: true } as pg.PoolConfig);
      pool.on('error', () => undefined);
      const warm = { i: total - 1500 };
      await Promise.all(Array.from({ length: Number(values.concurrency) }, () => run(kind, pool, warm)));
      const s0 = serverCpuSeconds();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const next = { i: 0 };
      await Promise.all(Array.from({ length: Number(values.concurrency) }, () => run(kind, pool, next)));
      const wall = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(c0);
      const s1 = serverCpuSeconds();
      await pool.end();
      const pgCpu = s0 && s1 ? `PostgreSQL ${(((s1.postgres - s0.postgres) * 1e6) / total).toFixed(0)} µs` : '';
      console.log(`round ${round}  ${kind.padEnd(11)} ${(total / wall).toFixed(0).padStart(6)} diagnoses/s  client CPU ${((cpu.user + cpu.system) / total).toFixed(0)} µs  ${pgCpu} per diagnosis`);
    }
  }
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.query('DROP ROLE IF EXISTS gw_app').catch(() => undefined);
  await admin.end();
}
