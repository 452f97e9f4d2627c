/**
 * Triage: red-flag findings and critical vital signs (knowledge base vitals.json) set the floor;
 * the differential can only raise it. Missing an emergency is the worst error this system can
 * make, so every rule escalates and none de-escalates.
 */
import type { KnowledgeBase } from '../knowledge/load.js';
import type { KbSpecies } from '../knowledge/model.js';
import type { CaseVitals, DifferentialOutput, FindingEvidence, TriageLevel, TriageOutput, TriageReason } from './types.js';

export const TRIAGE_VERSION = '1.1.0';

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
  for (const f of present) {
    const flag = redFlags.get(f.code);
    if (flag) reasons.push({ level: 'emergency', reason: `Red flag (${kb.findings.get(f.code)?.name ?? f.code}): ${flag.reason}`, source: f.source, basis: flag.source ?? flag.basis });
  }
  for (const p of kb.vitals.parameters) {
    const value = vitals[p.code];
    if (value === undefined) continue;
    const critical = p.critical?.[species];
    const range = p[species];
    if (critical && ((critical.low !== undefined && value < critical.low) || (critical.high !== undefined && value > critical.high))) {
      reasons.push({ level: 'emergency', reason: `Critical ${p.name}: ${value} ${p.unit}`, source: { kind: 'vital', ref: p.code, value, unit: p.unit }, basis: critical.source ?? critical.basis });
    } else if (referenceRangeApplies(p.code, species, ageYears, panting) && ((range.low !== null && value < range.low) || (range.high !== null && value > range.high))) {
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
  return { level, reasons: reasons.sort((a, b) => rank(b.level) - rank(a.level)) };
}
