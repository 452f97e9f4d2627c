#!/usr/bin/env node
/**
 * npm test: probes the servers the suites need, runs every test/**\/*.test.ts with node's test
 * runner, and ends by saying plainly which suites were skipped and why. With
 * AGENTICPET_REQUIRE_SERVICES=1 (set by .ci/run) a missing server fails the run instead.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = process.env.AGENTICPET_REQUIRE_SERVICES === '1';
const pgUrl = process.env.AGENTICPET_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function probePostgres() {
  const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    const { rows } = await client.query('SELECT rolcreatedb OR rolsuper AS ok FROM pg_roles WHERE rolname = current_user');
    if (!rows[0]?.ok) return `the role at ${pgUrl} cannot create databases`;
    return null;
  } catch (err) {
    return `PostgreSQL is not reachable at ${pgUrl} (${err.code ?? err.message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function findTests(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? findTests(path.join(dir, e.name)) : e.name.endsWith('.test.ts') ? [path.join(dir, e.name)] : []))
    .sort();
}

const pgProblem = await probePostgres();
if (pgProblem !== null && require) {
  console.error(`AGENTICPET_REQUIRE_SERVICES=1 but ${pgProblem}.`);
  process.exit(1);
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : findTests(path.join(root, 'test'));
const tapFile = path.join(os.tmpdir(), `agenticpet-tap-${process.pid}.txt`);
const env = { ...process.env, AGENTICPET_TEST_PG: pgProblem === null ? pgUrl : `skip:${pgProblem}` };

const code = await new Promise((resolve) => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tapFile}`, ...files],
    { cwd: root, env, stdio: 'inherit' },
  );
  child.on('close', (c) => resolve(c ?? 1));
});

const tap = fs.existsSync(tapFile) ? fs.readFileSync(tapFile, 'utf8') : '';
fs.rmSync(tapFile, { force: true });
const count = (name) => Number((tap.match(new RegExp(`^# ${name} (\\d+)$`, 'm')) ?? [])[1] ?? 0);
const skippedSuites = [...tap.matchAll(/^\s*(?:ok|not ok) \d+ - (.+?) # SKIP (.*)$/gm)].map((m) => `  - ${m[1]}: ${m[2] || 'skipped'}`);

console.log('');
if (skippedSuites.length > 0) {
  console.log(`Skipped ${skippedSuites.length} suite(s) or test(s):`);
  console.log([...new Set(skippedSuites)].join('\n'));
  if (pgProblem !== null) console.log('Start PostgreSQL (see README) to run them; AGENTICPET_REQUIRE_SERVICES=1 makes a missing server fail the run.');
} else {
  console.log('No suites skipped: PostgreSQL and the embedded store were both tested.');
}
console.log(`tests: ${count('pass')} passed, ${count('fail')} failed, ${new Set(skippedSuites).size} skipped`);
process.exit(code);
