/**
 * The report a diagnosis answers with and stores, and the evidence link behind each of its
 * conclusions: pure functions of the agents' output and the case, shared by the service and the
 * seed script.
 */
import { IMAGING_VERSION, type ImageReading, type ImagingOutput } from '../../agents/imaging.js';
import { AGENT_VERSIONS, type OrchestratorResult } from '../../agents/orchestrator.js';
import type { CaseInput, Differential, EvidenceRef, FindingEvidence, PlanOutput, TriageOutput } from '../../agents/types.js';
import type { KnowledgeBase } from '../../knowledge/load.js';
import type { Diagnosis } from '../../contract/diagnosis-schemas.js';
import type { EvidenceLink } from '../ports.js';

export interface ReportParts {
  id: string;
  createdAt: string;
  requestId: string;
  patientId: string | null;
  encounterId: string | null;
  sessionId: string;
  input: CaseInput;
  result: OrchestratorResult;
  /** Warnings about the case's inputs found while reading them (an attached image flagged unusable). */
  inputWarnings?: string[];
  kbVersion: string;
  /** redis, memory, or memory-fallback when Redis was unreachable (the report then says so). */
  sessionStore: string;
  /** What the imaging agent read, when a model ran on the case's images. */
  imaging?: ImagingOutput;
}

/** The report a diagnosis answers with and stores: the agents' outputs and their provenance. */
export function diagnosisReport(p: ReportParts): Diagnosis {
  const o = p.result.outputs;
  const degraded = p.sessionStore === 'memory-fallback';
  const report: Diagnosis = {
    id: p.id,
    createdAt: p.createdAt,
    patientId: p.patientId,
    encounterId: p.encounterId,
    consultationId: p.sessionId,
    species: p.input.species,
    triage: o.triage ?? { level: 'emergency', reasons: [] },
    differentials: o.differential?.differentials ?? [],
    findings: p.result.findings,
    labs: o.labs?.results ?? [],
    plan: o.plan ?? null,
    narrative: o.narrative ?? null,
    warnings: [...p.result.warnings, ...(p.inputWarnings ?? []), ...(degraded ? ['Session tier unreachable: working state kept in this process only'] : [])],
    provenance: {
      knowledgeBaseVersion: p.kbVersion,
      agents: { ...AGENT_VERSIONS },
      chainDigest: p.result.chainDigest,
      requestId: p.requestId,
      sessionStore: p.sessionStore,
    },
  };
  // Only on a diagnosis a model read images for (last, so the report of one without is unchanged).
  if (p.imaging !== undefined) {
    if (p.imaging.models.length > 0) report.provenance.models = p.imaging.models;
    report.imaging = { agentVersion: IMAGING_VERSION, readings: p.imaging.readings };
  }
  return report;
}

/** The JSON of `value` when `text` (from the orchestrator) is that JSON, else serialised now. */
const reuse = (value: unknown, same: boolean, text: string | undefined): string => (same && text !== undefined ? text : JSON.stringify(value));

/**
 * The report's JSON, spliced from the JSON the orchestrator already serialised the agents' outputs
 * to (triage, differential list, plan, narrative: most of a report's bytes) instead of serialising
 * them a second time. Byte for byte what JSON.stringify(report) gives (a test checks it on every
 * vignette); the keys in diagnosisReport's order, each part reused only when the report holds that
 * very output object.
 */
export function diagnosisReportJson(r: Diagnosis, result: OrchestratorResult): string {
  const o = result.outputs;
  const t = result.outputJson;
  const j = JSON.stringify;
  // The differential's output is {differentials, considered}; its list is sliced from that text.
  let differentials: string | undefined;
  const dt = t.differential;
  if (dt !== undefined && o.differential !== undefined && r.differentials === o.differential.differentials) {
    const head = '{"differentials":';
    const tail = `,"considered":${j(o.differential.considered)}}`;
    if (dt.startsWith(head) && dt.endsWith(tail)) differentials = dt.slice(head.length, dt.length - tail.length);
  }
  return (
    `{"id":${j(r.id)},"createdAt":${j(r.createdAt)},"patientId":${j(r.patientId)},"encounterId":${j(r.encounterId)},"consultationId":${j(r.consultationId)},"species":${j(r.species)}` +
    `,"triage":${reuse(r.triage, r.triage === o.triage, t.triage)}` +
    `,"differentials":${differentials ?? j(r.differentials)}` +
    `,"findings":${j(r.findings)},"labs":${j(r.labs)}` +
    `,"plan":${reuse(r.plan, r.plan === o.plan, t.plan)}` +
    `,"narrative":${reuse(r.narrative, r.narrative === o.narrative, t.narrative)}` +
    `,"warnings":${j(r.warnings)},"provenance":${j(r.provenance)}${r.imaging === undefined ? '' : `,"imaging":${j(r.imaging)}`}}`
  );
}

/** The parts of a report its evidence links are read from (as built, or as stored and read back). */
export interface ReportEvidenceSource {
  differentials: Differential[];
  /** Where each finding came from: a differential's evidence item names its finding by code. */
  findings: FindingEvidence[];
  triage: TriageOutput;
  plan: PlanOutput | null;
  /** What models read on the case's images (reports of diagnoses with images a model read). */
  imaging?: { readings: ImageReading[] };
}

const detailOf = (s: { text?: string; start?: number; end?: number; value?: unknown; unit?: string; model?: unknown }) =>
  Object.fromEntries(Object.entries({ text: s.text, start: s.start, end: s.end, value: s.value, unit: s.unit, model: s.model }).filter(([, v]) => v !== undefined));

/**
 * The evidence links the report does not carry itself, stored beside it: a toxin note's exposure
 * finding comes from the knowledge base of the day, which a later trace must not depend on.
 */
export function evidenceBesideReport(r: OrchestratorResult, kb: KnowledgeBase): EvidenceLink[] {
  const links: EvidenceLink[] = [];
  for (const t of r.outputs.plan?.toxins ?? []) {
    const finding = kb.toxins.find((x) => x.code === t.toxin)?.exposureFinding;
    const exposure = r.findings.find((f) => f.present && f.code === finding);
    links.push({ conclusionType: 'plan', conclusionCode: `toxin:${t.toxin}`, evidenceKind: exposure?.source.kind ?? 'finding', evidenceRef: exposure?.source.ref ?? t.toxin, finding: exposure?.code ?? null, detail: { doses: t.doses, ...(exposure ? detailOf(exposure.source) : {}) }, weight: null });
  }
  return links;
}

/**
 * An evidence link for every conclusion: each differential, the triage level and each plan item,
 * read from the report and the links stored beside it (evidenceBesideReport), in one fixed order.
 * A pure function of what is stored, so the trace explains a diagnosis from the database alone;
 * its rules are part of the stored format and must not change for reports already written.
 */
export function reportEvidence(report: ReportEvidenceSource, mediaIds: readonly string[], beside: readonly EvidenceLink[]): EvidenceLink[] {
  const links: EvidenceLink[] = [];
  // Reports of differential agent 1.0.0 carry each item's source inline; later ones carry it for
  // signalment only and name the finding, whose source is in the report's findings (one per code).
  const sourceOf = new Map<string, EvidenceRef>(report.findings.map((f) => [f.code, f.source]));
  for (const d of report.differentials) {
    for (const e of d.evidence) {
      const source = e.source ?? sourceOf.get(e.finding);
      if (source === undefined) throw new Error(`diagnosis report: evidence finding ${e.finding} of ${d.code} has no source among the report's findings`);
      links.push({ conclusionType: 'differential', conclusionCode: d.code, evidenceKind: source.kind, evidenceRef: source.ref, finding: e.finding, detail: { present: e.present, probability: d.probability, ...detailOf(source) }, weight: e.weight });
    }
    if (d.evidence.length === 0) links.push({ conclusionType: 'differential', conclusionCode: d.code, evidenceKind: 'prior', evidenceRef: 'knowledge-base', finding: null, detail: { probability: d.probability, note: 'ranked on prior and signalment alone' }, weight: null });
  }
  const top = report.differentials[0]?.code;
  for (const id of mediaIds) {
    // An image a model read names each version that read it and what it read it as.
    const readings = report.imaging?.readings.filter((r) => r.mediaId === id) ?? [];
    const detail = readings.length === 0 ? { interpreted: false } : { interpreted: true, readBy: readings.map((r) => ({ model: r.model, readAs: r.readAs, findings: r.findings })) };
    links.push({ conclusionType: 'differential', conclusionCode: top ?? 'none', evidenceKind: 'media', evidenceRef: id, finding: null, detail, weight: null });
  }
  const triage = report.triage;
  for (const reason of triage.reasons) {
    links.push({
      conclusionType: 'triage',
      conclusionCode: triage.level,
      evidenceKind: reason.source?.kind ?? 'rule',
      evidenceRef: reason.source?.ref ?? 'differential',
      finding: null,
      detail: { reasonLevel: reason.level, reason: reason.reason, ...(reason.basis ? { basis: reason.basis } : {}), ...(reason.source ? detailOf(reason.source) : {}) },
      weight: null,
    });
  }
  const plan = report.plan;
  for (const t of plan?.tests ?? []) for (const c of t.forConditions) links.push({ conclusionType: 'plan', conclusionCode: `test:${t.test}`, evidenceKind: 'condition', evidenceRef: c, finding: null, detail: {}, weight: null });
  for (const t of plan?.treatments ?? []) {
    links.push({ conclusionType: 'plan', conclusionCode: `treatment:${t.drug}`, evidenceKind: t.forCondition ? 'condition' : 'request', evidenceRef: t.forCondition ?? 'treatments', finding: null, detail: { role: t.role, sources: t.doses.map((d) => d.source) }, weight: null });
  }
  links.push(...beside);
  for (const b of plan?.blocked ?? []) {
    links.push({ conclusionType: 'plan', conclusionCode: `blocked:${b.drug}`, evidenceKind: 'knowledge', evidenceRef: b.source, finding: null, detail: { reason: b.reason, because: b.because }, weight: null });
  }
  return links;
}

/** Every evidence link of a fresh result (what reportEvidence reads back from its stored report). */
export function evidenceLinks(r: OrchestratorResult, input: CaseInput, kb: KnowledgeBase): EvidenceLink[] {
  const o = r.outputs;
  return reportEvidence({ differentials: o.differential?.differentials ?? [], findings: r.findings, triage: o.triage ?? { level: 'emergency', reasons: [] }, plan: o.plan ?? null }, input.mediaIds, evidenceBesideReport(r, kb));
}
