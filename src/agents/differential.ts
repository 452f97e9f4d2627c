/**
 * Differential: ranks the species' conditions by posterior probability with naive Bayes over
 * the findings present and absent, starting from each condition's prior adjusted for breed,
 * age, sex and neuter status. Every differential lists the evidence that moved it and by how
 * much (the natural log of the likelihood ratio against the prior-weighted average condition).
 */
import type { Condition, KbSpecies } from '../knowledge/model.js';
import type { CaseInput, Differential, DifferentialOutput, EvidenceWeight, FindingEvidence } from './types.js';

export const DIFFERENTIAL_VERSION = '1.0.0';

/** P(finding | condition) for a finding the condition does not list (knowledge-base README guidance). */
const UNLISTED_LIKELIHOOD = 0.02;
/**
 * The same for exposure findings (ate xylitol, lily contact...): an exposure is rare in an animal
 * whose condition has nothing to do with it, so the toxicosis that lists it must dominate, as the
 * knowledge-base README asks. An engine smoothing parameter, not a clinical fact.
 */
const UNLISTED_EXPOSURE_LIKELIHOOD = 0.001;
const TOP_N = 10;

interface Scored {
  condition: Condition;
  likelihoods: Map<string, number>;
  logPrior: number;
}

/** Per-species tables, built once per knowledge-base version and reused by every request. */
export class DifferentialModel {
  private readonly scored: Scored[];
  /** Prior-weighted average P(finding) over all conditions: the baseline evidence is measured against. */
  private readonly marginal = new Map<string, number>();

  private readonly unlisted = new Map<string, number>();

  constructor(
    readonly species: KbSpecies,
    conditions: Condition[],
    exposureCodes: ReadonlySet<string> = new Set(),
  ) {
    for (const code of exposureCodes) this.unlisted.set(code, UNLISTED_EXPOSURE_LIKELIHOOD);
    this.scored = conditions.map((c) => ({ condition: c, likelihoods: new Map(c.findings.map((f) => [f.code, f.likelihood])), logPrior: Math.log(c.prior.value) }));
    const totalPrior = conditions.reduce((s, c) => s + c.prior.value, 0);
    const codes = new Set(conditions.flatMap((c) => c.findings.map((f) => f.code)));
    for (const code of codes) {
      let m = 0;
      for (const s of this.scored) m += (s.condition.prior.value / totalPrior) * (s.likelihoods.get(code) ?? this.unlistedOf(code));
      this.marginal.set(code, m);
    }
  }

  private signalment(c: Condition, input: Pick<CaseInput, 'breed' | 'ageYears' | 'sex' | 'neutered'>): EvidenceWeight[] {
    const items: EvidenceWeight[] = [];
    const s = c.signalment;
    if (s === undefined) return items;
    const breed = input.breed?.toLowerCase() ?? '';
    for (const b of s.breeds ?? []) {
      if (breed !== '' && (breed.includes(b.breed.toLowerCase()) || b.breed.toLowerCase().includes(breed))) {
        items.push({ finding: `breed:${b.breed}`, present: true, source: { kind: 'signalment', ref: 'breed', value: input.breed! }, weight: Math.log(Math.max(b.factor, 1e-9)) });
        break;
      }
    }
    if (input.ageYears !== null) {
      const age = input.ageYears;
      const band = (s.age ?? []).find((a) => (a.minYears === undefined || age >= a.minYears) && (a.maxYears === undefined || age < a.maxYears));
      if (band) items.push({ finding: 'age', present: true, source: { kind: 'signalment', ref: 'ageYears', value: age }, weight: Math.log(Math.max(band.factor, 1e-9)) });
    }
    const sex = (s.sex ?? []).find((x) => x.sex === input.sex && (x.neutered === undefined || x.neutered === input.neutered));
    if (sex) items.push({ finding: 'sex', present: true, source: { kind: 'signalment', ref: 'sex', value: `${input.sex}${input.neutered === null ? '' : input.neutered ? ', neutered' : ', entire'}` }, weight: Math.log(Math.max(sex.factor, 1e-9)) });
    return items;
  }

  run(input: Pick<CaseInput, 'breed' | 'ageYears' | 'sex' | 'neutered'>, findings: FindingEvidence[]): DifferentialOutput {
    // Score every condition first; the evidence lists are built for the top N only, since
    // only those are returned (the cost then grows with the conditions only in the scoring).
    const rows = this.scored.map((s) => {
      const signalment = this.signalment(s.condition, input);
      let logScore = s.logPrior + signalment.reduce((sum, e) => sum + e.weight, 0);
      for (const f of findings) {
        const l = s.likelihoods.get(f.code) ?? this.unlistedOf(f.code);
        logScore += Math.log(f.present ? l : 1 - l);
      }
      return { s, logScore, signalment };
    });
    let max = -Infinity;
    for (const r of rows) if (r.logScore > max) max = r.logScore;
    const total = rows.reduce((sum, r) => sum + Math.exp(r.logScore - max), 0);
    const ranked = rows
      .map((r) => ({ ...r, probability: Math.exp(r.logScore - max) / total }))
      .sort((a, b) => b.probability - a.probability)
      .slice(0, TOP_N);
    const differentials: Differential[] = ranked.map((r) => ({
      code: r.s.condition.code,
      name: r.s.condition.name,
      urgency: r.s.condition.urgency,
      probability: Math.round(r.probability * 10000) / 10000,
      evidence: this.evidence(r.s, r.signalment, findings).sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)),
    }));
    return { differentials, considered: this.scored.length };
  }

  /** What moved one condition: its signalment factors, then each finding's log likelihood ratio. */
  private evidence(s: (typeof this.scored)[number], signalment: EvidenceWeight[], findings: FindingEvidence[]): EvidenceWeight[] {
    const evidence = [...signalment];
    for (const f of findings) {
      const l = s.likelihoods.get(f.code) ?? this.unlistedOf(f.code);
      const m = this.marginal.get(f.code) ?? this.unlistedOf(f.code);
      const weight = Math.log((f.present ? l : 1 - l) / (f.present ? m : 1 - m));
      if (Math.abs(weight) > 1e-6) evidence.push({ finding: f.code, present: f.present, source: f.source, weight: Math.round(weight * 1000) / 1000 });
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
