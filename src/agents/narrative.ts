/**
 * Narrative: a concise SOAP summary. The template is the default and always available; an LLM
 * (through the LlmClient port, off unless configured) may rewrite it, within a timeout, and the
 * template is used whenever it fails.
 */
import type { CaseInput, DifferentialOutput, FindingEvidence, LabsOutput, NarrativeOutput, PlanOutput, TriageOutput } from './types.js';

/**
 * 1.0.1: the assessment line joins the triage level and its first reason with a colon, not an em
 * dash. The template's text is then all Latin-1, so V8 keeps the narrative, and every JSON text
 * that holds it (the step, the 9 KB report sent to PostgreSQL and to the client), as one-byte
 * strings: building the report's JSON and encoding it twice to UTF-8 took 36 µs with the dash
 * against 14 µs without it (CPU per report over the 69 vignettes, best of 7 rounds).
 */
export const NARRATIVE_VERSION = '1.0.1';

export interface LlmClient {
  readonly model: string;
  complete(system: string, user: string, signal: AbortSignal): Promise<string>;
}

export interface NarrativeInput {
  patient: Pick<CaseInput, 'species' | 'breed' | 'ageYears' | 'sex' | 'neutered' | 'weightKg'>;
  findings: FindingEvidence[];
  findingNames: Record<string, string>;
  labs: LabsOutput | undefined;
  triage: TriageOutput | undefined;
  differential: DifferentialOutput | undefined;
  plan: PlanOutput | undefined;
}

const pct = (p: number) => `${Math.round(p * 100)}%`;

export function templateNarrative(n: NarrativeInput): string {
  const p = n.patient;
  const who = [p.ageYears === null ? null : `${p.ageYears}-year-old`, p.neutered === null ? null : p.neutered ? 'neutered' : 'entire', p.sex === 'unknown' ? null : p.sex, p.breed, p.species]
    .filter((x) => x !== null && x !== '')
    .join(' ');
  const name = (code: string) => n.findingNames[code] ?? code.replace(/_/g, ' ');
  const present = n.findings.filter((f) => f.present).map((f) => `${name(f.code)}${f.durationDays !== undefined ? ` (${f.durationDays >= 1 ? `${Math.round(f.durationDays)} d` : '<1 d'})` : ''}`);
  const absent = n.findings.filter((f) => !f.present).map((f) => name(f.code));
  const abnormalLabs = (n.labs?.results ?? []).filter((r) => r.flag !== 'normal').map((r) => `${r.name} ${r.value} ${r.unit} (${r.flag})`);
  const top = (n.differential?.differentials ?? []).slice(0, 3).map((d) => `${d.name} ${pct(d.probability)}`);
  const lines = [
    `S: ${who || 'Patient'}${p.weightKg !== null ? `, ${p.weightKg} kg` : ''}. Reported: ${present.length ? present.join(', ') : 'no specific findings'}${absent.length ? `; no ${absent.join(', no ')}` : ''}.`,
    `O: ${abnormalLabs.length ? `Abnormal results: ${abnormalLabs.join('; ')}.` : 'No abnormal laboratory results supplied.'}`,
    `A: Triage ${n.triage?.level ?? 'unavailable'}${n.triage?.reasons[0] ? `: ${n.triage.reasons[0].reason.replace(/\.$/, '')}` : ''}. Differential: ${top.length ? top.join('; ') : 'unavailable'}.`,
    `P: ${n.plan?.tests.length ? `Tests: ${n.plan.tests.map((t) => t.test).join('; ')}.` : 'No tests suggested.'}${n.plan?.treatments.length ? ` Consider: ${n.plan.treatments.map((t) => t.name).join(', ')}.` : ''}${n.plan?.blocked.length ? ` Avoid: ${n.plan.blocked.map((b) => `${b.name} (${b.reason})`).join('; ')}.` : ''}`,
  ];
  return lines.join('\n');
}

const SYSTEM = 'You are a veterinary clinical scribe. Rewrite the SOAP summary you are given more fluently for a veterinarian, in at most 120 words. Keep every number, drug, probability and warning exactly; add nothing that is not in it.';

export async function runNarrative(n: NarrativeInput, llm: LlmClient | null, timeoutMs: number): Promise<NarrativeOutput & { warning?: string }> {
  const text = templateNarrative(n);
  if (llm === null) return { text, generator: 'template' };
  try {
    const rewritten = await llm.complete(SYSTEM, text, AbortSignal.timeout(timeoutMs));
    if (rewritten.trim() === '') throw new Error('empty completion');
    return { text: rewritten.trim(), generator: 'llm' };
  } catch (err) {
    return { text, generator: 'template', warning: `LLM narrative unavailable (${(err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err as Error).message}); template used` };
  }
}
