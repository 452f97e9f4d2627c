/**
 * Plan: next tests from the leading differentials, treatment options from the knowledge base
 * (and any drug the clinician proposes) with weight-based doses, and safety checks that block
 * what is contraindicated or toxic for this species and this case, saying why and citing it.
 */
import type { KnowledgeBase } from '../knowledge/load.js';
import type { Contraindication, Drug, KbSpecies } from '../knowledge/model.js';
import type { BlockedOption, CaseInput, DifferentialOutput, DoseSuggestion, FindingEvidence, PlanOutput, ToxinNote, TreatmentOption } from './types.js';

export const PLAN_VERSION = '1.0.0';

/** Design parameters: how far down the differential the plan looks. */
const PLAN_CONDITIONS = 3;
const PLAN_MIN_PROBABILITY = 0.05;
/** A condition-based contraindication applies when that condition is at least this likely. */
const CONTRAINDICATION_PROBABILITY = 0.15;
const MAX_TESTS = 8;

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function doses(drug: Drug, species: KbSpecies, weightKg: number | null): DoseSuggestion[] {
  return drug.doses
    .filter((d) => d.species === species)
    .map((d) => {
      const perKgMin = d.minMgPerKg ?? d.minPerKg;
      const perKgMax = d.maxMgPerKg ?? d.maxPerKg ?? perKgMin;
      const unit = d.minMgPerKg !== undefined ? 'mg' : d.unit.replace(/\/kg$/, '');
      let perKg: DoseSuggestion['perKg'] = null;
      let total: DoseSuggestion['total'] = null;
      if (perKgMin !== undefined && perKgMax !== undefined) {
        perKg = { min: perKgMin, max: perKgMax, unit: `${unit}/kg` };
        if (weightKg !== null) total = { min: round(perKgMin * weightKg), max: round(perKgMax * weightKg), unit };
      } else if (d.minMgPerAnimal !== undefined) {
        total = { min: d.minMgPerAnimal, max: d.maxMgPerAnimal ?? d.minMgPerAnimal, unit: 'mg' };
      }
      return { route: d.route, frequency: d.frequency, indication: d.indication, perKg, total, source: d.source ?? `estimate: ${d.basis ?? ''}` };
    });
}

interface CaseFacts {
  species: KbSpecies;
  present: Set<string>;
  likely: Set<string>;
  ageYears: number | null;
  weightKg: number | null;
  /** Classes of the drugs the clinician proposes to give (together); knowledge-base options are alternatives. */
  classesByDrug: Map<string, string[]>;
}

function drugClasses(drug: Drug): string[] {
  const c = drug.class.toLowerCase();
  return [c.includes('nsaid') ? 'nsaid' : '', /corticosteroid|glucocorticoid/.test(c) ? 'corticosteroid' : ''].filter((x) => x !== '');
}

/** Why a contraindication applies to this case, or null. Free-text-only rules become cautions. */
function applies(ci: Contraindication, drug: Drug, facts: CaseFacts): string | null {
  if (ci.species !== undefined && ci.species !== facts.species) return null;
  const extra = ci as Contraindication & { maxWeightKg?: number; maxAgeWeeks?: number; route?: string; householdHasCat?: boolean };
  if (ci.finding !== undefined) return facts.present.has(ci.finding) ? `finding ${ci.finding} is present` : null;
  if (ci.condition !== undefined) return facts.likely.has(ci.condition) ? `${ci.condition} is in the differential` : null;
  if (ci.concurrentDrugClass !== undefined) {
    const other = [...facts.classesByDrug].find(([code, classes]) => code !== drug.code && classes.includes(ci.concurrentDrugClass!));
    return other !== undefined ? `${other[0]} (${ci.concurrentDrugClass}) is also among the options` : null;
  }
  if (extra.maxWeightKg !== undefined) return facts.weightKg !== null && facts.weightKg < extra.maxWeightKg ? `weight under ${extra.maxWeightKg} kg` : null;
  if (extra.maxAgeWeeks !== undefined) return facts.ageYears !== null && facts.ageYears * 52.18 < extra.maxAgeWeeks ? `younger than ${extra.maxAgeWeeks} weeks` : null;
  if (extra.householdHasCat !== undefined || ci.conditionText !== undefined) return null;
  return ci.species !== undefined ? `contraindicated in the ${facts.species}` : null;
}

/** For each exposure reported, the cited toxic doses for this species, scaled to the patient's weight. */
function toxinNotes(kb: KnowledgeBase, species: KbSpecies, weightKg: number | null, present: Set<string>): ToxinNote[] {
  return kb.toxins
    .filter((t) => t.exposureFinding !== undefined && present.has(t.exposureFinding) && t.speciesAffected.includes(species))
    .map((t) => {
      const doses = t.toxicDoses.filter((d) => d.species === species).map((d) => ({ value: d.value, unit: d.unit, description: d.description, source: d.source ?? `estimate: ${d.basis ?? ''}` }));
      const perKg = doses.filter((d) => d.value !== null && d.value > 0 && /\/kg$/.test(d.unit)).sort((a, b) => a.value! - b.value!)[0];
      return {
        toxin: t.code,
        name: t.name,
        doses,
        lowestAmountOfConcern: perKg !== undefined && weightKg !== null ? { value: round(perKg.value! * weightKg), unit: perKg.unit.replace(/\/kg$/, '') } : null,
      };
    });
}

export function runPlan(kb: KnowledgeBase, input: Pick<CaseInput, 'species' | 'weightKg' | 'ageYears' | 'treatments'>, findings: FindingEvidence[], differential: DifferentialOutput | undefined): PlanOutput {
  const leading = (differential?.differentials ?? []).filter((d) => d.probability >= PLAN_MIN_PROBABILITY).slice(0, PLAN_CONDITIONS);
  const conditions = kb.conditions[input.species];
  const tests = new Map<string, string[]>();
  for (const d of leading) {
    for (const t of conditions.find((c) => c.code === d.code)?.nextTests ?? []) tests.set(t, [...(tests.get(t) ?? []), d.code]);
  }
  const candidates = new Map<string, { role: string; forCondition: string | null }>();
  const nonDrug: string[] = [];
  for (const d of leading) {
    const t = kb.treatments.find((x) => x.condition === d.code && x.species === input.species);
    for (const o of t?.options ?? []) if (!candidates.has(o.drug)) candidates.set(o.drug, { role: `${o.role} (${o.line})`, forCondition: d.code });
    for (const n of t?.nonDrug ?? []) if (!nonDrug.includes(n)) nonDrug.push(n);
  }
  for (const code of input.treatments) if (!candidates.has(code)) candidates.set(code, { role: 'proposed by the clinician', forCondition: null });

  const facts: CaseFacts = {
    species: input.species,
    present: new Set(findings.filter((f) => f.present).map((f) => f.code)),
    likely: new Set((differential?.differentials ?? []).filter((d) => d.probability >= CONTRAINDICATION_PROBABILITY).map((d) => d.code)),
    ageYears: input.ageYears,
    weightKg: input.weightKg,
    classesByDrug: new Map(input.treatments.map((code) => [code, drugClasses(kb.drugs.get(code)!)])),
  };

  const treatments: TreatmentOption[] = [];
  const blocked: BlockedOption[] = [];
  for (const [code, meta] of candidates) {
    const drug = kb.drugs.get(code)!;
    const cautions: string[] = [];
    let block: BlockedOption | null = null;
    for (const ci of drug.contraindications) {
      const why = applies(ci, drug, facts);
      if (why === null) continue;
      if (ci.severity === 'block' && block === null) block = { drug: code, name: drug.name, reason: ci.reason, because: why, source: ci.source ?? `estimate: ${ci.basis ?? ''}` };
      else if (ci.severity === 'warn') cautions.push(`${ci.reason} (${why})`);
    }
    const speciesDoses = doses(drug, input.species, input.weightKg);
    if (block === null && speciesDoses.length === 0) {
      block = { drug: code, name: drug.name, reason: `No ${input.species} dose in the knowledge base`, because: 'no cited dose for this species', source: 'knowledge base' };
    }
    if (block !== null) blocked.push(block);
    else treatments.push({ drug: code, name: drug.name, role: meta.role, forCondition: meta.forCondition, doses: speciesDoses, cautions });
  }
  return {
    tests: [...tests].slice(0, MAX_TESTS).map(([test, forConditions]) => ({ test, forConditions })),
    toxins: toxinNotes(kb, input.species, input.weightKg, facts.present),
    treatments,
    blocked,
    nonDrug,
  };
}
