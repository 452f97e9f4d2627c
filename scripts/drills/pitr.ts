/**
 * npm run drill:pitr: point-in-time recovery with pgBackRest, measured (issue 11 §2).
 *
 *   npm run drill:pitr -- [--set-a 500] [--set-b 500] [--archive-timeout 10] [--timeout 300]
 *                         [--ports 15500-15549] [--entry dist|source] [--json FILE]
 *
 * Builds a PostgreSQL cluster of its own under a temp dir, archives its WAL with pgBackRest,
 * takes a full backup, writes set A through the API, notes the time, writes set B, restores to
 * the noted time into a fresh data dir and checks, id by id, that exactly set A is there; then
 * runs `agenticpet audit verify` against the restored database. Exit 0 only if all of it holds.
 * Run as root it runs PostgreSQL and pgBackRest as the postgres user.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { clusterUnavailable, which } from './pitr/cluster.js';
import { runPitrDrill, type PitrResult } from './pitr/drill.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function wholeNumber(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new Error(`--${name} takes a whole number from ${min} to ${max}`);
  return Number(value);
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function formatFigures(r: PitrResult): string {
  const rows: Array<[string, string]> = [
    ['versions', `${r.pgbackrestVersion}, PostgreSQL ${r.pgVersion}`],
    ['base backup (full)', `${s(r.backup.ms)}; database ${mb(r.backup.databaseBytes)}, in repository ${mb(r.backup.repoBytes)} (lz4)`],
    ['WAL archived', `${mb(r.archiveBytes)} in the repository (lz4)`],
    ['target time', r.target],
    ['RPO (WAL lag bound)', `archive_timeout = ${r.rpo.archiveTimeoutS} s; measured: the target's WAL segment ${r.rpo.walFile} was archived ${s(r.rpo.lagMs)} after it`],
    ['RTO (this path)', `${s(r.restore.totalMs)} = pgbackrest restore ${s(r.restore.restoreMs)} + start ${s(r.restore.startMs)} + replay to target and promote ${s(r.restore.promoteMs)}`],
    ['recovery stopped', r.restore.stopLine ?? '(no "recovery stopping" line in the server log)'],
    ['restored cluster', `promoted onto a new timeline and archiving into the same stanza (first file: ${r.restore.archivedFirst})`],
    ['set A (before target)', `${r.setA.written} written, ${r.setA.found} found, ${r.setA.missing.length} missing, ${r.setA.incomplete.length} incomplete (report bytes, ${r.setA.evidenceRows} compact evidence links, provenance chain digest and audit event compared with the original, id by id)`],
    ['set B (after target)', `${r.setB.written} written, ${r.setB.found.length} found, ${r.setB.written - r.setB.found.length} missing, ${r.setB.partial.length} with partial rows`],
    ['other diagnoses', String(r.otherDiagnoses)],
    ['audit verify', `${r.audit.ok ? 'passed' : 'FAILED'}: ${r.audit.output.split('\n').join(' / ')}`],
    ['drill total', s(r.totalMs)],
    ['verdict', r.ok ? 'PASS: exactly set A restored' : 'FAIL'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const detail = [
    ...r.setA.missing.slice(0, 10).map((id) => `  missing from A: ${id}`),
    ...r.setA.incomplete.slice(0, 10).map((id) => `  incomplete in A: ${id}`),
    ...r.setB.found.slice(0, 10).map((id) => `  present from B: ${id}`),
    ...r.setB.partial.slice(0, 10).map((id) => `  partial rows of B: ${id}`),
  ];
  return ['Point-in-time recovery drill (pgBackRest)', ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`), ...detail].join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'set-a': { type: 'string' },
      'set-b': { type: 'string' },
      'archive-timeout': { type: 'string' },
      timeout: { type: 'string' },
      ports: { type: 'string' },
      entry: { type: 'string' },
      json: { type: 'string' },
    },
    strict: true,
  });
  const ports = (values.ports ?? '15500-15549').match(/^(\d+)-(\d+)$/);
  if (ports === null || Number(ports[1]) > Number(ports[2]) || Number(ports[2]) > 65535) throw new Error('--ports takes FROM-TO, e.g. 15500-15549');
  if (values.entry !== undefined && values.entry !== 'dist' && values.entry !== 'source') throw new Error('--entry is dist or source');
  const entry = values.entry ?? 'dist';
  if (entry === 'dist' && !fs.existsSync(path.join(root, 'dist/cli.js'))) throw new Error('dist/cli.js is missing: npm run build (npm run drill:pitr builds first)');
  const missing = which('pgbackrest') === undefined ? 'pgbackrest is not installed (apt-get install pgbackrest)' : clusterUnavailable();
  if (missing !== null) throw new Error(missing);

  const controller = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => controller.abort());
  const result = await runPitrDrill({
    root,
    entry,
    setA: wholeNumber('set-a', values['set-a'], 500, 1, 100_000),
    setB: wholeNumber('set-b', values['set-b'], 500, 1, 100_000),
    archiveTimeoutS: wholeNumber('archive-timeout', values['archive-timeout'], 10, 1, 3600),
    ports: [Number(ports[1]), Number(ports[2])],
    timeoutMs: wholeNumber('timeout', values.timeout, 300, 10, 3600) * 1000,
    log: (line) => console.error(`[pitr] ${line}`),
    signal: controller.signal,
  });
  console.log(formatFigures(result));
  if (values.json !== undefined) fs.writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  return result.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`drill:pitr failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
