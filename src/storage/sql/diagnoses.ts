/** SQL for diagnostic reports, evidence links and provenance (used by the clinical transaction). */
import type { DiagnosisRecord, EvidenceLink, Page, ProvenanceRecord } from '../../clinical/ports.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { decodeEvidence, encodeEvidence } from './evidence-codec.js';
import { auditCtes, type AuditEvent } from './audit-chain.js';
import type { SharedWrite, SqlTx } from './executor.js';

interface DiagnosisRow {
  id: string;
  patient_id: string | null;
  encounter_id: string | null;
  consultation_id: string | null;
  species: string;
  triage_level: string;
  top_condition: string | null;
  kb_version: string;
  input: unknown;
  report: unknown;
  created_at: Date;
}

const toDiagnosis = (r: DiagnosisRow): DiagnosisRecord => ({
  id: r.id,
  patientId: r.patient_id,
  encounterId: r.encounter_id,
  consultationId: r.consultation_id,
  species: r.species,
  triageLevel: r.triage_level,
  topCondition: r.top_condition,
  kbVersion: r.kb_version,
  input: r.input,
  report: r.report,
  createdAt: r.created_at,
});

const REPORT_COLUMNS = 'clinic_id, id, patient_id, encounter_id, consultation_id, species, triage_level, top_condition, kb_version, input, report, created_at';
const PROVENANCE_COLUMNS = 'clinic_id, diagnosis_id, agents, kb_version, chain_digest, chain, request_id, session_id, recorded_at, evidence, models';

/** One diagnosis's rows and its audit event: a write several diagnoses of a batch send as one statement. */
export interface DiagnosisWrite extends SharedWrite {
  report: unknown[];
  provenance: unknown[];
  event: AuditEvent | null;
}

/**
 * The statement for diagnoses written together (one, or several units of a group commit): the
 * reports, their provenance with the evidence and their audit events as multi-row inserts in
 * data-modifying CTEs, the audit chain head upserted once. The foreign key from provenance to
 * the report is checked at the end of the statement, when the report rows exist.
 */
function diagnosisStatement(shared: readonly SharedWrite[]): { text: string; params: unknown[] } {
  const writes = shared as readonly DiagnosisWrite[];
  const params: unknown[] = [];
  const param = (v: unknown) => `$${params.push(v)}`;
  const rows = (values: unknown[]) => `(${values.map(param).join(', ')})`;
  const ctes = [
    `report AS (INSERT INTO diagnoses (${REPORT_COLUMNS}) VALUES ${writes.map((w) => rows(w.report)).join(', ')})`,
    `provenance AS (INSERT INTO diagnosis_provenance (${PROVENANCE_COLUMNS}) VALUES ${writes.map((w) => rows(w.provenance)).join(', ')})`,
  ];
  const events = writes.flatMap((w) => (w.event === null ? [] : [w.event]));
  if (events.length > 0) ctes.push(...auditCtes(events, param));
  return { text: `WITH ${ctes.join(', ')} SELECT 1`, params };
}

/** The report, its provenance with the evidence and (given) its audit event, as one write. */
export function diagnosisWrite(clinicId: string, d: DiagnosisRecord, evidence: EvidenceLink[], p: ProvenanceRecord, event: AuditEvent | null): DiagnosisWrite {
  return {
    statement: diagnosisStatement,
    report: [
      clinicId,
      d.id,
      d.patientId,
      d.encounterId,
      d.consultationId,
      d.species,
      d.triageLevel,
      d.topCondition,
      d.kbVersion,
      JSON.stringify(d.input),
      d.reportJson ?? JSON.stringify(d.report),
      d.createdAt,
    ],
    provenance: [
      clinicId,
      d.id,
      JSON.stringify(p.agents),
      p.kbVersion,
      p.chainDigest,
      JSON.stringify(p.chain),
      p.requestId,
      p.sessionId,
      p.recordedAt,
      encodeEvidence(evidence),
      p.models === undefined ? null : JSON.stringify(p.models),
    ],
    event,
  };
}

/** The same writes without an audit event. */
export function insertDiagnosis(tx: SqlTx, clinicId: string, d: DiagnosisRecord, evidence: EvidenceLink[], p: ProvenanceRecord): Promise<void> {
  return tx.write(diagnosisWrite(clinicId, d, evidence, p, null));
}

const COLUMNS = 'id, patient_id, encounter_id, consultation_id, species, triage_level, top_condition, kb_version, input, report, created_at';

export async function getDiagnosis(tx: SqlTx, clinicId: string, id: string): Promise<DiagnosisRecord | null> {
  const [row] = await tx.query<DiagnosisRow>(`SELECT ${COLUMNS} FROM diagnoses WHERE clinic_id = $1 AND id = $2`, [clinicId, id]);
  return row === undefined ? null : toDiagnosis(row);
}

export async function listDiagnoses(tx: SqlTx, clinicId: string, patientId: string, limit: number, cursor?: string): Promise<Page<DiagnosisRecord>> {
  const after = cursor === undefined ? null : decodeCursor(cursor, ['uuid'])[0];
  const rows = await tx.query<DiagnosisRow>(
    `SELECT ${COLUMNS} FROM diagnoses WHERE clinic_id = $1 AND patient_id = $2 AND ($3::uuid IS NULL OR id < $3::uuid) ORDER BY id DESC LIMIT $4`,
    [clinicId, patientId, after, limit + 1],
  );
  const more = rows.length > limit;
  const items = (more ? rows.slice(0, limit) : rows).map(toDiagnosis);
  return { items, nextCursor: more ? encodeCursor([items[items.length - 1]!.id]) : null };
}

export async function diagnosisTrace(tx: SqlTx, clinicId: string, id: string): Promise<{ evidence: EvidenceLink[]; besideReport: boolean; provenance: ProvenanceRecord } | null> {
  const [p] = await tx.query<{ agents: Record<string, string>; kb_version: string; chain_digest: string; chain: unknown; request_id: string; session_id: string | null; recorded_at: Date; evidence: unknown; models: ProvenanceRecord['models'] | null }>(
    'SELECT agents, kb_version, chain_digest, chain, request_id, session_id, recorded_at, evidence, models FROM diagnosis_provenance WHERE clinic_id = $1 AND diagnosis_id = $2',
    [clinicId, id],
  );
  if (p === undefined) return null;
  const provenance: ProvenanceRecord = { agents: p.agents, kbVersion: p.kb_version, chainDigest: p.chain_digest, chain: p.chain, requestId: p.request_id, sessionId: p.session_id, recordedAt: p.recorded_at };
  if (p.models !== null && p.models !== undefined) provenance.models = p.models;
  if (p.evidence !== null) return { provenance, evidence: decodeEvidence(p.evidence), besideReport: true };
  // Written before migration 4: one row per evidence link.
  const rows = await tx.query<{ conclusion_type: EvidenceLink['conclusionType']; conclusion_code: string; evidence_kind: string; evidence_ref: string; finding: string | null; detail: Record<string, unknown>; weight: number | null }>(
    'SELECT conclusion_type, conclusion_code, evidence_kind, evidence_ref, finding, detail, weight FROM diagnosis_evidence WHERE clinic_id = $1 AND diagnosis_id = $2 ORDER BY seq',
    [clinicId, id],
  );
  return {
    provenance,
    besideReport: false,
    evidence: rows.map((r) => ({ conclusionType: r.conclusion_type, conclusionCode: r.conclusion_code, evidenceKind: r.evidence_kind, evidenceRef: r.evidence_ref, finding: r.finding, detail: r.detail, weight: r.weight })),
  };
}
