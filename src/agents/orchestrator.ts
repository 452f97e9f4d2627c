/**
 * The orchestrator runs the agents as a DAG: intake and labs in parallel, then the
 * differential, then triage and plan in parallel, then the narrative. Each agent has a time
 * budget; one that fails or runs out of time degrades the answer (with a warning in it, and a
 * fail-safe where safety depends on it) instead of failing the request. Every step is recorded
 * (agent, version, input digest, output) for the reasoning chain.
 */
import { hash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import type { KnowledgeBase } from '../knowledge/load.js';
import type { KbSpecies } from '../knowledge/model.js';
import { DIFFERENTIAL_VERSION, DifferentialModel } from './differential.js';
import { INTAKE_VERSION, Lexicon, mergeFindings, runIntake } from './intake.js';
import { LABS_VERSION, runLabs } from './labs.js';
import { NARRATIVE_VERSION, runNarrative, type LlmClient } from './narrative.js';
import { PLAN_VERSION, runPlan } from './plan.js';
import { runTriage, TRIAGE_VERSION } from './triage.js';
import type { AgentMessage, CaseInput, ChainStep, DifferentialOutput, FindingEvidence, IntakeOutput, LabsOutput, NarrativeOutput, PlanOutput, TriageOutput } from './types.js';

export const AGENT_VERSIONS = {
  intake: INTAKE_VERSION,
  labs: LABS_VERSION,
  differential: DIFFERENTIAL_VERSION,
  triage: TRIAGE_VERSION,
  plan: PLAN_VERSION,
  narrative: NARRATIVE_VERSION,
} as const;
export type AgentName = keyof typeof AGENT_VERSIONS;

/**
 * What the host records around each agent step (a tracing span, say): given to the registry, so
 * the agents import no observability code. `run` gets a callback to report how the step ended.
 */
export interface StepTracer {
  step<T>(agent: AgentName, version: string, run: (ended: (status: ChainStep['status'], err?: unknown) => void) => Promise<T>): Promise<T>;
}

export const UNTRACED: StepTracer = { step: (_agent, _version, run) => run(() => undefined) };

export interface Budgets {
  /** Milliseconds per agent; the narrative's also bounds an LLM call. */
  default: number;
  narrative: number;
}

/** The agents of one species on one knowledge-base version: built once, shared by all requests. */
export interface AgentSuite {
  kb: KnowledgeBase;
  species: KbSpecies;
  lexicon: Lexicon;
  differential: DifferentialModel;
  findingNames: Record<string, string>;
}

export class AgentRegistry {
  private readonly suites = new LRUCache<string, AgentSuite>({ max: 16 });
  private lexicon: { version: string; value: Lexicon } | undefined;

  constructor(
    readonly kb: KnowledgeBase,
    readonly llm: LlmClient | null,
    readonly budgets: Budgets,
    readonly tracer: StepTracer = UNTRACED,
  ) {}

  /** Builds every species' tables now (at start), so no request pays for it. */
  warm(): this {
    for (const species of Object.keys(this.kb.conditions) as KbSpecies[]) this.suite(species);
    return this;
  }

  suite(species: KbSpecies): AgentSuite {
    const key = `${species}@${this.kb.version}`;
    let suite = this.suites.get(key);
    if (suite === undefined) {
      if (this.lexicon?.version !== this.kb.version) this.lexicon = { version: this.kb.version, value: new Lexicon(this.kb) };
      suite = {
        kb: this.kb,
        species,
        lexicon: this.lexicon.value,
        differential: new DifferentialModel(
          species,
          this.kb.conditions[species],
          new Set([...this.kb.findings.values()].filter((f) => f.category === 'exposure').map((f) => f.code)),
          new Map([...this.kb.findings.values()].flatMap((f) => (f.unlistedLikelihood === undefined ? [] : [[f.code, f.unlistedLikelihood.value] as const]))),
        ),
        findingNames: Object.fromEntries([...this.kb.findings.values()].map((f) => [f.code, f.name])),
      };
      this.suites.set(key, suite);
    }
    return suite;
  }
}

export interface Outputs {
  intake?: IntakeOutput;
  labs?: LabsOutput;
  differential?: DifferentialOutput;
  triage?: TriageOutput;
  plan?: PlanOutput;
  narrative?: NarrativeOutput;
}

export interface OrchestratorResult {
  outputs: Outputs;
  findings: FindingEvidence[];
  steps: ChainStep[];
  /** Each step as JSON, in order: serialised once, hashed for the digests and stored as is. */
  stepJson: string[];
  /** Each agent's latest output as the JSON its step holds (what JSON.stringify(outputs[agent]) gives). */
  outputJson: Partial<Record<AgentName, string>>;
  messages: AgentMessage[];
  warnings: string[];
  chainDigest: string;
}

interface Node<K extends AgentName> {
  name: K;
  deps: AgentName[];
  /** Agents whose outputs the input is built from (its digest covers their output digests). */
  reads: AgentName[];
  /** The case fields the input holds besides those outputs (its digest covers their JSON). */
  fields: () => unknown;
  /** The agent's input; without it, the case fields alone. */
  input?: (o: Outputs) => unknown;
  run: (input: never) => Outputs[K] | Promise<Outputs[K] & { warning?: string }>;
  /** What the answer uses when the agent fails; undefined leaves that part out. */
  fallback?: () => Outputs[K];
}

// One-shot: no Hash object per digest (13 digests per diagnosis).
const sha256 = (text: string) => hash('sha256', text, 'hex');

/**
 * The digest of an agent's input: its case fields' JSON, then the output digest of each agent it
 * reads (or "-" for one that produced nothing). The outputs themselves are not serialised again.
 */
function inputDigest(node: Node<AgentName>, outputDigests: ReadonlyMap<AgentName, string>): string {
  let text = `${node.name}\n${JSON.stringify(node.fields()) ?? 'null'}`;
  for (const r of node.reads) text += `\n${r}:${outputDigests.get(r) ?? '-'}`;
  return sha256(text);
}

const isThenable = (v: unknown): v is PromiseLike<unknown> => typeof (v as { then?: unknown } | null)?.then === 'function';

class BudgetExceeded extends Error {}

export interface OrchestrateOptions {
  onStep?: (step: ChainStep) => void;
  /** Replaces agents' run functions (fault-injection in tests: a failing or slow agent). */
  overrides?: Partial<Record<AgentName, (input: never) => unknown>>;
}

export async function orchestrate(registry: AgentRegistry, input: CaseInput, opts: OrchestrateOptions = {}): Promise<OrchestratorResult> {
  const { onStep, overrides = {} } = opts;
  const suite = registry.suite(input.species);
  const { kb } = suite;
  const images = input.imageFindings;
  const findingsOf = (o: Outputs) =>
    mergeFindings(images === undefined ? [...(o.intake?.findings ?? []), ...(o.labs?.findings ?? [])] : [...(o.intake?.findings ?? []), ...(o.labs?.findings ?? []), ...images]);
  const nodes: Array<Node<AgentName>> = [
    {
      name: 'intake',
      deps: [],
      reads: [],
      // The weight is read for dose-aware toxicology (a non-toxic amount of chocolate).
      fields: () => ({ species: input.species, complaint: input.complaint, signs: input.signs, vitals: input.vitals, vitalSources: input.vitalSources, weightKg: input.weightKg, ageYears: input.ageYears }),
      run: (i: Parameters<typeof runIntake>[2]) => runIntake(suite.lexicon, kb, i),
    },
    { name: 'labs', deps: [], reads: [], fields: () => ({ species: input.species, labs: input.labs }), run: (i: { labs: CaseInput['labs'] }) => runLabs(kb, input.species, i.labs) },
    {
      name: 'differential',
      deps: ['intake', 'labs'],
      reads: ['intake', 'labs'],
      // Image findings are case input the differential reads: its digest covers them (when there are any).
      fields: () => (images === undefined ? { breed: input.breed, ageYears: input.ageYears, sex: input.sex, neutered: input.neutered } : { breed: input.breed, ageYears: input.ageYears, sex: input.sex, neutered: input.neutered, imageFindings: images }),
      input: (o) => ({ breed: input.breed, ageYears: input.ageYears, sex: input.sex, neutered: input.neutered, findings: findingsOf(o) }),
      run: (i: CaseInput & { findings: FindingEvidence[] }) => suite.differential.run(i, i.findings),
    },
    {
      name: 'triage',
      deps: ['intake', 'labs', 'differential'],
      reads: ['intake', 'labs', 'differential'],
      fields: () => ({ vitals: input.vitals, ageYears: input.ageYears }),
      input: (o) => ({ vitals: input.vitals, ageYears: input.ageYears, findings: findingsOf(o), differential: o.differential, ...(o.intake?.unreadComplaint ? { unreadComplaint: true } : {}) }),
      run: (i: { vitals: CaseInput['vitals']; ageYears: number | null; findings: FindingEvidence[]; differential?: DifferentialOutput; unreadComplaint?: boolean }) =>
        runTriage(kb, input.species, i.vitals, i.findings, i.differential, i.unreadComplaint === true, i.ageYears),
      // Fail safe: without a triage, the case is treated as an emergency until a person has looked.
      fallback: () => ({ level: 'emergency', reasons: [{ level: 'emergency', reason: 'Automatic triage unavailable: treat as an emergency until assessed by a veterinarian' }] }),
    },
    {
      name: 'plan',
      deps: ['intake', 'labs', 'differential'],
      reads: ['intake', 'labs', 'differential'],
      fields: () => ({ species: input.species, weightKg: input.weightKg, ageYears: input.ageYears, treatments: input.treatments }),
      input: (o) => ({ species: input.species, weightKg: input.weightKg, ageYears: input.ageYears, treatments: input.treatments, findings: findingsOf(o), differential: o.differential }),
      run: (i: Parameters<typeof runPlan>[1] & { findings: FindingEvidence[]; differential?: DifferentialOutput }) => runPlan(kb, i, i.findings, i.differential),
    },
    {
      name: 'narrative',
      deps: ['triage', 'plan'],
      reads: ['intake', 'labs', 'differential', 'triage', 'plan'],
      fields: () => ({ species: input.species, breed: input.breed, ageYears: input.ageYears, sex: input.sex, neutered: input.neutered, weightKg: input.weightKg }),
      input: (o) => ({ patient: { species: input.species, breed: input.breed, ageYears: input.ageYears, sex: input.sex, neutered: input.neutered, weightKg: input.weightKg }, findings: findingsOf(o), labs: o.labs, triage: o.triage, differential: o.differential, plan: o.plan }),
      // Finding names are reference data (covered by the knowledge-base version), not case input,
      // so they stay out of the step's input digest.
      run: (i: Omit<Parameters<typeof runNarrative>[0], 'findingNames'>) => runNarrative({ ...i, findingNames: suite.findingNames }, registry.llm, registry.budgets.narrative),
    },
  ];

  const outputs: Outputs = {};
  const steps: ChainStep[] = [];
  const stepJson: string[] = [];
  const outputJson: Partial<Record<AgentName, string>> = {};
  const messages: AgentMessage[] = [];
  const warnings: string[] = [];
  const done = new Set<AgentName>();
  const outputDigests = new Map<AgentName, string>();
  const stepOutputDigests: string[] = [];

  const runStep = async (node: Node<AgentName>, ended: (status: ChainStep['status'], err?: unknown) => void): Promise<void> => {
    const agentInput = node.input === undefined ? node.fields() : node.input(outputs);
    const budget = node.name === 'narrative' ? registry.budgets.narrative + 50 : registry.budgets.default;
    // Agents that are ready together run one after another on this thread: each step's
    // duration starts when it starts, not when its sibling did.
    const started = performance.now();
    let status: ChainStep['status'] = 'ok';
    let output: unknown;
    let timer: NodeJS.Timeout | undefined;
    try {
      let result = (overrides[node.name] ?? node.run)(agentInput as never) as unknown;
      // A synchronous agent cannot be interrupted, so only a pending answer races the budget
      // (an over-budget synchronous step is reported below).
      if (isThenable(result)) {
        result = await Promise.race([result, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new BudgetExceeded()), budget)))]);
      }
      const { warning, ...rest } = (result ?? {}) as { warning?: string };
      if (warning) warnings.push(warning);
      output = rest;
      (outputs as Record<string, unknown>)[node.name] = rest;
      ended(status);
    } catch (err) {
      status = err instanceof BudgetExceeded ? 'timeout' : 'failed';
      ended(status, status === 'timeout' ? new Error(`did not finish within ${budget} ms`) : err);
      warnings.push(`${node.name} agent ${status === 'timeout' ? `did not finish within ${budget} ms` : `failed (${(err as Error).message})`}: ${node.fallback ? 'a fail-safe answer was used' : 'that part of the answer is missing'}`);
      const fallback = node.fallback?.();
      if (fallback !== undefined) (outputs as Record<string, unknown>)[node.name] = fallback;
      output = fallback ?? null;
    } finally {
      clearTimeout(timer);
    }
    const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    if (status === 'ok' && durationMs > budget) warnings.push(`${node.name} agent took ${Math.round(durationMs)} ms, over its ${budget} ms budget`);
    const step: ChainStep = { seq: steps.length + 1, agent: node.name, agentVersion: AGENT_VERSIONS[node.name], inputDigest: inputDigest(node, outputDigests), status, durationMs, at: new Date().toISOString(), output };
    // The output is serialised once: that text is hashed, and stored inside the step's JSON.
    const outputText = JSON.stringify(output) ?? 'null';
    const outputDigest = sha256(outputText);
    if (output !== null && output !== undefined) outputDigests.set(node.name, outputDigest);
    const { output: _output, ...head } = step;
    stepJson.push(`${JSON.stringify(head).slice(0, -1)},"output":${outputText}}`);
    if (output !== null && output !== undefined) outputJson[node.name] = outputText;
    steps.push(step);
    stepOutputDigests.push(outputDigest);
    for (const dep of node.deps) messages.push({ from: dep, to: node.name, kind: 'output', at: step.at, body: { inputDigest: step.inputDigest } });
    done.add(node.name);
    onStep?.(step);
  };
  const runNode = (node: Node<AgentName>): Promise<void> => registry.tracer.step(node.name, AGENT_VERSIONS[node.name], (ended) => runStep(node, ended));

  while (done.size < nodes.length) {
    const ready = nodes.filter((n) => !done.has(n.name) && n.deps.every((d) => done.has(d)));
    await Promise.all(ready.map(runNode));
  }
  for (const n of outputs.labs?.notInterpreted ?? []) warnings.push(`Lab ${n.analyte} not interpreted: ${n.reason}`);
  if (input.mediaIds.length > 0) {
    const unread = input.imagesRead === undefined ? input.mediaIds.length : input.mediaIds.filter((id) => !input.imagesRead!.includes(id)).length;
    if (unread > 0) warnings.push(`${unread} media item(s) attached to the case; images are stored and linked but not interpreted`);
  }
  const chainDigest = sha256(JSON.stringify(steps.map((s, i) => [s.agent, s.agentVersion, s.inputDigest, s.status, stepOutputDigests[i]])));
  return { outputs, findings: findingsOf(outputs), steps, stepJson, outputJson, messages, warnings, chainDigest };
}
