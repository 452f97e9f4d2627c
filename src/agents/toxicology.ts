/**
 * Dose-aware toxicology for the intake: when the owner says how much of a known toxin was eaten
 * ("two squares of milk chocolate", "a 200 g bar of 85% dark", "one 200 mg ibuprofen"), the dose
 * per kg is estimated from the case's weight with toxins.json's doseEstimation block and compared
 * with the species' lowest toxic dose. Only a dose well below it (SAFETY_MARGIN) is called
 * non-toxic; an amount that cannot be read, an unknown weight, a toxin without doseEstimation or
 * one toxic at any exposure (lilies and permethrin in cats, grapes in dogs) stays toxic.
 */
import type { KnowledgeBase } from '../knowledge/load.js';
import type { KbSpecies, Toxin } from '../knowledge/model.js';
import type { Token } from './intake.js';
import type { DoseAssessment } from './types.js';

/** The finding raised instead of the exposure when the estimated dose is below the toxic one. */
export const BELOW_TOXIC_DOSE = 'ingestion_below_toxic_dose';

/**
 * An estimated dose counts as non-toxic only below this share of the lowest toxic dose: an
 * engine design parameter that absorbs error in the owner's amount and the content figures.
 */
export const SAFETY_MARGIN = 0.5;

interface DoseEstimation {
  agentUnit: string;
  requiresWords?: string[];
  agentMgPerGram: { default: number; kinds: Array<{ words: string[]; value: number; highCocoaPercent?: number; highCocoaValue?: number }> };
  unitGrams: Record<string, number | string>;
  /** A stated mass is per tablet (a strength): it needs a stated count to give an amount. */
  massIsPerUnit?: boolean;
}

/** Containers and vague quantities: without a stated mass, the amount cannot be read. */
const VAGUE = new Set(['bar', 'bars', 'box', 'boxes', 'bag', 'bags', 'packet', 'packets', 'pack', 'packs', 'tin', 'jar', 'tub', 'rest', 'whole', 'lot', 'lots', 'loads', 'all', 'some', 'most', 'several', 'many', 'handful', 'cake', 'brownie', 'brownies', 'biscuit', 'biscuits', 'cookie', 'cookies', 'egg', 'eggs']);

interface Prepared {
  toxin: Toxin;
  estimation: DoseEstimation;
  requires: Set<string> | null;
}

const MASS_GRAMS: Record<string, number> = { g: 1, gram: 1, grams: 1, gr: 1, kg: 1000, mg: 0.001, oz: 28.35, ounce: 28.35, ounces: 28.35 };
const COUNTS: Record<string, number> = { a: 1, an: 1, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, couple: 2, few: 3, half: 0.5 };

const prepared = new WeakMap<KnowledgeBase, Map<string, Prepared>>();

function byExposure(kb: KnowledgeBase): Map<string, Prepared> {
  let map = prepared.get(kb);
  if (map === undefined) {
    map = new Map();
    for (const t of kb.toxins) {
      const estimation = (t as Toxin & { doseEstimation?: DoseEstimation }).doseEstimation;
      if (t.exposureFinding !== undefined && estimation !== undefined) map.set(t.exposureFinding, { toxin: t, estimation, requires: estimation.requiresWords ? new Set(estimation.requiresWords) : null });
    }
    prepared.set(kb, map);
  }
  return map;
}

const numberOf = (raw: string | undefined): number | undefined => (raw === undefined ? undefined : /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : COUNTS[raw]);

/** "200g", "200 g", "0.5 kg": the mass in grams at token i, and the tokens it spans. */
function massAt(tokens: Token[], i: number): { grams: number; length: number } | null {
  const raw = tokens[i]!.raw;
  const joined = /^(\d+(?:\.\d+)?)(g|gr|grams?|kg|mg|oz)$/.exec(raw);
  if (joined) return { grams: Number(joined[1]) * MASS_GRAMS[joined[2]!]!, length: 1 };
  const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : undefined;
  const unit = tokens[i + 1]?.raw;
  if (n !== undefined && unit !== undefined && MASS_GRAMS[unit] !== undefined) return { grams: n * MASS_GRAMS[unit]!, length: 2 };
  return null;
}

/** The count written just before token i ("two", "2", "half a", "2 x"), or 1. */
function countBefore(tokens: Token[], i: number, from: number): number {
  let k = i - 1;
  if (k >= from && (tokens[k]!.raw === 'x' || tokens[k]!.raw === 'whole')) k--;
  if (k >= from && (tokens[k]!.raw === 'a' || tokens[k]!.raw === 'an') && tokens[k - 1]?.raw === 'half' && k - 1 >= from) return 0.5;
  const n = k >= from ? numberOf(tokens[k]!.raw) : undefined;
  return n ?? 1;
}

/** Grams of product eaten, read from the sentence, or null when no amount can be read. */
function gramsEaten(tokens: Token[], from: number, to: number, e: DoseEstimation, requires: Set<string> | null): { grams: number; read: string } | null {
  let mass: { grams: number; at: number } | null = null;
  let counted: { n: number; noun: string; each: number } | null = null;
  let vague = false;
  for (let i = from; i < to; i++) {
    const m: { grams: number; length: number } | null = mass === null ? massAt(tokens, i) : null;
    if (m !== null) {
      mass = { grams: m.grams, at: i };
      continue;
    }
    const raw = tokens[i]!.raw;
    if (VAGUE.has(raw)) vague = true;
    const noun = raw.replace(/s$/, '');
    const each = e.unitGrams[noun];
    if (counted !== null || typeof each !== 'number') continue;
    // "two squares", "a couple of squares", "12 tablets", "one 200mg ibuprofen tablet": the count
    // is before the noun, past "of", the strength and the drug's name.
    let k = i - 1;
    while (k >= from && (tokens[k]!.raw === 'of' || (mass !== null && mass.at === k) || requires?.has(tokens[k]!.raw) === true)) k--;
    const n = k >= from ? numberOf(tokens[k]!.raw) : undefined;
    if (n !== undefined) counted = { n, noun, each };
  }
  if (e.massIsPerUnit === true) {
    if (counted === null) return null;
    const each = mass?.grams ?? counted.each;
    return { grams: counted.n * each, read: `${counted.n} ${counted.noun}(s) of ${mass !== null ? '' : 'about '}${Math.round(each * 1000)} mg` };
  }
  if (mass !== null) {
    const count = countBefore(tokens, mass.at, from);
    return { grams: mass.grams * count, read: `${count === 1 ? '' : `${count} x `}${Math.round(mass.grams * 1000) / 1000} g` };
  }
  if (vague || counted === null) return null;
  return { grams: counted.n * counted.each, read: `${counted.n} ${counted.noun}(s) of about ${counted.each} g` };
}

function agentPerGram(tokens: Token[], from: number, to: number, e: DoseEstimation): { value: number; kind: string } {
  let percent: number | undefined;
  const words = new Set<string>();
  for (let i = from; i < to; i++) {
    words.add(tokens[i]!.raw);
    if (tokens[i + 1]?.raw === '%' && /^\d+$/.test(tokens[i]!.raw)) percent = Number(tokens[i]!.raw);
  }
  for (const k of e.agentMgPerGram.kinds) {
    if (!k.words.some((w) => words.has(w))) continue;
    if (k.highCocoaPercent !== undefined && percent !== undefined && percent >= k.highCocoaPercent) return { value: k.highCocoaValue!, kind: `${k.words[0]} (${percent}%)` };
    return { value: k.value, kind: k.words[0]! };
  }
  return { value: e.agentMgPerGram.default, kind: e.agentMgPerGram.kinds.length > 0 ? 'unstated kind' : 'the drug' };
}

const MILD = new Set(['vomiting', 'diarrhoea', 'hypersalivation', 'nausea']);
const signsOf = new WeakMap<KnowledgeBase, Map<string, Set<string>>>();

/** The toxin's findings (toxins.json) other than mild stomach upset. */
export function toxinSigns(kb: KnowledgeBase, toxin: string): ReadonlySet<string> {
  let map = signsOf.get(kb);
  if (map === undefined) {
    map = new Map(kb.toxins.map((t) => [t.code, new Set(((t as Toxin & { findings?: string[] }).findings ?? []).filter((f) => !MILD.has(f)))]));
    signsOf.set(kb, map);
  }
  return map.get(toxin) ?? new Set();
}

export function assessDose(kb: KnowledgeBase, species: KbSpecies, weightKg: number | null, exposure: string, tokens: Token[], from: number, to: number): DoseAssessment | null {
  if (weightKg === null || !(weightKg > 0)) return null;
  const p = byExposure(kb).get(exposure);
  if (p === undefined || !p.toxin.speciesAffected.includes(species)) return null;
  const thresholds = p.toxin.toxicDoses.filter((d) => d.species === species);
  if (thresholds.some((d) => d.unit === 'any' || d.value === 0)) return null;
  const perKg = `${p.estimation.agentUnit}/kg`;
  const lowest = Math.min(...thresholds.filter((d) => d.unit === perKg && d.value !== null && d.value > 0).map((d) => d.value!));
  if (!Number.isFinite(lowest)) return null;
  if (p.requires !== null) {
    let named = false;
    for (let i = from; i < to && !named; i++) named = p.requires.has(tokens[i]!.raw);
    if (!named) return null;
  }
  const eaten = gramsEaten(tokens, from, to, p.estimation, p.requires);
  if (eaten === null) return null;
  const content = agentPerGram(tokens, from, to, p.estimation);
  const dose = Math.round(((eaten.grams * content.value) / weightKg) * 100) / 100;
  return {
    toxin: p.toxin.code,
    exposureFinding: exposure,
    dose,
    unit: perKg,
    lowestToxicDose: lowest,
    belowToxicDose: dose < lowest * SAFETY_MARGIN,
    basis: `${eaten.read} of ${content.kind} at ${content.value} ${p.estimation.agentUnit}/g, for ${weightKg} kg; non-toxic only below ${SAFETY_MARGIN} x the lowest toxic dose`,
  };
}
