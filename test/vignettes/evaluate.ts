/**
 * Runs the vignettes through the real agents (no HTTP, no database) and scores them: top-1 and
 * top-3 accuracy of the expected condition, triage accuracy, and emergency sensitivity (share of
 * emergency vignettes triaged emergency). Used by `npm run eval` and by the quality tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentRegistry, orchestrate } from '../../src/agents/orchestrator.js';
import type { CaseInput, TriageLevel } from '../../src/agents/types.js';
import { buildCase, checkCaseFields, checkSpecies, mergeCase, type CaseFieldsInput } from '../../src/clinical/diagnoses/case-input.js';
import type { DiagnosisRequest } from '../../src/contract/diagnosis-schemas.js';
import { loadKnowledgeBase, type KnowledgeBase } from '../../src/knowledge/load.js';

export interface Vignette {
  id: string;
  description: string;
  request: DiagnosisRequest;
  /**
   * conditionCode: a code of data/knowledge/conditions/<species>.json, or for a case written
   * without the knowledge base, its `condition` (plain English) mapped to one; a code the
   * knowledge base lacks simply never matches.
   */
  expected: { conditionCode: string; condition?: string; acceptable?: string[]; triage: TriageLevel };
}

export interface VignetteResult {
  id: string;
  expected: Vignette['expected'];
  /** 'refused' when the request was not accepted (the reason is in `refused`). */
  triage: TriageLevel | 'refused';
  /** Why the API would answer 422 to this request; the case then counts as missed. */
  refused?: string;
  top: Array<{ code: string; probability: number }>;
  top1: boolean;
  top3: boolean;
  triageCorrect: boolean;
  warnings: string[];
}

export interface Evaluation {
  count: number;
  top1: number;
  top3: number;
  triageAccuracy: number;
  emergencySensitivity: number;
  emergencies: number;
  /** Non-emergencies triaged emergency (over-triage), as a share of non-emergencies. */
  overTriage: number;
  /** Emergencies triaged below emergency (refused ones included), as a count. */
  emergenciesUnderTriaged: number;
  /** Self-care and routine cases triaged urgent or emergency, as a share of them. */
  minorOverTriage: number;
  /** Requests the API would refuse (422). */
  refused: number;
  meanMsPerCase: number;
  results: VignetteResult[];
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** The vignettes of a file in this format (default: the tuned set beside this module). */
export function loadVignettes(file: string = path.join(here, 'vignettes.json')): Vignette[] {
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { vignettes: Vignette[] }).vignettes;
}

const RANK: Record<TriageLevel, number> = { 'self-care': 0, routine: 1, urgent: 2, emergency: 3 };

export function caseFromRequest(kb: KnowledgeBase, req: DiagnosisRequest): CaseInput {
  const { patient, patientId: _p, encounterId: _e, consultationId: _c, ...fields } = req;
  if (patient === undefined) throw new Error('vignettes carry an inline patient');
  checkCaseFields(kb, fields as CaseFieldsInput);
  const merged = mergeCase({ signs: [], vitals: {}, vitalSources: {}, labs: [] }, [fields as CaseFieldsInput]);
  return buildCase(checkSpecies(kb, patient.species, 'patient.species'), patient, merged);
}

export async function evaluate(kb: KnowledgeBase = loadKnowledgeBase(), vignettes: Vignette[] = loadVignettes()): Promise<Evaluation> {
  const registry = new AgentRegistry(kb, null, { default: 1000, narrative: 1000 });
  const results: VignetteResult[] = [];
  const started = performance.now();
  for (const v of vignettes) {
    let input: CaseInput;
    try {
      input = caseFromRequest(kb, v.request);
    } catch (err) {
      results.push({ id: v.id, expected: v.expected, triage: 'refused', refused: (err as Error).message, top: [], top1: false, top3: false, triageCorrect: false, warnings: [] });
      continue;
    }
    const r = await orchestrate(registry, input);
    const ranked = r.outputs.differential?.differentials ?? [];
    const good = new Set([v.expected.conditionCode, ...(v.expected.acceptable ?? [])]);
    const triage = r.outputs.triage?.level ?? 'emergency';
    results.push({
      id: v.id,
      expected: v.expected,
      triage,
      top: ranked.slice(0, 3).map((d) => ({ code: d.code, probability: d.probability })),
      top1: ranked[0] !== undefined && good.has(ranked[0].code),
      top3: ranked.slice(0, 3).some((d) => good.has(d.code)),
      triageCorrect: triage === v.expected.triage,
      warnings: r.warnings,
    });
  }
  const share = (n: number, d: number) => (d === 0 ? 0 : Math.round((n / d) * 1000) / 1000);
  const emergencies = results.filter((r) => r.expected.triage === 'emergency');
  const others = results.filter((r) => r.expected.triage !== 'emergency');
  const minor = results.filter((r) => RANK[r.expected.triage] <= RANK.routine);
  return {
    count: results.length,
    top1: share(results.filter((r) => r.top1).length, results.length),
    top3: share(results.filter((r) => r.top3).length, results.length),
    triageAccuracy: share(results.filter((r) => r.triageCorrect).length, results.length),
    emergencySensitivity: share(emergencies.filter((r) => r.triage === 'emergency').length, emergencies.length),
    emergencies: emergencies.length,
    overTriage: share(others.filter((r) => r.triage === 'emergency').length, others.length),
    emergenciesUnderTriaged: emergencies.filter((r) => r.triage !== 'emergency').length,
    minorOverTriage: share(minor.filter((r) => r.triage !== 'refused' && RANK[r.triage] >= RANK.urgent).length, minor.length),
    refused: results.filter((r) => r.triage === 'refused').length,
    meanMsPerCase: Math.round(((performance.now() - started) / Math.max(1, results.length)) * 1000) / 1000,
    results,
  };
}
