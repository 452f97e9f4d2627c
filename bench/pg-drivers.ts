/**
 * pg against postgres.js for the diagnosis write: the same statement shape (a report, its
 * provenance and an audit event in one three-table CTE, 36 parameters, the report ~9 KB of JSON
 * from the real agents), in BEGIN ... COMMIT, through each driver as the service would use it:
 * prepared statements, a small pool, many transactions in flight, the BEGIN sent in the same
 * write as the statement (pg: pipeline mode and a corked socket, as src/storage/sql/postgres.ts
 * does; postgres.js: `sql.begin` with the statement returned unawaited, which it pipelines).
 * Prints, per transaction, this process's CPU (the driver's cost) and the host's PostgreSQL CPU.
 *
 *   npx tsx bench/pg-drivers.ts [--transactions 20000] [--concurrency 16] [--connections 3] [--rounds 2] [--drivers pg,postgres.js] [--pg-url URL]
 *
 * A figure, not a test. Loopback or the local socket only; a database of its own, dropped at the end.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import postgres from 'postgres';
import { AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import { diagnosisReport, diagnosisReportJson } from '../src/clinical/diagnoses/diagnosis-report.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { caseFromRequest, loadVignettes } from '../test/vignettes/evaluate.js';
import { DEFAULT_PG_ADMIN_URL } from './lib/service.js';
import { serverCpuSeconds } from './lib/server-cpu.js';

const { values } = parseArgs({
  options: {
    transactions: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '16' },
    connections: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    drivers: { type: 'string', default: 'pg,postgres.js' },
    'pg-url': { type: 'string', default: DEFAULT_PG_ADMIN_URL },
  },
});
const transactions = Number(values.transactions);
const concurrency = Number(values.concurrency);
const connections = Number(values.connections);

const kb = loadKnowledgeBase(undefined);
const registry = new AgentRegistry(kb, null, { default: 250, narrative: 250 }).warm();
const reports: Array<{ input: string; report: string; chain: string }> = [];
for (const v of loadVignettes()) {
  const input = caseFromRequest(kb, v.request);
  const result = await orchestrate(registry, input);
  const id = randomUUID();
  const report = diagnosisReport({ id, createdAt: new Date().toISOString(), requestId: 'bench', patientId: null, encounterId: null, sessionId: 'cs_bench', input, result, kbVersion: kb.version, sessionStore: 'redis' });
  reports.push({ input: JSON.stringify(input), report: diagnosisReportJson(report, result), chain: JSON.stringify(result.steps.map((s) => ({ seq: s.seq, agent: s.agent, inputDigest: s.inputDigest, status: s.status }))) });
}

const SCHEMA = `
CREATE TABLE d (clinic_id uuid, id uuid PRIMARY KEY, patient_id uuid, encounter_id uuid, consultation_id text, species text, triage_level text, top_condition text, kb_version text, input json, report json, created_at timestamptz);
CREATE TABLE p (clinic_id uuid, diagnosis_id uuid PRIMARY KEY, agents json, kb_version text, chain_digest text, chain json, request_id text, session_id text, recorded_at timestamptz, evidence json);
CREATE TABLE a (chain_id uuid, seq bigint, id uuid UNIQUE, occurred_at timestamptz, clinic_id uuid, principal_id uuid, role text, action text, entity_type text, entity_id uuid, outcome text, request_id text, source_ip text, detail jsonb, prev_hash text, hash text, PRIMARY KEY (chain_id, seq));
DO $$ BEGIN ALTER TABLE d ALTER COLUMN report SET COMPRESSION lz4; EXCEPTION WHEN feature_not_supported THEN NULL; END $$;`;

const STATEMENT = `WITH report AS (
  INSERT INTO d (clinic_id, id, patient_id, encounter_id, consultation_id, species, triage_level, top_condition, kb_version, input, report, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
), provenance AS (
  INSERT INTO p (clinic_id, diagnosis_id, agents, kb_version, chain_digest, chain, request_id, session_id, recorded_at, evidence)
  VALUES ($1, $2, $13, $14, $15, $16, $17, $18, $19, $20)
)
INSERT INTO a (chain_id, seq, id, occurred_at, clinic_id, principal_id, role, action, entity_type, entity_id, outcome, request_id, source_ip, detail, prev_hash, hash)
VALUES ($21, $22, $23, $24, $1, $25, $26, $27, $28, $2, $29, $30, $31, $32, $33, $34)`;

const clinicId = randomUUID();
const chainId = randomUUID();
let seq = 0;
function params(i: number): unknown[] {
  const r = reports[i % reports.length]!;
  const id = randomUUID();
  const now = new Date();
  return [
    clinicId, id, null, null, 'cs_bench', 'dog', 'urgent', 'gastroenteritis_acute', kb.version, r.input, r.report, now,
    '{"intake":"1.0.0","labs":"1.0.0"}', kb.version, 'f'.repeat(64), r.chain, 'req-bench', 'cs_bench', now, '[]',
    chainId, ++seq, randomUUID(), now, randomUUID(), 'vet', 'create', 'diagnosis', 'success', 'req-bench', '127.0.0.1', '{"patientId":null}', 'a'.repeat(64), 'b'.repeat(64),
  ];
}

/** Runs `n` transactions, `concurrency` at a time. */
async function drive(n: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await one(next++);
  }));
}

interface Corkable {
  connection: { stream: { cork(): void; uncork(): void } };
}

function pgDriver(url: string) {
  const pool = new pg.Pool({ connectionString: url, max: connections, pipeline: true } as pg.PoolConfig);
  // An idle client told to go when the database is dropped at the end.
  pool.on('error', () => undefined);
  return {
    name: 'pg 8 (pipeline mode, corked BEGIN)',
    one: async (i: number) => {
      const client = await pool.connect();
      try {
        const { stream } = (client as unknown as Corkable).connection;
        stream.cork();
        const begin = client.query('BEGIN');
        const write = client.query({ name: 'write', text: STATEMENT, values: params(i) });
        stream.uncork();
        await Promise.all([begin, write]);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    },
    end: () => pool.end(),
  };
}

function postgresJsDriver(url: string) {
  // postgres.js does not decode a percent-encoded socket directory in the URL's host: pass it.
  const host = decodeURIComponent(new URL(url).hostname);
  const sql = postgres(url, { max: connections, prepare: true, onnotice: () => undefined, ...(host.startsWith('/') ? { host } : {}) });
  return {
    name: 'postgres.js 3 (sql.begin, pipelined)',
    one: async (i: number) => {
      await sql.begin((tx) => [tx.unsafe(STATEMENT, params(i) as never[], { prepare: true })]);
    },
    end: () => sql.end(),
  };
}

const admin = new pg.Client({ connectionString: values['pg-url'] });
await admin.connect();
const dbName = `agenticpet_drivers_${Date.now()}`;
await admin.query(`CREATE DATABASE ${dbName}`);
const url = Object.assign(new URL(values['pg-url']!), { pathname: `/${dbName}` }).toString();
try {
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query(SCHEMA);
  await setup.end();
  console.log(`${transactions} transactions per run, ${concurrency} in flight, ${connections} connections, ${reports.length} distinct reports (mean ${Math.round(reports.reduce((s, r) => s + r.report.length, 0) / reports.length)} B)`);
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const make of values.drivers!.split(',').map((d) => ({ pg: pgDriver, 'postgres.js': postgresJsDriver })[d] ?? ((): never => { throw new Error(`--drivers: unknown driver ${d}`); })())) {
      const driver = make(url);
      await drive(Math.min(2000, transactions), driver.one); // warm-up: connections, prepared statements, JIT
      const s0 = serverCpuSeconds();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await drive(transactions, driver.one);
      const wall = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(c0);
      const s1 = serverCpuSeconds();
      await driver.end();
      const pgCpu = s0 && s1 ? `, PostgreSQL ${(((s1.postgres - s0.postgres) * 1e6) / transactions).toFixed(0)} µs` : '';
      console.log(`round ${round}  ${driver.name.padEnd(40)} ${(transactions / wall).toFixed(0).padStart(6)} tx/s  client CPU ${((cpu.user + cpu.system) / transactions).toFixed(0)} µs (user ${(cpu.user / transactions).toFixed(0)}, system ${(cpu.system / transactions).toFixed(0)})${pgCpu} per transaction`);
    }
  }
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
}
