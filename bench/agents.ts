/**
 * The agents alone, in process: the vignette mix with each case's age and weight varied per run
 * (as `npm run bench` sends them), through orchestrate() and nothing else (no HTTP, storage or
 * session tier). Prints CPU per diagnosis, so a change to an agent can be measured without the
 * noise of the whole path.
 *
 *   npx tsx bench/agents.ts [--runs 20000] [--warmup 3000] [--cpu-prof]
 *
 * A figure, not a test.
 */
import { Session } from 'node:inspector/promises';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import type { CaseInput } from '../src/agents/types.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { caseFromRequest, loadVignettes } from '../test/vignettes/evaluate.js';
import { mulberry32 } from './lib/prng.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20000' }, warmup: { type: 'string', default: '3000' }, 'cpu-prof': { type: 'boolean', default: false } } });
const root = path.resolve(import.meta.dirname, '..');
const kb = loadKnowledgeBase(undefined);
const registry = new AgentRegistry(kb, null, { default: 250, narrative: 250 }).warm();
const cases: CaseInput[] = loadVignettes().map((v) => caseFromRequest(kb, v.request));
const random = mulberry32(1);
const vary = (c: CaseInput): CaseInput => ({
  ...c,
  ageYears: c.ageYears === undefined || c.ageYears === null ? c.ageYears : Math.round(Math.max(0.2, c.ageYears * (0.75 + 0.5 * random())) * 10) / 10,
  weightKg: c.weightKg === undefined || c.weightKg === null ? c.weightKg : Math.round(Math.max(0.3, c.weightKg * (0.88 + 0.24 * random())) * 10) / 10,
});

async function run(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await orchestrate(registry, vary(cases[i % cases.length]!));
}

await run(Number(values.warmup));
const session = values['cpu-prof'] ? new Session() : null;
if (session) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}
const runs = Number(values.runs);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await run(runs);
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(`${runs} diagnoses (${cases.length} vignettes, age and weight varied): ${((cpu.user + cpu.system) / 1000 / runs).toFixed(4)} ms CPU, ${(wall / runs).toFixed(4)} ms wall per diagnosis`);
if (session) {
  const { profile } = await session.post('Profiler.stop');
  const file = path.join(root, 'bench', 'results', `agents-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(profile));
  console.log(`profile: ${path.relative(root, file)}`);
}
