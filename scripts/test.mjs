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
import { Redis } from 'ioredis';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = process.env.AGENTICPET_REQUIRE_SERVICES === '1';
const pgUrl = process.env.AGENTICPET_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.AGENTICPET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

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

async function probeRedis() {
  const client = new Redis(redisUrl, {
    lazyConnect: true,
    connectTimeout: 2000,
    commandTimeout: 2000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let cause;
  client.on('error', (err) => (cause = err));
  try {
    await client.connect();
    await client.ping();
    return null;
  } catch (err) {
    const e = cause ?? err;
    return `Redis is not reachable at ${redisUrl} (${e.code ?? e.message})`;
  } finally {
    client.disconnect();
  }
}

function findTests(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? findTests(path.join(dir, e.name)) : e.name.endsWith('.test.ts') ? [path.join(dir, e.name)] : []))
    .sort();
}

// infra/ has its own tsconfig (the root typecheck does not cover it); check it beside the probes.
function typecheckInfra() {
  return new Promise((resolve) => {
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const child = spawn(process.execPath, [tsc, '-p', path.join(root, 'infra', 'tsconfig.json'), '--noEmit'], { cwd: root, stdio: 'inherit' });
    child.on('close', (c) => resolve(c ?? 1));
  });
}

const [pgProblem, redisProblem, infraTypecheck] = await Promise.all([probePostgres(), probeRedis(), process.argv.length > 2 ? 0 : typecheckInfra()]);
if (infraTypecheck !== 0) {
  console.error('infra/ does not type-check (npx tsc -p infra/tsconfig.json --noEmit).');
  process.exit(1);
}
const problems = [pgProblem, redisProblem].filter((p) => p !== null);
if (problems.length > 0 && require) {
  for (const problem of problems) console.error(`AGENTICPET_REQUIRE_SERVICES=1 but ${problem}.`);
  process.exit(1);
}

const only = process.argv.slice(2);
// infra/ (the CDK app, an npm workspace) has its own suites; they need no servers.
const files = only.length > 0 ? only : [...findTests(path.join(root, 'test')), ...findTests(path.join(root, 'infra', 'test'))];
const tapFile = path.join(os.tmpdir(), `agenticpet-tap-${process.pid}.txt`);
const env = {
  ...process.env,
  AGENTICPET_TEST_PG: pgProblem === null ? pgUrl : `skip:${pgProblem}`,
  AGENTICPET_TEST_REDIS: redisProblem === null ? redisUrl : `skip:${redisProblem}`,
};

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
// The same test skipped in several runs of a contract suite is listed once.
const skippedSuites = [...new Set([...tap.matchAll(/^\s*(?:ok|not ok) \d+ - (.+?) # SKIP (.*)$/gm)].map((m) => `  - ${m[1]}: ${m[2] || 'skipped'}`))];

console.log('');
if (skippedSuites.length > 0) {
  console.log(`Skipped ${skippedSuites.length} suite(s) or test(s):`);
  console.log(skippedSuites.join('\n'));
  const missing = [pgProblem !== null ? 'PostgreSQL' : null, redisProblem !== null ? 'Redis' : null].filter((m) => m !== null);
  if (missing.length > 0) console.log(`Start ${missing.join(' and ')} (see README) to run them; AGENTICPET_REQUIRE_SERVICES=1 makes a missing server fail the run.`);
} else {
  console.log('No suites skipped: PostgreSQL, Redis and the embedded stores were all tested.');
}
console.log(`tests: ${count('pass')} passed, ${count('fail')} failed, ${skippedSuites.length} skipped`);
process.exit(code);
