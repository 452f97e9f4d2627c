/**
 * Assembling and checking a case before any agent runs: the patient (inline or from the record
 * store), the encounter's stored observations, and the request's own complaint, signs, vitals
 * and labs. Everything an agent cannot use is refused here with 422 naming the field, or kept
 * and reported, never silently dropped.
 */
import { labUnitProblems } from '../../agents/labs.js';
import type { CaseInput, CaseLab, CaseVitals } from '../../agents/types.js';
import type { KnowledgeBase } from '../../knowledge/load.js';
import type { ConsultationInputs } from '../../contract/diagnosis-schemas.js';
import { UnprocessableError, ValidationError } from '../errors.js';
import type { StoredRecord } from '../ports.js';

export type CaseFieldsInput = ConsultationInputs;

/** A lab result's problem type by the part at fault: its analyte, its value or its unit. */
const LAB_PROBLEM_TYPE: Record<string, string> = { analyte: 'unknown-lab-analyte', value: 'unreadable-lab-value', unit: 'unconvertible-unit' };

export interface PatientFacts {
  species: string;
  breed?: string | null;
  ageYears?: number | null;
  sex?: 'male' | 'female' | 'unknown';
  neutered?: boolean | null;
  weightKg?: number | null;
}

/** 422 for what the knowledge base cannot interpret at all; unknown analytes are kept instead. */
export function checkCaseFields(kb: KnowledgeBase, f: CaseFieldsInput, prefix = ''): void {
  (f.signs ?? []).forEach((code, i) => {
    if (!kb.findings.has(code)) throw new UnprocessableError('unknown-finding', `${prefix}signs[${i}] "${code}" is not a known finding code`, { field: `${prefix}signs[${i}]` });
  });
  (f.absentSigns ?? []).forEach((code, i) => {
    if (!kb.findings.has(code)) throw new UnprocessableError('unknown-finding', `${prefix}absentSigns[${i}] "${code}" is not a known finding code`, { field: `${prefix}absentSigns[${i}]` });
  });
  (f.treatments ?? []).forEach((code, i) => {
    if (!kb.drugs.has(code)) throw new UnprocessableError('unknown-drug', `${prefix}treatments[${i}] "${code}" is not a drug in the knowledge base`, { field: `${prefix}treatments[${i}]` });
  });
  const problems = labUnitProblems(kb, (f.labs ?? []) as CaseLab[]);
  if (problems.length > 0) {
    // The first problem names the type and the field; every one is listed, so a panel with
    // several unreadable results is corrected in one round.
    const first = problems[0]!;
    throw new UnprocessableError(LAB_PROBLEM_TYPE[first.field.slice(first.field.lastIndexOf('.') + 1)] ?? 'unreadable-lab', `${prefix}${first.field}: ${first.problem}`, {
      field: `${prefix}${first.field}`,
      ...(problems.length > 1 ? { problems: problems.map((p) => ({ field: `${prefix}${p.field}`, detail: p.problem })) } : {}),
    });
  }
}

export function checkSpecies(kb: KnowledgeBase, species: string, field: string): 'dog' | 'cat' {
  if (species === 'dog' || species === 'cat') {
    if (kb.conditions[species].length > 0) return species;
  }
  throw new UnprocessableError('unsupported-species', `${field} "${species}": the diagnostic knowledge base covers dogs and cats only`, { field });
}

export function requireOnePatient(req: { patientId?: string; patient?: unknown }): void {
  if ((req.patientId === undefined) === (req.patient === undefined)) {
    throw new ValidationError('Give exactly one of patientId or patient', { fields: ['patientId', 'patient'] });
  }
}

export function patientFactsFromRecord(rec: StoredRecord<unknown>, now = new Date()): PatientFacts {
  const c = rec.content as { species: string; breed: string | null; sex: 'male' | 'female' | 'unknown'; neutered: boolean; birthDate: string | null; weightKg: number | null };
  const ageYears = c.birthDate === null ? null : Math.round(((now.getTime() - Date.parse(`${c.birthDate}T00:00:00Z`)) / 86_400_000 / 365.25) * 10) / 10;
  return { species: c.species, breed: c.breed, sex: c.sex, neutered: c.neutered, ageYears, weightKg: c.weightKg };
}

const VITAL_CODES: Record<string, keyof CaseVitals> = {
  temperature: 'temperatureC',
  body_temperature: 'temperatureC',
  heart_rate: 'heartRate',
  pulse: 'heartRate',
  respiratory_rate: 'respiratoryRate',
  crt: 'crtSeconds',
  capillary_refill_time: 'crtSeconds',
  mucous_membranes: 'mucousMembranes',
  weight: 'weightKg',
  body_weight: 'weightKg',
};

interface ObservationContent {
  category: string;
  code: string;
  value: number | boolean | string;
  unit: string | null;
}

/** The encounter's stored observations as case inputs, each keeping its observation id. */
export function fromObservations(kb: KnowledgeBase, observations: Array<StoredRecord<unknown>>): Pick<CaseInput, 'signs' | 'vitals' | 'vitalSources' | 'labs'> {
  const out: Pick<CaseInput, 'signs' | 'vitals' | 'vitalSources' | 'labs'> = { signs: [], vitals: {}, vitalSources: {}, labs: [] };
  for (const rec of observations) {
    const o = rec.content as ObservationContent;
    if (o.category === 'laboratory' && (typeof o.value === 'number' || typeof o.value === 'string')) {
      out.labs.push({ analyte: o.code, value: o.value, unit: o.unit ?? '', observationId: rec.id });
    } else if (o.category === 'vital-sign' && VITAL_CODES[o.code] !== undefined) {
      const key = VITAL_CODES[o.code]!;
      (out.vitals as Record<string, unknown>)[key] = o.value;
      out.vitalSources![key] = rec.id;
    } else if (o.category === 'clinical-sign' && typeof o.value === 'boolean' && kb.findings.has(o.code)) {
      out.signs.push({ code: o.code, present: o.value, observationId: rec.id });
    }
  }
  return out;
}

/** The case the agents see: the patient's facts, with the merged inputs (a weight in the vitals wins). */
export function buildCase(species: CaseInput['species'], facts: PatientFacts, merged: ReturnType<typeof mergeCase>): CaseInput {
  return {
    species,
    breed: facts.breed ?? null,
    ageYears: facts.ageYears ?? null,
    sex: facts.sex ?? 'unknown',
    neutered: facts.neutered ?? null,
    weightKg: merged.vitals.weightKg ?? facts.weightKg ?? null,
    ...merged,
  };
}

/** Case fields from the request, added after any stored observations (the request wins on vitals). */
export function mergeCase(base: Pick<CaseInput, 'signs' | 'vitals' | 'vitalSources' | 'labs'>, parts: CaseFieldsInput[]): Pick<CaseInput, 'complaint' | 'signs' | 'vitals' | 'vitalSources' | 'labs' | 'mediaIds' | 'treatments'> {
  const merged = { complaint: '', signs: [...base.signs], vitals: { ...base.vitals }, vitalSources: { ...base.vitalSources }, labs: [...base.labs], mediaIds: [] as string[], treatments: [] as string[] };
  const complaints: string[] = [];
  for (const p of parts) {
    if (p.complaint) complaints.push(p.complaint.trim());
    for (const code of p.signs ?? []) merged.signs.push({ code, present: true });
    for (const code of p.absentSigns ?? []) merged.signs.push({ code, present: false });
    for (const [k, v] of Object.entries(p.vitals ?? {})) {
      (merged.vitals as Record<string, unknown>)[k] = v;
      delete merged.vitalSources[k as keyof CaseVitals];
    }
    merged.labs.push(...((p.labs ?? []) as CaseLab[]));
    merged.mediaIds.push(...(p.mediaIds ?? []));
    merged.treatments.push(...(p.treatments ?? []));
  }
  // Sentences stay separate so negation never reaches across two inputs.
  merged.complaint = complaints.map((c) => (/[.!?]$/.test(c) ? c : `${c}.`)).join(' ');
  merged.mediaIds = [...new Set(merged.mediaIds)];
  merged.treatments = [...new Set(merged.treatments)];
  return merged;
}
