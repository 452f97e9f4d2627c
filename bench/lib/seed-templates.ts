/**
 * Real diagnoses to replicate: each vignette (test/vignettes/vignettes.json) in a few variants
 * (age, weight and vitals varied with a seeded PRNG; variant 0 is the vignette as written) run
 * through the real agents (orchestrate), with the evidence links, the report and the provenance
 * exactly as DiagnosesService.run builds them for a diagnosis requested by patientId. Each is
 * compiled into COPY lines with placeholders for what differs between copies (ids, clinic,
 * patient, session, request, times).
 */
import { AGENT_VERSIONS, AgentRegistry, orchestrate, type OrchestratorResult } from '../../src/agents/orchestrator.js';
import type { CaseInput } from '../../src/agents/types.js';
import { diagnosisReport, evidenceBesideReport, evidenceLinks } from '../../src/clinical/diagnoses/diagnosis-report.js';
import { encodeEvidence } from '../../src/storage/sql/evidence-codec.js';
import type { Diagnosis, DiagnosisRequest } from '../../src/contract/diagnosis-schemas.js';
import type { KnowledgeBase } from '../../src/knowledge/load.js';
import { caseFromRequest, loadVignettes } from '../../test/vignettes/evaluate.js';
import { esc, escJson, NULL, orNull } from './seed-copy.js';
import type { Rng } from './seed-data.js';

type Slot = 'CLINIC' | 'ID' | 'PATIENT' | 'SESSION' | 'REQUEST' | 'CREATED' | 'AT0' | 'AT1' | 'AT2' | 'AT3' | 'AT4' | 'AT5';
const mark = (slot: Slot) => `@@${slot}@@`;
const SLOT = /@@(CLINIC|ID|PATIENT|SESSION|REQUEST|CREATED|AT[0-5])@@/;

/** A line with slots, split once; fill() joins the fixed parts with the values. */
class LineTemplate {
  private readonly parts: string[] = [];
  private readonly slots: Slot[] = [];

  constructor(text: string) {
    const pieces = text.split(SLOT);
    pieces.forEach((piece, i) => {
      if (i % 2 === 0) this.parts.push(piece);
      else this.slots.push(piece as Slot);
    });
  }

  fill(values: Partial<Record<Slot, string>>): string {
    let out = this.parts[0]!;
    for (let i = 0; i < this.slots.length; i++) out += values[this.slots[i]!]! + this.parts[i + 1]!;
    return out;
  }
}

export interface DiagnosisTemplate {
  family: number;
  variant: number;
  species: 'dog' | 'cat';
  breed: string | null;
  sex: 'male' | 'female' | 'unknown';
  neutered: boolean | null;
  ageYears: number | null;
  weightKg: number | null;
  triageLevel: string;
  evidenceCount: number;
  diagnosisLine: LineTemplate;
  provenanceLine: LineTemplate;
  /** How long before createdAt each chain step ended, ms. */
  stepOffsetsMs: number[];
  /** Milliseconds the agents took (the gap between the patient read and the diagnosis). */
  agentsMs: number;
}

export interface Filled {
  diagnosis: string;
  provenance: string;
}

export function fillTemplate(t: DiagnosisTemplate, v: { clinicId: string; id: string; patientId: string; sessionId: string; requestId: string; createdMs: number }): Filled {
  const created = new Date(v.createdMs).toISOString();
  const values: Partial<Record<Slot, string>> = { CLINIC: v.clinicId, ID: v.id, PATIENT: v.patientId, SESSION: v.sessionId, REQUEST: v.requestId, CREATED: created };
  const slots = ['AT0', 'AT1', 'AT2', 'AT3', 'AT4', 'AT5'] as const;
  t.stepOffsetsMs.forEach((off, i) => (values[slots[i]!] = new Date(v.createdMs - off).toISOString()));
  return { diagnosis: t.diagnosisLine.fill(values), provenance: t.provenanceLine.fill(values) };
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** The vignette with signalment and vitals moved a little; variant 0 is unchanged. */
function vary(req: DiagnosisRequest, variant: number, rng: Rng): DiagnosisRequest {
  if (variant === 0) return req;
  const r = structuredClone(req);
  const p = r.patient!;
  if (typeof p.ageYears === 'number') p.ageYears = Math.max(0.2, round1(p.ageYears * (0.75 + 0.5 * rng())));
  if (typeof p.weightKg === 'number') p.weightKg = Math.max(0.3, round1(p.weightKg * (0.88 + 0.24 * rng())));
  const vt = r.vitals;
  if (vt !== undefined) {
    if (typeof vt.heartRate === 'number') vt.heartRate = Math.round(vt.heartRate * (0.92 + 0.16 * rng()));
    if (typeof vt.respiratoryRate === 'number') vt.respiratoryRate = Math.max(4, Math.round(vt.respiratoryRate * (0.9 + 0.2 * rng())));
    if (typeof vt.temperatureC === 'number') vt.temperatureC = round1(vt.temperatureC + (rng() - 0.5) * 0.6);
  }
  return r;
}

/** The service's own report, for a diagnosis by patientId on PostgreSQL + Redis, with slots for what varies. */
function report(input: CaseInput, r: OrchestratorResult, kbVersion: string): Diagnosis {
  return diagnosisReport({
    id: mark('ID'),
    createdAt: mark('CREATED'),
    requestId: mark('REQUEST'),
    patientId: mark('PATIENT'),
    encounterId: null,
    sessionId: mark('SESSION'),
    input,
    result: r,
    kbVersion,
    sessionStore: 'redis',
  });
}

export interface TemplateSet {
  templates: DiagnosisTemplate[];
  /** Template indexes per family (vignette). */
  families: number[][];
  vignettes: number;
  agentCpuMsPerDiagnosis: number;
}

export async function buildTemplates(kb: KnowledgeBase, variantsPerVignette: number, rng: Rng, budgetMs = 250): Promise<TemplateSet> {
  // The service's default budgets (AGENTICPET_AGENT_BUDGET_MS, no LLM).
  const registry = new AgentRegistry(kb, null, { default: budgetMs, narrative: budgetMs });
  const vignettes = loadVignettes();
  const templates: DiagnosisTemplate[] = [];
  const families: number[][] = [];
  const cpu0 = process.cpuUsage();
  let runs = 0;
  for (const [family, v] of vignettes.entries()) {
    families.push([]);
    for (let variant = 0; variant < variantsPerVignette; variant++) {
      const input = caseFromRequest(kb, vary(v.request, variant, rng));
      let result: OrchestratorResult | undefined;
      for (let attempt = 0; attempt < 5 && result === undefined; attempt++) {
        const r = await orchestrate(registry, input);
        runs++;
        // A step over budget on a busy machine would store a degraded answer: run it again.
        if (r.steps.every((s) => s.status === 'ok')) result = r;
      }
      if (result === undefined) throw new Error(`vignette ${v.id} variant ${variant}: an agent kept failing or timing out`);
      const links = evidenceLinks(result, input, kb);
      const diag = report(input, result, kb.version);
      const lastAt = Date.parse(result.steps.at(-1)!.at);
      const chain = result.steps.map((s, i) => ({ seq: s.seq, agent: s.agent, agentVersion: s.agentVersion, inputDigest: s.inputDigest, status: s.status, durationMs: s.durationMs, at: mark(`AT${i}` as Slot) }));
      const stepOffsetsMs = result.steps.map((s) => lastAt - Date.parse(s.at) + 1);
      const top = diag.differentials[0]?.code ?? null;
      const diagnosisLine = [mark('CLINIC'), mark('ID'), mark('PATIENT'), NULL, mark('SESSION'), input.species, diag.triage.level, orNull(top), kb.version, escJson(input), escJson(diag), mark('CREATED')].join('\t') + '\n';
      // As the service writes it since migration 4: the links the report does not carry, compact,
      // in the provenance row; no diagnosis_evidence rows (the trace derives the rest from the report).
      const beside = encodeEvidence(evidenceBesideReport(result, kb));
      const provenanceLine = [mark('CLINIC'), mark('ID'), escJson({ ...AGENT_VERSIONS }), kb.version, result.chainDigest, escJson(chain), mark('REQUEST'), mark('SESSION'), mark('CREATED'), esc(beside)].join('\t') + '\n';
      families[family]!.push(templates.length);
      templates.push({
        family,
        variant,
        species: input.species,
        breed: input.breed,
        sex: input.sex,
        neutered: input.neutered,
        ageYears: input.ageYears,
        weightKg: input.weightKg,
        triageLevel: diag.triage.level,
        evidenceCount: links.length,
        diagnosisLine: new LineTemplate(diagnosisLine),
        provenanceLine: new LineTemplate(provenanceLine),
        stepOffsetsMs,
        agentsMs: Math.max(1, Math.round(result.steps.reduce((sum, s) => sum + s.durationMs, 0))),
      });
    }
  }
  const cpu = process.cpuUsage(cpu0);
  return { templates, families, vignettes: vignettes.length, agentCpuMsPerDiagnosis: (cpu.user + cpu.system) / 1000 / runs };
}
