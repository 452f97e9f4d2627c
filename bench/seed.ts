/**
 * npx tsx bench/seed.ts --database-url postgresql://127.0.0.1:5432/agenticpet_seed --clinics 1000 --diagnoses 1000000 [--drop]
 *
 * Fills a PostgreSQL database with realistic volume for benchmarks: clinics with an admin and a
 * vet API key, owners and patients with their version history and weights, diagnoses with
 * their evidence links (stored as the service stores them: in the report, and the rest compact in
 * the provenance row) and provenance, and a valid hash-chained audit trail (`agenticpet audit verify`
 * passes). The schema is the service's own (its migrations). The diagnoses are real: the
 * vignettes, in seeded variants, run through the real agents, then replicated with fresh UUIDv7
 * ids spread over the past --days, patients and clinics. Loaded with COPY in batches, streamed.
 *
 * Prints progress and, at the end, rows and size per table, the database size, the elapsed
 * time and clinic #1's admin key; writes bench/results/seed-<db>.json and, with every clinic's
 * keys, bench/results/seed-<db>-keys.json (mode 0600).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { AuditTrail } from './lib/seed-audit.js';
import { reniceBackend, TableSink } from './lib/seed-copy.js';
import { prng } from './lib/seed-data.js';
import { withDefaultUser, databaseName, databaseSize, dropForeignKeys, foreignKeys, gib, migrateDatabase, prepareDatabase, restoreForeignKeys, tableSizes } from './lib/seed-db.js';
import { World, type Sinks } from './lib/seed-generate.js';
import { buildTemplates } from './lib/seed-templates.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    'database-url': { type: 'string', default: 'postgresql://127.0.0.1:5432/agenticpet_seed' },
    clinics: { type: 'string', default: '1000' },
    diagnoses: { type: 'string', default: '1000000' },
    'patients-per-clinic': { type: 'string', default: '300' },
    'variants-per-vignette': { type: 'string', default: '6' },
    days: { type: 'string', default: '730' },
    batch: { type: 'string', default: '5000' },
    seed: { type: 'string', default: '42' },
    'max-gb': { type: 'string', default: '40' },
    'backend-nice': { type: 'string', default: '10' },
    drop: { type: 'boolean', default: false },
    'no-vacuum': { type: 'boolean', default: false },
  },
});
const url = withDefaultUser(args['database-url']!);
const dbName = databaseName(url);
const nClinics = Number(args.clinics);
const nDiagnoses = Number(args.diagnoses);
const patientsPerClinic = Number(args['patients-per-clinic']);
const batch = Number(args.batch);
const maxBytes = Number(args['max-gb']) * 1024 ** 3;
const backendNice = Number(args['backend-nice']);
for (const [name, v] of [['clinics', nClinics], ['diagnoses', nDiagnoses], ['batch', batch]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive whole number`);
}

const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const log = (s: string) => console.log(`[${elapsed().toFixed(0).padStart(5)} s] ${s}`);
const fmtDuration = (s: number) => (s < 120 ? `${s.toFixed(0)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);

const disk = fs.statfsSync(root);
log(`disk free ${gib(disk.bavail * disk.bsize)}; seeding ${dbName}: ${nClinics} clinics, ${nDiagnoses} diagnoses`);

const prepared = await prepareDatabase(url, args.drop!);
const applied = await migrateDatabase(url);
log(`database ${prepared.created ? 'created' : 'exists'}; migrations applied: ${applied.length > 0 ? applied.join(', ') : 'none (already current)'}`);

const control = new pg.Client({ connectionString: url });
await control.connect();
const [{ n: existing }] = (await control.query<{ n: number }>('SELECT count(*)::int AS n FROM clinics')).rows as [{ n: number }];
if (existing > 0) {
  await control.end();
  throw new Error(`${dbName} already holds ${existing} clinic(s); use --drop to start afresh`);
}

const rng = prng(Number(args.seed));
const kb = loadKnowledgeBase();
const templates = await buildTemplates(kb, Number(args['variants-per-vignette']), rng);
const evidencePerTemplate = templates.templates.reduce((n, t) => n + t.evidenceCount, 0) / templates.templates.length;
log(
  `${templates.templates.length} real diagnoses from ${templates.vignettes} vignettes (${args['variants-per-vignette']} variants each), ` +
    `${evidencePerTemplate.toFixed(1)} evidence links each on average (stored in the report and, compact, beside it), agents ${templates.agentCpuMsPerDiagnosis.toFixed(2)} ms CPU per diagnosis`,
);

// Foreign keys are checked row by row during COPY; set aside, then re-added (and so validated) at the end.
const fks = await foreignKeys(control);
await dropForeignKeys(control, fks);
log(`${fks.length} foreign keys set aside for the load (restored and validated at the end)`);

const COLUMNS: Record<keyof Sinks, string[]> = {
  clinics: ['id', 'name', 'created_at'],
  api_keys: ['clinic_id', 'id', 'name', 'role', 'key_hash', 'key_prefix', 'created_at', 'created_by', 'revoked_at'],
  owners: ['clinic_id', 'id', 'version', 'deleted', 'name', 'content', 'created_at', 'updated_at'],
  patients: ['clinic_id', 'id', 'version', 'deleted', 'owner_id', 'name', 'species', 'content', 'created_at', 'updated_at'],
  patient_weights: ['clinic_id', 'patient_id', 'id', 'weight_kg', 'recorded_at'],
  record_versions: ['clinic_id', 'resource_type', 'id', 'version', 'deleted', 'content', 'recorded_at', 'recorded_by', 'request_id'],
  diagnoses: ['clinic_id', 'id', 'patient_id', 'encounter_id', 'consultation_id', 'species', 'triage_level', 'top_condition', 'kb_version', 'input', 'report', 'created_at'],
  diagnosis_evidence: ['clinic_id', 'diagnosis_id', 'seq', 'conclusion_type', 'conclusion_code', 'evidence_kind', 'evidence_ref', 'finding', 'detail', 'weight'],
  diagnosis_provenance: ['clinic_id', 'diagnosis_id', 'agents', 'kb_version', 'chain_digest', 'chain', 'request_id', 'session_id', 'recorded_at', 'evidence'],
  audit_chains: ['chain_id', 'writer', 'started_at', 'head_seq', 'head_hash'],
  audit_events: ['chain_id', 'seq', 'id', 'occurred_at', 'clinic_id', 'principal_id', 'role', 'action', 'entity_type', 'entity_id', 'outcome', 'request_id', 'source_ip', 'detail', 'prev_hash', 'hash'],
};
const clients: pg.Client[] = [];
const sinks = {} as Sinks;
let reniced = 0;
for (const table of Object.keys(COLUMNS) as Array<keyof Sinks>) {
  const client = new pg.Client({ connectionString: url, application_name: `agenticpet-seed:${table}` });
  await client.connect();
  if (backendNice > 0 && (await reniceBackend(client, backendNice))) reniced++;
  clients.push(client);
  sinks[table] = new TableSink(table, COLUMNS[table], client);
}
if (backendNice > 0) log(`${reniced} of ${clients.length} COPY server processes reniced to +${backendNice}`);
const allSinks = Object.values(sinks);
const flushFull = async () => {
  for (const s of allSinks) if (s.full) await s.flush();
};
const endBatch = () => Promise.all(allSinks.map((s) => s.endBatch()));

const endMs = Date.now() - 3_600_000;
const spanMs = Number(args.days) * 86_400_000;
const startMs = endMs - spanMs;
const gapMs = spanMs / nDiagnoses;
const audit = new AuditTrail(sinks.audit_events, sinks.audit_chains, rng, { epochMs: 86_400_000, tasks: 3, connections: 4 });
// A new patient per diagnosis at the rate that gives about --patients-per-clinic in the end.
const world = new World(sinks, audit, templates, rng, { newPatientProbability: Math.min(1, (nClinics * patientsPerClinic) / nDiagnoses), newOwnerProbability: 0.6 });

world.openClinics(nClinics, startMs, 30 * 86_400_000);
await flushFull();
await endBatch();
log(`${nClinics} clinics opened`);

const sizeAtStart = await databaseSize(control);
let lastReport = performance.now();
let checkedProjection = false;
const loadStarted = performance.now();
for (let i = 0; i < nDiagnoses; i++) {
  world.diagnose(startMs + i * gapMs, gapMs);
  await flushFull();
  if ((i + 1) % batch === 0 || i + 1 === nDiagnoses) {
    await endBatch();
    const now = performance.now();
    const done = i + 1;
    if (now - lastReport > 15_000 || done === nDiagnoses || (!checkedProjection && done >= nDiagnoses * 0.03 && done >= 3 * batch)) {
      lastReport = now;
      const rate = done / ((now - loadStarted) / 1000);
      const size = await databaseSize(control);
      const projected = sizeAtStart + ((size - sizeAtStart) / done) * nDiagnoses;
      log(
        `diagnoses ${done}/${nDiagnoses} (${((100 * done) / nDiagnoses).toFixed(1)} %), ${rate.toFixed(0)}/s, ETA ${fmtDuration((nDiagnoses - done) / rate)}; ` +
          `db ${gib(size)}, projected ${gib(projected)} before foreign keys and vacuum; audit events ${audit.events}`,
      );
      if (!checkedProjection && done >= nDiagnoses * 0.03 && done >= 3 * batch) {
        checkedProjection = true;
        if (projected > maxBytes) {
          log(`STOP: the projected size ${gib(projected)} exceeds --max-gb ${args['max-gb']}; the database is incomplete (rerun with --drop and fewer rows)`);
          process.exit(2);
        }
      }
    }
  }
}
world.drain(endMs);
audit.finish();
world.writePatients();
await flushFull();
await endBatch();
const loadSeconds = (performance.now() - loadStarted) / 1000;
log(`load done in ${fmtDuration(loadSeconds)}: ${world.diagnoses} diagnoses, ${world.evidenceLinks} evidence links, ${world.patientCount} patients, ${world.ownerCount} owners, ${audit.events} audit events in ${audit.chainsWritten} chains`);
await Promise.all(clients.map((c) => c.end()));

const fkStarted = performance.now();
await restoreForeignKeys(control, fks, log);
const fkSeconds = (performance.now() - fkStarted) / 1000;
log(`foreign keys restored in ${fmtDuration(fkSeconds)}`);
let vacuumSeconds = 0;
if (!args['no-vacuum']) {
  const t0 = performance.now();
  // Sets hint bits and the visibility map and gathers statistics, as autovacuum would in time.
  await control.query('VACUUM (ANALYZE)');
  vacuumSeconds = (performance.now() - t0) / 1000;
  log(`VACUUM (ANALYZE) in ${fmtDuration(vacuumSeconds)}`);
}

const sizes = await tableSizes(control, false);
// Rows exactly as written by COPY, per table.
for (const [table, sink] of Object.entries(sinks)) sizes[table]!.rows = sink.rows;
const dbBytes = await databaseSize(control);
await control.end();
const elapsedSeconds = Math.round(elapsed());

console.log('');
console.log('table                  rows         heap       toast      indexes    total');
for (const [table, s] of Object.entries(sizes)) {
  console.log(`${table.padEnd(22)} ${String(s.rows).padStart(11)}  ${gib(s.tableBytes).padStart(10)} ${gib(s.toastBytes).padStart(10)} ${gib(s.indexBytes).padStart(10)} ${gib(s.totalBytes).padStart(10)}`);
}
console.log(`database ${dbName}: ${gib(dbBytes)} (${dbBytes} bytes)`);
console.log(`elapsed ${fmtDuration(elapsedSeconds)} (load ${fmtDuration(loadSeconds)}, foreign keys ${fmtDuration(fkSeconds)}, vacuum ${fmtDuration(vacuumSeconds)})`);
console.log(`audit events by action: ${[...audit.byAction].map(([k, v]) => `${k} ${v}`).join(', ')}`);
const first = world.keys[0]!;
console.log(`clinic #1 ${first.clinicId} admin key: ${first.adminKey}`);

const resultsDir = path.join(root, 'bench/results');
fs.mkdirSync(resultsDir, { recursive: true });
const keysFile = path.join(resultsDir, `seed-${dbName}-keys.json`);
fs.writeFileSync(keysFile, JSON.stringify(world.keys, null, 1), { mode: 0o600 });
fs.chmodSync(keysFile, 0o600);
const result = {
  databaseUrl: url,
  clinics: nClinics,
  diagnoses: world.diagnoses,
  adminKey: first.adminKey,
  clinicId: first.clinicId,
  keysFile: path.relative(root, keysFile),
  sizes: { databaseBytes: dbBytes, tables: sizes },
  elapsedSeconds,
  phases: { loadSeconds: Math.round(loadSeconds), foreignKeySeconds: Math.round(fkSeconds), vacuumSeconds: Math.round(vacuumSeconds) },
  shape: {
    templates: templates.templates.length,
    vignettes: templates.vignettes,
    evidencePerDiagnosis: world.evidenceLinks / world.diagnoses,
    patients: world.patientCount,
    owners: world.ownerCount,
    auditEvents: audit.events,
    auditChains: audit.chainsWritten,
    auditByAction: Object.fromEntries(audit.byAction),
    from: new Date(startMs).toISOString(),
    to: new Date(endMs).toISOString(),
    seed: Number(args.seed),
  },
  kbVersion: kb.version,
  at: new Date().toISOString(),
};
const resultFile = path.join(resultsDir, `seed-${dbName}.json`);
fs.writeFileSync(resultFile, `${JSON.stringify(result, null, 2)}\n`);
console.log(`wrote ${path.relative(root, resultFile)} and ${path.relative(root, keysFile)}`);
