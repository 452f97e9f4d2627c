/**
 * Triage: red-flag findings and critical vital signs (knowledge base vitals.json) set the floor;
 * the differential can only raise it. Missing an emergency is the worst error this system can
 * make, so every rule escalates and none de-escalates. Two rules are read in context, each only
 * where the knowledge base names the context and the case shows it whole: a red flag that the owner
 * only compared or asked about, beside the benign event that is described in those words (a
 * reverse sneeze "like she can't breathe"), and a vital sign that a lab-confirmed leading diagnosis
 * causes at rest (a hyperthyroid cat's tachycardia). Both say so in the reasons.
 */
import type { KnowledgeBase } from '../knowledge/load.js';
import type { Condition, KbSpecies } from '../knowledge/model.js';
import type { CaseVitals, DifferentialOutput, FindingEvidence, TriageLevel, TriageOutput, TriageReason } from './types.js';

export const TRIAGE_VERSION = '1.2.0';

export const LEVELS: readonly TriageLevel[] = ['self-care', 'routine', 'urgent', 'emergency'];
const rank = (l: TriageLevel) => LEVELS.indexOf(l);

/**
 * Engine thresholds on the differential (design parameters, not clinical facts): escalate to
 * emergency when emergency conditions together reach this posterior, and to a condition's own
 * urgency when it alone reaches CONDITION_SHARE.
 */
export const EMERGENCY_SHARE = 0.2;
export const CONDITION_SHARE = 0.25;
/**
 * A vital-sign deviation is read as explained by a condition (its `explainsVitals`) only when that
 * condition alone holds this share of the differential (engine parameter: a near-settled diagnosis,
 * such as hyperthyroidism with a raised T4, not one candidate among several), a laboratory finding
 * it lists is present, and it lists every clinical sign present.
 */
export const EXPLAINED_SHARE = 0.8;

interface Explaining {
  vitals: NonNullable<Condition['explainsVitals']>;
  /** The clinical signs the condition lists: it explains a vital only in a case it accounts for whole. */
  signs: ReadonlySet<string>;
}
/** Per knowledge base, the conditions that explain a vital sign, by species and code (built once). */
const explainsCache = new WeakMap<KnowledgeBase, Map<string, Explaining>>();
function explainsOf(kb: KnowledgeBase, species: KbSpecies, code: string): Explaining | undefined {
  let map = explainsCache.get(kb);
  if (map === undefined) {
    map = new Map();
    for (const sp of Object.keys(kb.conditions) as KbSpecies[]) {
      for (const c of kb.conditions[sp]) if (c.explainsVitals !== undefined) map.set(`${sp}:${c.code}`, { vitals: c.explainsVitals, signs: new Set(c.findings.map((f) => f.code)) });
    }
    explainsCache.set(kb, map);
  }
  return map.get(`${species}:${code}`);
}

/**
 * vitals.json's reference ranges are for adults at rest: heart and respiratory rates run higher
 * in puppies and kittens (under about 6 months, an engine parameter), and a panting dog's
 * respiratory rate is not a resting one. There the reference range is not applied (no finding,
 * no urgent reason); the critical thresholds always are.
 */
export const JUVENILE_YEARS = 0.5;

export function referenceRangeApplies(code: string, species: KbSpecies, ageYears: number | null | undefined, panting: boolean): boolean {
  if ((code === 'heartRate' || code === 'respiratoryRate') && ageYears !== null && ageYears !== undefined && ageYears < JUVENILE_YEARS) return false;
  return !(code === 'respiratoryRate' && species === 'dog' && panting);
}

export function runTriage(
  kb: KnowledgeBase,
  species: KbSpecies,
  vitals: CaseVitals,
  findings: FindingEvidence[],
  differential: DifferentialOutput | undefined,
  unreadComplaint = false,
  ageYears: number | null = null,
): TriageOutput {
  const reasons: TriageReason[] = [];
  const present = findings.filter((f) => f.present);
  const panting = present.some((f) => f.code === 'panting_excessive');
  const redFlags = new Map(kb.vitals.redFlagFindings.filter((r) => r.species === undefined || r.species.includes(species)).map((r) => [r.code, r]));
  // Notes say why a rule did not escalate; they raise nothing and do not stand in for a reason.
  const notes: TriageReason[] = [];
  for (const f of present) {
    const flag = redFlags.get(f.code);
    if (!flag) continue;
    const name = kb.findings.get(f.code)?.name ?? f.code;
    // Only a hedged mention ("like she can't breathe", "is this a seizure?") beside the benign event
    // it describes is set aside; a red flag stated plainly is raised whatever else is present.
    const mimic = f.uncertain === true ? flag.mimics?.find((m) => present.some((p) => p.code === m.finding)) : undefined;
    if (mimic !== undefined) {
      notes.push({ level: 'self-care', reason: `Red flag (${name}) not raised: it was only compared or asked about, beside ${kb.findings.get(mimic.finding)?.name ?? mimic.finding}, which owners describe in those words`, source: f.source, basis: mimic.source ?? mimic.basis });
      continue;
    }
    reasons.push({ level: 'emergency', reason: `Red flag (${name}): ${flag.reason}`, source: f.source, basis: flag.source ?? flag.basis });
  }
  const leader = differential?.differentials[0];
  let explains = leader !== undefined && leader.probability >= EXPLAINED_SHARE && leader.urgency !== 'emergency' ? explainsOf(kb, species, leader.code) : undefined;
  // Settled means confirmed by a laboratory finding the condition lists (a raised T4), not inferred
  // from signs alone. And a sign the leading condition does not list (sudden blindness beside a
  // hyperthyroid cat's tachycardia) means the case is more than that condition: its vital signs are
  // then read as usual.
  if (explains !== undefined) {
    const signs = explains.signs;
    const category = (f: FindingEvidence) => kb.findings.get(f.code)?.category;
    if (!present.some((f) => signs.has(f.code) && category(f) === 'lab') || present.some((f) => !signs.has(f.code) && category(f) === 'clinical_sign')) explains = undefined;
  }
  for (const p of kb.vitals.parameters) {
    const value = vitals[p.code];
    if (value === undefined) continue;
    const critical = p.critical?.[species];
    const range = p[species];
    const isCritical = critical !== undefined && ((critical.low !== undefined && value < critical.low) || (critical.high !== undefined && value > critical.high));
    const outside = referenceRangeApplies(p.code, species, ageYears, panting) && ((range.low !== null && value < range.low) || (range.high !== null && value > range.high));
    if (!isCritical && !outside) continue;
    const direction = range.high !== null && value > range.high ? 'high' : 'low';
    const explained = explains?.vitals.find((e) => e.parameter === p.code && e.direction === direction && (direction === 'high' ? value <= e.limit : value >= e.limit));
    if (explained !== undefined && leader !== undefined) {
      reasons.push({ level: leader.urgency, reason: `${p.name} ${value} ${p.unit} is ${isCritical ? 'past the critical threshold' : 'outside the reference range'}, as ${leader.name} (${Math.round(leader.probability * 100)}%) causes at rest`, source: { kind: 'vital', ref: p.code, value, unit: p.unit }, basis: explained.source ?? explained.basis });
    } else if (isCritical) {
      reasons.push({ level: 'emergency', reason: `Critical ${p.name}: ${value} ${p.unit}`, source: { kind: 'vital', ref: p.code, value, unit: p.unit }, basis: critical.source ?? critical.basis });
    } else {
      reasons.push({ level: 'urgent', reason: `${p.name} outside the reference range: ${value} ${p.unit}`, source: { kind: 'vital', ref: p.code, value, unit: p.unit }, basis: range.source ?? range.basis });
    }
  }
  if (vitals.mucousMembranes !== undefined) {
    const mm = kb.vitals.mucousMembranes.find((m) => m.value === vitals.mucousMembranes);
    if (mm && vitals.mucousMembranes !== 'pink') {
      reasons.push({ level: mm.critical ? 'emergency' : 'urgent', reason: `Mucous membranes ${vitals.mucousMembranes}`, source: { kind: 'vital', ref: 'mucousMembranes', value: vitals.mucousMembranes }, basis: mm.source ?? mm.basis });
    }
  }
  if (differential !== undefined && differential.differentials.length > 0) {
    const emergencies = differential.differentials.filter((d) => d.urgency === 'emergency');
    const share = emergencies.reduce((s, d) => s + d.probability, 0);
    if (share >= EMERGENCY_SHARE) {
      reasons.push({ level: 'emergency', reason: `Emergency conditions account for ${Math.round(share * 100)}% of the differential (${emergencies.slice(0, 3).map((d) => d.name).join(', ')})` });
    }
    for (const d of differential.differentials) {
      if (d.probability >= CONDITION_SHARE) reasons.push({ level: d.urgency, reason: `${d.name} (${Math.round(d.probability * 100)}%) is ${d.urgency === 'self-care' ? 'usually managed at home' : `${d.urgency} by nature`}` });
    }
  }
  // A complaint nothing of which was recognised may describe anything: never guess it minor.
  if (unreadComplaint) reasons.push({ level: 'urgent', reason: 'The complaint could not be read (no finding recognised in it): a veterinary professional should read it before it is called minor' });
  if (reasons.length === 0) {
    reasons.push({ level: present.length > 0 ? 'routine' : 'self-care', reason: present.length > 0 ? 'No red flags; findings call for a routine consultation' : 'No findings of concern' });
  }
  const level = reasons.reduce<TriageLevel>((max, r) => (rank(r.level) > rank(max) ? r.level : max), 'self-care');
  return { level, reasons: [...reasons.sort((a, b) => rank(b.level) - rank(a.level)), ...notes] };
}
