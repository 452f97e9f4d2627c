/**
 * Labs: each analyte found by key, alias or LOINC code, its value read (lab-reading.ts) into the
 * knowledge base's US unit, flagged against the species' reference interval, and turned into
 * findings (azotemia, hyperglycaemia, ...). An analyte or LOINC code the knowledge base does not
 * know is kept and reported as not interpreted, never dropped.
 */
import { canonicalAnalyte, LOINC_SHAPE, loincCheckDigitOk, type AnalyteRef } from '../knowledge/analyte-index.js';
import type { KnowledgeBase } from '../knowledge/load.js';
import type { KbSpecies } from '../knowledge/model.js';
import { readLab } from './lab-reading.js';
import type { CaseLab, EvidenceRef, FindingEvidence, LabResult, LabsOutput } from './types.js';

export const LABS_VERSION = '1.1.1';

/** Names already resolved that are not written as the index keys them ("ALT", "Total Bilirubin"), per knowledge base. */
const resolved = new WeakMap<KnowledgeBase, Map<string, AnalyteRef | 'bad-loinc' | null>>();

/** The analyte a lab names, by key, alias, display name or LOINC code; "bad-loinc" for a LOINC-shaped code whose check digit is wrong. */
export function resolveAnalyte(kb: KnowledgeBase, name: string): AnalyteRef | 'bad-loinc' | undefined {
  const direct = kb.analyteIndex.get(name);
  if (direct !== undefined) return direct;
  let memo = resolved.get(kb);
  if (memo === undefined) resolved.set(kb, (memo = new Map()));
  const seen = memo.get(name);
  if (seen !== undefined) return seen ?? undefined;
  const trimmed = name.trim();
  const ref = LOINC_SHAPE.test(trimmed) ? (loincCheckDigitOk(trimmed) ? kb.analyteIndex.get(trimmed) : 'bad-loinc') : kb.analyteIndex.get(canonicalAnalyte(name));
  // Bounded: a client sending endless novel names must not grow the memo without limit.
  if (memo.size < 4096) memo.set(name, ref ?? null);
  return ref;
}

/** Units that cannot be converted, as field problems; checked before any agent runs. */
export function labUnitProblems(kb: KnowledgeBase, labs: CaseLab[]): Array<{ field: string; problem: string }> {
  const problems: Array<{ field: string; problem: string }> = [];
  labs.forEach((lab, i) => {
    const ref = resolveAnalyte(kb, lab.analyte);
    if (ref === undefined) return;
    if (ref === 'bad-loinc') {
      problems.push({ field: `labs[${i}].analyte`, problem: `"${lab.analyte}" is shaped like a LOINC code but its check digit is wrong` });
      return;
    }
    const read = readLab(ref, lab);
    if ('problem' in read) problems.push({ field: `labs[${i}].${read.field}`, problem: read.problem });
  });
  return problems;
}

export function runLabs(kb: KnowledgeBase, species: KbSpecies, labs: CaseLab[]): LabsOutput {
  const results: LabResult[] = [];
  const findings: FindingEvidence[] = [];
  const notInterpreted: LabsOutput['notInterpreted'] = [];
  for (const lab of labs) {
    const ref = resolveAnalyte(kb, lab.analyte);
    if (ref === undefined || ref === 'bad-loinc') {
      const what = LOINC_SHAPE.test(lab.analyte.trim()) ? (ref === 'bad-loinc' ? 'not a valid LOINC code (check digit)' : 'a LOINC code the knowledge base does not interpret') : 'not in the knowledge base';
      notInterpreted.push({ analyte: lab.analyte, reason: `${what}; kept with the case, not interpreted` });
      continue;
    }
    const analyte = ref.analyte;
    const interval = analyte[species];
    if (interval === undefined) {
      notInterpreted.push({ analyte: lab.analyte, reason: `no ${species} reference interval in the knowledge base` });
      continue;
    }
    const converted = readLab(ref, lab);
    if ('problem' in converted) {
      notInterpreted.push({ analyte: lab.analyte, reason: converted.problem });
      continue;
    }
    const v = converted.value;
    const flag: LabResult['flag'] = interval.low !== null && v < interval.low ? 'low' : interval.high !== null && v > interval.high ? 'high' : 'normal';
    results.push({
      analyte: analyte.analyte,
      name: analyte.name,
      value: lab.value,
      unit: converted.unit,
      ...(lab.analyte !== analyte.analyte ? { sentAs: lab.analyte } : {}),
      ...(ref.loinc !== undefined ? { loinc: ref.loinc.code } : {}),
      valueUS: Math.round(v * 1000) / 1000,
      flag,
      interval: { low: interval.low, high: interval.high, unit: analyte.unitUS, source: interval.source ?? `estimate: ${interval.basis ?? ''}` },
      ...(lab.observationId ? { observationId: lab.observationId } : {}),
    });
    const source: EvidenceRef = lab.observationId
      ? { kind: 'observation', ref: lab.observationId, value: lab.value, unit: lab.unit ?? '' }
      : { kind: 'lab', ref: analyte.analyte, value: lab.value, unit: lab.unit ?? '' };
    const derived = flag === 'low' ? analyte.derivedFindings?.low : flag === 'high' ? analyte.derivedFindings?.high : undefined;
    if (derived !== undefined) findings.push({ code: derived, present: true, source });
    for (const band of analyte.bands ?? []) if (v >= band.min && v <= band.max) findings.push({ code: band.finding, present: true, source });
  }
  return { results, findings, notInterpreted };
}
