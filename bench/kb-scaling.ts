/**
 * nice -n 10 npx tsx bench/kb-scaling.ts [--scales 1,2,4,8] [--rounds 30]
 *
 * How the agents' CPU time per diagnosis grows with the size of the knowledge base. For each
 * scale ×k the bundled knowledge base is written to a temporary directory with its findings,
 * conditions (both species) and treatment entries replicated k times, and loaded (and so
 * validated) by loadKnowledgeBase. Copy j of a finding gets code `q<j>_<code>` and every word of
 * its name, synonyms, lay terms and misspellings renamed (see renameTerm), so each copy is new,
 * distinct vocabulary (it grows the lexicon without matching the vignettes' words); copy j of a
 * condition lists copy j of its findings, with the same prior, likelihoods and signalment.
 * Copies therefore never match a complaint: they cost what a larger vocabulary and condition
 * list cost, while the vignettes keep their answers.
 *
 * The vignettes (test/vignettes/vignettes.json) run through orchestrate, warmed up first, in
 * interleaved rounds (every scale in each round, so machine noise spreads evenly); CPU per
 * diagnosis is process.cpuUsage() around each orchestrate call. Prints a table and the fitted
 * growth; writes bench/results/kb-scaling-<time>.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import type { CaseInput } from '../src/agents/types.js';
import { DEFAULT_KNOWLEDGE_DIR, loadKnowledgeBase, type KnowledgeBase } from '../src/knowledge/load.js';
import type { Condition, Finding } from '../src/knowledge/model.js';
import { caseFromRequest, loadVignettes } from '../test/vignettes/evaluate.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { scales: { type: 'string', default: '1,2,4,8' }, rounds: { type: 'string', default: '30' }, warmup: { type: 'string', default: '5' } } });
const scales = args.scales!.split(',').map(Number);
const rounds = Number(args.rounds);

const readJson = <T>(dir: string, file: string): T => JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as T;
const tag = (j: number) => `q${String.fromCharCode(97 + j)}`;
/**
 * Each word of a copied term gets its first two characters replaced by the copy's tag (q + a
 * letter; shorter words get it in front): the length stays, so the lexicon's one-typo list of
 * long words grows exactly k times, and a copy is two edits from the word it came from, so it
 * never catches that word's typos.
 */
const renameTerm = (term: string, j: number) => term.replace(/[A-Za-zÀ-ÿ0-9’'`]+/g, (w) => (w.length >= 3 ? `${tag(j)}${w.slice(2)}` : `${tag(j)}${w}`));

/** Writes the bundled knowledge base with findings, conditions and treatments replicated k times. */
function writeScaledKb(k: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `agenticpet-kb-x${k}-`));
  fs.cpSync(DEFAULT_KNOWLEDGE_DIR, dir, { recursive: true });
  if (k === 1) return dir;
  const findingsFile = readJson<{ findings: Finding[] }>(dir, 'findings.json');
  const original = [...findingsFile.findings];
  for (let j = 1; j < k; j++) {
    for (const f of original) {
      findingsFile.findings.push({
        ...f,
        code: `${tag(j)}_${f.code}`,
        name: renameTerm(f.name, j),
        ...(f.synonyms ? { synonyms: f.synonyms.map((t) => renameTerm(t, j)) } : {}),
        ...(f.layTerms ? { layTerms: f.layTerms.map((t) => renameTerm(t, j)) } : {}),
        ...(f.misspellings ? { misspellings: f.misspellings.map((t) => renameTerm(t, j)) } : {}),
      });
    }
  }
  fs.writeFileSync(path.join(dir, 'findings.json'), JSON.stringify(findingsFile));
  for (const species of ['dog', 'cat']) {
    const file = `conditions/${species}.json`;
    const conditionsFile = readJson<{ conditions: Condition[] }>(dir, file);
    const base = [...conditionsFile.conditions];
    for (let j = 1; j < k; j++) {
      for (const c of base) {
        conditionsFile.conditions.push({ ...c, code: `${tag(j)}_${c.code}`, name: `${c.name} (${tag(j)})`, findings: c.findings.map((f) => ({ ...f, code: `${tag(j)}_${f.code}` })) });
      }
    }
    fs.writeFileSync(path.join(dir, file), JSON.stringify(conditionsFile));
  }
  const treatmentsFile = readJson<{ treatments: Array<{ condition: string }> }>(dir, 'treatments.json');
  const baseTreatments = [...treatmentsFile.treatments];
  for (let j = 1; j < k; j++) for (const t of baseTreatments) treatmentsFile.treatments.push({ ...t, condition: `${tag(j)}_${t.condition}` });
  fs.writeFileSync(path.join(dir, 'treatments.json'), JSON.stringify(treatmentsFile));
  return dir;
}

interface Scale {
  k: number;
  kb: KnowledgeBase;
  registry: AgentRegistry;
  cases: CaseInput[];
  conditions: number;
  findings: number;
  treatments: number;
  lexiconPhrases: number;
  lexiconLongWords: number;
  suiteBuildMs: number;
  cpuUs: number[];
  wallUs: number[];
  agentMs: Record<string, number>;
  top1: string[];
}

const vignettes = loadVignettes();
const setups: Scale[] = [];
for (const k of scales) {
  const dir = writeScaledKb(k);
  const kb = loadKnowledgeBase(dir);
  fs.rmSync(dir, { recursive: true, force: true });
  // Budgets far above any step: this measures cost, it must not degrade answers.
  const registry = new AgentRegistry(kb, null, { default: 60_000, narrative: 60_000 });
  const t0 = performance.now();
  registry.suite('dog');
  registry.suite('cat');
  const suiteBuildMs = performance.now() - t0;
  // The lexicon is private to the agents; its size is read here for the report only.
  const lexicon = registry.suite('dog').lexicon as unknown as { byFirst: Map<string, unknown[]>; longWords: Map<string, string> };
  setups.push({
    k,
    kb,
    registry,
    cases: vignettes.map((v) => caseFromRequest(kb, v.request)),
    conditions: kb.conditions.dog.length + kb.conditions.cat.length,
    findings: kb.findings.size,
    treatments: kb.treatments.length,
    lexiconPhrases: [...lexicon.byFirst.values()].reduce((n, l) => n + l.length, 0),
    lexiconLongWords: lexicon.longWords.size,
    suiteBuildMs,
    cpuUs: [],
    wallUs: [],
    agentMs: {},
    top1: [],
  });
}

async function runRound(s: Scale, record: boolean): Promise<void> {
  for (const input of s.cases) {
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const r = await orchestrate(s.registry, input);
    const wall = performance.now() - w0;
    const c = process.cpuUsage(c0);
    if (!record) continue;
    s.cpuUs.push(c.user + c.system);
    s.wallUs.push(wall * 1000);
    for (const step of r.steps) s.agentMs[step.agent] = (s.agentMs[step.agent] ?? 0) + step.durationMs;
    if (s.top1.length < s.cases.length) s.top1.push(r.outputs.differential?.differentials[0]?.code ?? '');
  }
}

for (let w = 0; w < Number(args.warmup); w++) for (const s of setups) await runRound(s, false);
for (let r = 0; r < rounds; r++) for (const s of setups) await runRound(s, true);

const quantile = (xs: number[], q: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ms = (us: number) => Math.round(us) / 1000;

const rows = setups.map((s) => ({
  scale: s.k,
  conditions: s.conditions,
  findings: s.findings,
  treatments: s.treatments,
  lexiconPhrases: s.lexiconPhrases,
  lexiconLongWords: s.lexiconLongWords,
  diagnoses: s.cpuUs.length,
  cpuMsMean: ms(mean(s.cpuUs)),
  cpuMsP50: ms(quantile(s.cpuUs, 0.5)),
  cpuMsP90: ms(quantile(s.cpuUs, 0.9)),
  cpuMsP99: ms(quantile(s.cpuUs, 0.99)),
  wallMsP50: ms(quantile(s.wallUs, 0.5)),
  agentWallMsMean: Object.fromEntries(Object.entries(s.agentMs).map(([a, t]) => [a, Math.round((t / s.cpuUs.length) * 1000) / 1000])),
  suiteBuildMs: Math.round(s.suiteBuildMs * 10) / 10,
  kbVersion: s.kb.version,
}));

/** Least-squares slope and intercept of y on x. */
function fit(xs: number[], ys: number[]): { slope: number; intercept: number; r2: number } {
  const mx = mean(xs);
  const my = mean(ys);
  const sxy = xs.reduce((s, x, i) => s + (x - mx) * (ys[i]! - my), 0);
  const sxx = xs.reduce((s, x) => s + (x - mx) ** 2, 0);
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const ssTot = ys.reduce((s, y) => s + (y - my) ** 2, 0);
  const ssRes = ys.reduce((s, y, i) => s + (y - (intercept + slope * xs[i]!)) ** 2, 0);
  return { slope, intercept, r2: ssTot === 0 ? 1 : 1 - ssRes / ssTot };
}
const byConditions = fit(rows.map((r) => r.conditions), rows.map((r) => r.cpuMsMean));
const byPhrases = fit(rows.map((r) => r.lexiconPhrases), rows.map((r) => r.cpuMsMean));
const same = setups.every((s) => s.top1.every((code, i) => code === setups[0]!.top1[i]));

console.log(`\nCPU per diagnosis vs knowledge-base size (${vignettes.length} vignettes × ${rounds} rounds per scale, interleaved, after ${args.warmup} warm-up rounds)`);
console.log('scale  conditions  findings  lexicon phrases  long words  CPU ms mean   p50    p90    p99   wall p50  suite build ms  agent wall ms (mean)');
for (const r of rows) {
  console.log(
    `×${String(r.scale).padEnd(4)} ${String(r.conditions).padStart(10)} ${String(r.findings).padStart(9)} ${String(r.lexiconPhrases).padStart(16)} ${String(r.lexiconLongWords).padStart(11)}  ` +
      `${r.cpuMsMean.toFixed(3).padStart(11)} ${r.cpuMsP50.toFixed(3).padStart(6)} ${r.cpuMsP90.toFixed(3).padStart(6)} ${r.cpuMsP99.toFixed(3).padStart(6)} ${r.wallMsP50.toFixed(3).padStart(9)} ${String(r.suiteBuildMs).padStart(15)}  ` +
      Object.entries(r.agentWallMsMean).map(([a, t]) => `${a} ${t}`).join(', '),
  );
}
console.log(`fit: CPU ms = ${byConditions.intercept.toFixed(3)} + ${(byConditions.slope * 100).toFixed(3)} per 100 conditions (r² ${byConditions.r2.toFixed(3)})`);
console.log(`     CPU ms = ${byPhrases.intercept.toFixed(3)} + ${(byPhrases.slope * 1000).toFixed(3)} per 1,000 lexicon phrases (r² ${byPhrases.r2.toFixed(3)})`);
const last = rows.at(-1)!;
console.log(`×${last.scale} costs ${(last.cpuMsMean / rows[0]!.cpuMsMean).toFixed(2)}× the CPU of ×${rows[0]!.scale}; top-1 answers identical at every scale: ${same}`);
const out = path.join(root, 'bench/results', `kb-scaling-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(
  out,
  `${JSON.stringify({ command: `nice -n 10 npx tsx bench/kb-scaling.ts --scales ${args.scales} --rounds ${rounds}`, node: process.version, cpus: os.cpus().length, loadavg: os.loadavg(), rows, fit: { perHundredConditionsMs: byConditions.slope * 100, interceptMs: byConditions.intercept, r2: byConditions.r2, perThousandPhrasesMs: byPhrases.slope * 1000, r2Phrases: byPhrases.r2 }, top1Identical: same, at: new Date().toISOString() }, null, 2)}\n`,
);
console.log(`wrote ${path.relative(root, out)}`);
