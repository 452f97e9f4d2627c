/**
 * Labs: each value converted to the knowledge base's US unit, flagged against the species'
 * reference interval, and turned into findings (azotemia, hyperglycaemia, ...). An analyte the
 * knowledge base does not know is kept and reported as not interpreted, never dropped.
 */
import type { KnowledgeBase } from '../knowledge/load.js';
import type { Analyte, KbSpecies } from '../knowledge/model.js';
import type { CaseLab, EvidenceRef, FindingEvidence, LabResult, LabsOutput } from './types.js';

export const LABS_VERSION = '1.0.0';

/** Canonical spelling of a unit, so "µmol/l", "umol/L" and "μmol/L" compare equal. */
export function normaliseUnit(unit: string): string {
  return unit
    .trim()
    .toLowerCase()
    .replace(/[µμ]/g, 'u')
    .replace(/\s+/g, '')
    .replace(/^iu\/l$/, 'u/l')
    .replace(/⁹/g, '^9')
    .replace(/³/g, '^3')
    .replace(/^(k|thou)\/ul$/, 'x10^3/ul')
    .replace(/^10\^/, 'x10^')
    .replace(/^\((ratio)\)$/, '');
}

function ordinal(analyte: Analyte, value: number | string, unit: string): number | null {
  const scale = analyte.scale;
  if (scale === undefined) return null;
  // A strip's printed concentration ("500 mg/dL"): the grade of the highest block it reaches.
  const pads = typeof value === 'number' && Number.isFinite(value) ? analyte.pads?.find((p) => normaliseUnit(p.unit) === normaliseUnit(unit)) : undefined;
  if (pads !== undefined) {
    const v = value as number;
    if (v < 0) return null;
    if (v === 0) return scale.negative ?? null;
    let grade: number | null = null;
    for (const [name, block] of Object.entries(pads.grades)) if (v >= block * 0.999 && scale[name] !== undefined && (grade === null || scale[name] > grade)) grade = scale[name];
    // Above zero but under the lowest printed block: the lowest positive grade.
    return grade ?? Math.min(...Object.values(scale).filter((n) => n > (scale.negative ?? 0)));
  }
  const key = String(value).trim().toLowerCase().replace(/\s+/g, '');
  for (const [grade, n] of Object.entries(scale)) if (grade.toLowerCase() === key) return n;
  if (typeof value === 'number' && Object.values(scale).includes(value)) return value;
  return null;
}

/** A number, or a string that is one ("1.012" as a laboratory system may send it); else NaN. */
function numeric(value: number | string): number {
  if (typeof value === 'number') return value;
  return /^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$/.test(value) ? Number(value) : Number.NaN;
}

/** The value in US units, or why it cannot be converted and which field is at fault. */
export function toUS(analyte: Analyte, lab: Pick<CaseLab, 'value' | 'unit'>): { value: number } | { problem: string; field: 'value' | 'unit' } {
  const given = lab.unit ?? '';
  if (analyte.scale !== undefined) {
    const n = ordinal(analyte, typeof lab.value === 'string' && given !== '' && Number.isFinite(numeric(lab.value)) ? numeric(lab.value) : lab.value, given);
    const printed = analyte.pads?.length ? `, or a strip's printed concentration in ${analyte.pads.map((p) => p.unit).join(' or ')}` : '';
    if (n !== null) return { value: n };
    // A number in a unit no strip of this pad prints is the unit's fault; anything else the value's.
    const unitAtFault = Number.isFinite(numeric(lab.value)) && given.trim() !== '' && !analyte.pads?.some((p) => normaliseUnit(p.unit) === normaliseUnit(given));
    return { problem: `a ${analyte.name} result must be one of ${Object.keys(analyte.scale).join(', ')}${printed}`, field: unitAtFault && analyte.pads !== undefined ? 'unit' : 'value' };
  }
  const value = numeric(lab.value);
  if (!Number.isFinite(value)) return { problem: `a ${analyte.name} result must be a number`, field: 'value' };
  const unit = normaliseUnit(given);
  const us = normaliseUnit(analyte.unitUS);
  const si = normaliseUnit(analyte.unitSI);
  const use = `${analyte.unitUS}${analyte.unitSI !== analyte.unitUS ? ` or ${analyte.unitSI}` : ''}`;
  if (unit === us) return { value };
  if (unit === si && analyte.siFactor !== null) return { value: value / analyte.siFactor };
  if (given.trim() === '') return { problem: `a ${analyte.name} result needs its unit: ${use}`, field: 'unit' };
  return { problem: `unit "${given}" cannot be converted for ${analyte.analyte}; use ${use}`, field: 'unit' };
}

/** Units that cannot be converted, as field problems; checked before any agent runs. */
export function labUnitProblems(kb: KnowledgeBase, labs: CaseLab[]): Array<{ field: string; problem: string }> {
  const problems: Array<{ field: string; problem: string }> = [];
  labs.forEach((lab, i) => {
    const analyte = kb.analytes.get(lab.analyte);
    if (analyte === undefined) return;
    const converted = toUS(analyte, lab);
    if ('problem' in converted) problems.push({ field: `labs[${i}].${converted.field}`, problem: converted.problem });
  });
  return problems;
}

export function runLabs(kb: KnowledgeBase, species: KbSpecies, labs: CaseLab[]): LabsOutput {
  const results: LabResult[] = [];
  const findings: FindingEvidence[] = [];
  const notInterpreted: LabsOutput['notInterpreted'] = [];
  for (const lab of labs) {
    const analyte = kb.analytes.get(lab.analyte);
    if (analyte === undefined) {
      notInterpreted.push({ analyte: lab.analyte, reason: 'not in the knowledge base; kept with the case, not interpreted' });
      continue;
    }
    const interval = analyte[species];
    if (interval === undefined) {
      notInterpreted.push({ analyte: lab.analyte, reason: `no ${species} reference interval in the knowledge base` });
      continue;
    }
    const converted = toUS(analyte, lab);
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
      unit: lab.unit ?? '',
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
