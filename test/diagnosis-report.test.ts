/**
 * The trace's fixed rule (reportEvidence) on both stored report formats: differential agent
 * 1.0.0 wrote each evidence item's source inline, 1.1.0 names the finding and keeps its source
 * once, in the report's findings. A trace must not depend on which of the two was stored.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentRegistry, orchestrate } from '../src/agents/orchestrator.js';
import type { Differential } from '../src/agents/types.js';
import { diagnosisReport, diagnosisReportJson, evidenceBesideReport, reportEvidence, type ReportEvidenceSource } from '../src/clinical/diagnoses/diagnosis-report.js';
import { loadKnowledgeBase } from '../src/knowledge/load.js';
import { caseFromRequest, loadVignettes } from './vignettes/evaluate.js';

const kb = loadKnowledgeBase();
const registry = new AgentRegistry(kb, null, { default: 1000, narrative: 1000 });

async function reportOf(request: Parameters<typeof caseFromRequest>[1], opts: Parameters<typeof orchestrate>[2] = {}, sessionStore = 'memory') {
  const input = caseFromRequest(kb, request);
  const result = await orchestrate(registry, input, opts);
  const report = diagnosisReport({ id: 'd', createdAt: '2026-12-04T00:00:00.000Z', requestId: 'r', patientId: null, encounterId: null, sessionId: 's', input, result, kbVersion: kb.version, sessionStore });
  // What the service stores and sends: spliced from the agents' JSON, and no different.
  assert.equal(diagnosisReportJson(report, result), JSON.stringify(report));
  // As the trace reads it: the stored text parsed back.
  return { input, result, report: JSON.parse(JSON.stringify(report)) as ReportEvidenceSource };
}

/** The same report as differential 1.0.0 stored it: every item with its source inline. */
function asVersion100(differentials: Differential[], findings: ReportEvidenceSource['findings']): Differential[] {
  const sourceOf = new Map(findings.map((f) => [f.code, f.source]));
  return differentials.map((d) => ({ ...d, evidence: d.evidence.map((e) => ({ finding: e.finding, present: e.present, source: e.source ?? sourceOf.get(e.finding), weight: e.weight })) }));
}

describe('reportEvidence', () => {
  it('gives the same links for a compact report and for the inline-source form, on every vignette', async () => {
    let items = 0;
    for (const v of loadVignettes()) {
      const { input, result, report } = await reportOf(v.request);
      const beside = evidenceBesideReport(result, kb);
      const compact = reportEvidence(report, input.mediaIds, beside);
      const legacy = reportEvidence({ ...report, differentials: asVersion100(report.differentials, report.findings) }, input.mediaIds, beside);
      assert.deepEqual(compact, legacy, v.id);
      for (const d of report.differentials) {
        for (const e of d.evidence) {
          items++;
          // Only signalment items keep a source of their own; a finding's is looked up by code.
          assert.equal(e.source === undefined, report.findings.some((f) => f.code === e.finding), `${v.id} ${d.code} ${e.finding}`);
          if (e.source !== undefined) assert.equal(e.source.kind, 'signalment');
        }
      }
    }
    assert.ok(items > 1000, `only ${items} evidence items checked`);
  });

  it('splices the same report text when agents failed, fell back or left parts out, and when the session tier fell back', async () => {
    const request = loadVignettes()[0]!.request;
    const boom = () => {
      throw new Error('injected');
    };
    for (const agent of ['intake', 'labs', 'differential', 'triage', 'plan', 'narrative'] as const) await reportOf(request, { overrides: { [agent]: boom } });
    await reportOf(request, {}, 'memory-fallback');
  });

  it('refuses a report whose evidence names a finding it does not list, rather than invent a source', async () => {
    const { input, report } = await reportOf({ patient: { species: 'dog', ageYears: 6, weightKg: 30 }, complaint: 'vomiting since this morning' });
    const broken = { ...report, findings: [] };
    assert.throws(() => reportEvidence(broken, input.mediaIds, []), /has no source among the report's findings/);
  });
});

describe('report text', () => {
  // A single character above U+00FF (the narrative's em dash did it) turns the report's JSON into
  // a two-byte string, which V8 encodes to UTF-8 at about half the speed, twice per diagnosis.
  it('is Latin-1 throughout when the case is, on every vignette', async () => {
    for (const v of loadVignettes()) {
      if (/[^\x00-\xff]/.test(JSON.stringify(v.request))) continue;
      const input = caseFromRequest(kb, v.request);
      const result = await orchestrate(registry, input);
      const report = diagnosisReport({ id: 'd', createdAt: '2026-12-04T00:00:00.000Z', requestId: 'r', patientId: null, encounterId: null, sessionId: 's', input, result, kbVersion: kb.version, sessionStore: 'redis' });
      const json = diagnosisReportJson(report, result);
      assert.doesNotMatch(json, /[^\x00-\xff]/, `${v.id}: ${json.match(/.{0,40}[^\x00-\xff].{0,20}/)?.[0]}`);
      for (const step of result.stepJson) assert.doesNotMatch(step, /[^\x00-\xff]/, v.id);
    }
  });
});
