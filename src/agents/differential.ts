/**
 * Differential: ranks the species' conditions by posterior probability with naive Bayes over
 * the findings present and absent, starting from each condition's prior adjusted for breed,
 * age, sex and neuter status. Every differential lists the evidence that moved it and by how
 * much (the natural log of the likelihood ratio against the prior-weighted average condition).
 */
import type { Condition, KbSpecies } from '../knowledge/model.js';
import type { CaseInput, Differential, DifferentialOutput, EvidenceWeight, FindingEvidence } from './types.js';

export const DIFFERENTIAL_VERSION = '1.3.0';

/** P(finding | condition) for a finding the condition does not list (knowledge-base README guidance). */
export const UNLISTED_LIKELIHOOD = 0.02;
/**
 * The same for exposure findings (ate xylitol, lily contact...): an exposure is rare in an animal
 * whose condition has nothing to do with it, so the toxicosis that lists it must dominate, as the
 * knowledge-base README asks. An engine smoothing parameter, not a clinical fact. At 0.001 a lily
 * exposure in a cat that "seems fine" still ranked below flea infestation (whose prior is some 80
 * times a toxicosis's): 0.0002 lets the exposure outweigh the commonest priors.
 */
export const UNLISTED_EXPOSURE_LIKELIHOOD = 0.0002;
const TOP_N = 10;
/** Weight of a hedged finding's log likelihood (engine parameter: half the evidence of a certain one). */
const HEDGED = 0.5;

interface Scored {
  condition: Condition;
  likelihoods: Map<string, number>;
  logPrior: number;
  signalment: SignalmentTable;
}

/** A condition's signalment with breed names lower-cased and each factor's log taken once. */
interface SignalmentTable {
  breeds: Array<{ breed: string; lower: string; weight: number }>;
  age: Array<{ minYears: number | undefined; maxYears: number | undefined; weight: number }>;
  sex: Array<{ sex: string; neutered: boolean | undefined; weight: number }>;
}

type Signalment = Pick<CaseInput, 'breed' | 'ageYears' | 'sex' | 'neutered'>;

const factorWeight = (factor: number) => Math.log(Math.max(factor, 1e-9));

function signalmentTable(c: Condition): SignalmentTable {
  const s = c.signalment;
  return {
    breeds: (s?.breeds ?? []).map((b) => ({ breed: b.breed, lower: b.breed.toLowerCase(), weight: factorWeight(b.factor) })),
    age: (s?.age ?? []).map((a) => ({ minYears: a.minYears, maxYears: a.maxYears, weight: factorWeight(a.factor) })),
    sex: (s?.sex ?? []).map((x) => ({ sex: x.sex, neutered: x.neutered, weight: factorWeight(x.factor) })),
  };
}

// The first entry of each kind that applies, as the scoring and the evidence must agree on it.
function breedEntry(t: SignalmentTable, breed: string): SignalmentTable['breeds'][number] | undefined {
  if (breed === '') return undefined;
  for (const b of t.breeds) if (breed.includes(b.lower) || b.lower.includes(breed)) return b;
  return undefined;
}

function ageEntry(t: SignalmentTable, age: number | null): SignalmentTable['age'][number] | undefined {
  if (age === null) return undefined;
  for (const a of t.age) if ((a.minYears === undefined || age >= a.minYears) && (a.maxYears === undefined || age < a.maxYears)) return a;
  return undefined;
}

function sexEntry(t: SignalmentTable, input: Signalment): SignalmentTable['sex'][number] | undefined {
  for (const x of t.sex) if (x.sex === input.sex && (x.neutered === undefined || x.neutered === input.neutered)) return x;
  return undefined;
}

/**
 * log P(finding present | condition) and log P(finding absent | condition) for every condition,
 * in condition order, so a request adds them with one map lookup per finding, not per
 * (condition × finding).
 */
interface FindingColumn {
  present: Float64Array;
  absent: Float64Array;
}

/**
 * The indices of the `count` largest values, largest first; equal values keep index order (what a
 * stable sort of every index would put first). One pass with a small insertion list: only the
 * top of the ranking is reported, so the rest of the conditions are never sorted.
 */
export function topIndices(values: Float64Array, count: number): number[] {
  const top: number[] = [];
  if (count <= 0) return top;
  for (let k = 0; k < values.length; k++) {
    const v = values[k]!;
    if (top.length === count) {
      if (!(v > values[top[count - 1]!]!)) continue;
      top.pop();
    }
    let at = top.length;
    top.push(k);
    for (; at > 0 && v > values[top[at - 1]!]!; at--) top[at] = top[at - 1]!;
    top[at] = k;
  }
  return top;
}

/** Per-species tables, built once per knowledge-base version and reused by every request. */
export class DifferentialModel {
  private readonly scored: Scored[];
  /** Prior-weighted average P(finding) over all conditions: the baseline evidence is measured against. */
  private readonly marginal = new Map<string, number>();

  private readonly unlisted = new Map<string, number>();
  private readonly columns = new Map<string, FindingColumn>();

  constructor(
    readonly species: KbSpecies,
    conditions: Condition[],
    exposureCodes: ReadonlySet<string> = new Set(),
    /** Findings whose knowledge-base entry gives its own likelihood for conditions that do not list it. */
    unlistedByFinding: ReadonlyMap<string, number> = new Map(),
  ) {
    for (const code of exposureCodes) this.unlisted.set(code, UNLISTED_EXPOSURE_LIKELIHOOD);
    for (const [code, l] of unlistedByFinding) this.unlisted.set(code, l);
    this.scored = conditions.map((c) => ({
      condition: c,
      likelihoods: new Map(c.findings.map((f) => [f.code, f.likelihood])),
      logPrior: Math.log(c.prior.value),
      signalment: signalmentTable(c),
    }));
    const totalPrior = conditions.reduce((s, c) => s + c.prior.value, 0);
    const codes = new Set(conditions.flatMap((c) => c.findings.map((f) => f.code)));
    for (const code of codes) {
      let m = 0;
      for (const s of this.scored) m += (s.condition.prior.value / totalPrior) * (s.likelihoods.get(code) ?? this.unlistedOf(code));
      this.marginal.set(code, m);
      const column = { present: new Float64Array(this.scored.length), absent: new Float64Array(this.scored.length) };
      this.scored.forEach((s, k) => {
        const l = s.likelihoods.get(code) ?? this.unlistedOf(code);
        column.present[k] = Math.log(l);
        column.absent[k] = Math.log(1 - l);
      });
      this.columns.set(code, column);
    }
  }

  /** The signalment evidence of one condition, for the conditions returned. */
  private signalment(t: SignalmentTable, input: Signalment, breed: string): EvidenceWeight[] {
    const items: EvidenceWeight[] = [];
    const b = breedEntry(t, breed);
    if (b) items.push({ finding: `breed:${b.breed}`, present: true, source: { kind: 'signalment', ref: 'breed', value: input.breed! }, weight: b.weight });
    const band = ageEntry(t, input.ageYears);
    if (band) items.push({ finding: 'age', present: true, source: { kind: 'signalment', ref: 'ageYears', value: input.ageYears! }, weight: band.weight });
    const sex = sexEntry(t, input);
    if (sex) items.push({ finding: 'sex', present: true, source: { kind: 'signalment', ref: 'sex', value: `${input.sex}${input.neutered === null ? '' : input.neutered ? ', neutered' : ', entire'}` }, weight: sex.weight });
    return items;
  }

  run(input: Signalment, findings: FindingEvidence[]): DifferentialOutput {
    // Score every condition first; the evidence lists are built for the top N only, since
    // only those are returned (the cost then grows with the conditions only in the scoring).
    // The sums are formed as they always were (the signalment weights from 0, that added to
    // the prior, then each finding's log in turn): reordering them would change the rounding.
    const n = this.scored.length;
    const breed = input.breed?.toLowerCase() ?? '';
    const logScores = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const s = this.scored[k]!;
      let signalment = 0;
      const b = breedEntry(s.signalment, breed);
      if (b) signalment += b.weight;
      const band = ageEntry(s.signalment, input.ageYears);
      if (band) signalment += band.weight;
      const sex = sexEntry(s.signalment, input);
      if (sex) signalment += sex.weight;
      logScores[k] = s.logPrior + signalment;
    }
    for (const f of findings) {
      const column = this.columns.get(f.code);
      if (column !== undefined) {
        const logs = f.present ? column.present : column.absent;
        // A hedged finding ("maybe limping") counts as half the evidence (a tempered likelihood),
        // one read off an image as much as its weight says.
        const temper = f.weight ?? (f.uncertain === true ? HEDGED : 1);
        if (temper !== 1) for (let k = 0; k < n; k++) logScores[k]! += temper * logs[k]!;
        else for (let k = 0; k < n; k++) logScores[k]! += logs[k]!;
      } else {
        const l = this.unlistedOf(f.code);
        const log = (f.weight ?? (f.uncertain === true ? HEDGED : 1)) * Math.log(f.present ? l : 1 - l);
        for (let k = 0; k < n; k++) logScores[k]! += log;
      }
    }
    let max = -Infinity;
    for (let k = 0; k < n; k++) if (logScores[k]! > max) max = logScores[k]!;
    const probabilities = new Float64Array(n);
    let total = 0;
    for (let k = 0; k < n; k++) total += (probabilities[k] = Math.exp(logScores[k]! - max));
    for (let k = 0; k < n; k++) probabilities[k]! /= total;
    const differentials: Differential[] = topIndices(probabilities, TOP_N).map((k) => {
      const s = this.scored[k]!;
      return {
        code: s.condition.code,
        name: s.condition.name,
        urgency: s.condition.urgency,
        probability: Math.round(probabilities[k]! * 10000) / 10000,
        evidence: this.evidence(s, this.signalment(s.signalment, input, breed), findings).sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)),
      };
    });
    return { differentials, considered: n };
  }

  /** What moved one condition: its signalment factors, then each finding's log likelihood ratio. */
  private evidence(s: (typeof this.scored)[number], signalment: EvidenceWeight[], findings: FindingEvidence[]): EvidenceWeight[] {
    const evidence = [...signalment];
    for (const f of findings) {
      const l = s.likelihoods.get(f.code) ?? this.unlistedOf(f.code);
      const m = this.marginal.get(f.code) ?? this.unlistedOf(f.code);
      const weight = (f.weight ?? (f.uncertain === true ? HEDGED : 1)) * Math.log((f.present ? l : 1 - l) / (f.present ? m : 1 - m));
      if (Math.abs(weight) > 1e-6) evidence.push({ finding: f.code, present: f.present, weight: Math.round(weight * 1000) / 1000 });
    }
    return evidence;
  }

  private unlistedOf(code: string): number {
    return this.unlisted.get(code) ?? UNLISTED_LIKELIHOOD;
  }

  condition(code: string): Condition | undefined {
    return this.scored.find((s) => s.condition.code === code)?.condition;
  }
}
