/**
 * Diagnoses: assemble the case, run the agents, keep their working state in the session tier,
 * and persist the report, an evidence link for every conclusion, the provenance and the audit
 * event in ONE transaction. A report is explainable from the persistent tier alone.
 */
import { newSessionId, uuidv7 } from '../ids.js';
import { AGENT_VERSIONS, orchestrate, type AgentRegistry } from '../../agents/orchestrator.js';
import { IMAGING_VERSION, type CaseImage, type ImagingOutput } from '../../agents/imaging.js';
import type { CaseInput } from '../../agents/types.js';
import type { KnowledgeBase } from '../../knowledge/load.js';
import { buildCase, checkCaseFields, checkSpecies, fromObservations, mergeCase, patientFactsFromRecord, requireOnePatient, type CaseFieldsInput, type PatientFacts } from './case-input.js';
import { diagnosisReport, diagnosisReportJson, evidenceBesideReport, reportEvidence, type ReportEvidenceSource } from './diagnosis-report.js';
import type { Diagnosis, DiagnosisRequest } from '../../contract/diagnosis-schemas.js';
import type { ImageInfo } from '../../contract/schemas.js';
import { unusableImageWarning } from '../records/image-quality.js';
import { NotFoundError, UnprocessableError } from '../errors.js';
import { NO_DIAGNOSIS_METRICS, type DiagnosisMetrics } from '../metrics.js';
import { Operations, type Idempotency, type Replayable } from '../operation.js';
import { requirePermission } from '../access/permissions.js';
import type { DiagnosisRecord, Page, ProvenanceRecord, RequestContext } from '../ports.js';
import { RecordsService } from '../records/records.js';
import { SessionMetaCache } from './session-meta-cache.js';
import { readCaseImages, type CaseImagingDeps } from './case-imaging.js';
import type { ChainStep, TrackedSessions } from '../sessions.js';

export interface DiagnosisOptions {
  idem?: Idempotency;
  onStep?: (step: ChainStep) => void;
}

export interface DiagnosisOutcome {
  response: Replayable;
  /** The session tier was unreachable and in-process state was used instead. */
  sessionDegraded: boolean;
}

interface Assembled {
  input: CaseInput;
  patientId: string | null;
  encounterId: string | null;
  /** One per attached image flagged unusable at upload: which media and why (image-quality.ts). */
  mediaWarnings: string[];
  /** The attached images a model may read (image media not flagged unusable); absent when none. */
  images?: CaseImage[];
}

/** An earlier request with the same Idempotency-Key stored this response: nothing more runs. */
interface Replay {
  replay: Replayable;
}

type PatientRef = { patientId?: string; patient?: PatientFacts; encounterId?: string };

const CREATE_DIAGNOSIS = { action: 'create', entityType: 'diagnosis', entityId: null } as const;

export class DiagnosesService {
  constructor(
    private readonly ops: Operations,
    private readonly registry: AgentRegistry,
    private readonly sessions: () => TrackedSessions,
    readonly sessionTtlSeconds: number,
    private readonly metrics: DiagnosisMetrics = NO_DIAGNOSIS_METRICS,
    /** L1 of session metadata, shared with consultations (which fill it as they create and read). */
    readonly sessionMeta: SessionMetaCache = new SessionMetaCache(),
    /** The models, runtime and image bytes of the imaging agent; null: images are not interpreted. */
    private readonly imaging: CaseImagingDeps | null = null,
  ) {}

  get knowledge(): KnowledgeBase {
    return this.registry.kb;
  }

  /**
   * The case from the request plus, with patientId/encounterId, the stored patient and
   * observations. With an Idempotency-Key the earlier response is looked up in the same read
   * transaction, before any agent runs: a diagnosis takes one read transaction at most.
   */
  private async assemble(ctx: RequestContext, req: PatientRef, parts: CaseFieldsInput[]): Promise<Assembled>;
  private async assemble(ctx: RequestContext, req: PatientRef, parts: CaseFieldsInput[], idem: Idempotency | undefined): Promise<Assembled | Replay>;
  private async assemble(ctx: RequestContext, req: PatientRef, parts: CaseFieldsInput[], idem?: Idempotency): Promise<Assembled | Replay> {
    const kb = this.registry.kb;
    requireOnePatient(req);
    parts.forEach((p) => checkCaseFields(kb, p));
    let facts: PatientFacts = req.patient ?? { species: '' };
    let base: ReturnType<typeof fromObservations> = { signs: [], vitals: {}, vitalSources: {}, labs: [] };
    const mediaIds = [...new Set(parts.flatMap((p) => p.mediaIds ?? []))];
    const mediaWarnings: string[] = [];
    let images: CaseImage[] | undefined;
    const reads = req.patientId !== undefined || req.encounterId !== undefined || mediaIds.length > 0;
    if (reads || idem !== undefined) {
      const draft = reads ? { action: 'read' as const, entityType: 'patient', entityId: req.patientId ?? null, detail: { purpose: 'diagnosis' } } : { ...CREATE_DIAGNOSIS, outcome: 'checked' };
      const replay = await this.ops.run(ctx, draft, async (tx, d) => {
        if (idem !== undefined) {
          const found = await Operations.replayOf(tx, idem);
          if (found !== null) {
            // What this transaction did is the replay: its audit event says so.
            Object.assign(d, CREATE_DIAGNOSIS, { outcome: 'replayed', detail: undefined });
            return found;
          }
          // Nothing to replay and nothing read: no event of its own (the create writes one).
          if (!reads) d.skipAudit = true;
        }
        if (req.patientId !== undefined) facts = patientFactsFromRecord(await RecordsService.live(tx, 'patient', req.patientId, 'Patient'));
        if (req.encounterId !== undefined) {
          const enc = await RecordsService.live(tx, 'encounter', req.encounterId, 'Encounter');
          if (req.patientId !== undefined && (enc.content as { patientId: string }).patientId !== req.patientId) {
            throw new UnprocessableError('invalid-reference', 'encounterId belongs to another patient', { field: 'encounterId' });
          }
          const observations = [];
          let cursor: string | undefined;
          do {
            const page = await tx.listChildren('observation', req.encounterId, 200, cursor);
            observations.push(...page.items);
            cursor = page.nextCursor ?? undefined;
          } while (cursor !== undefined);
          base = fromObservations(kb, observations);
        }
        for (const id of mediaIds) {
          const media = await RecordsService.live(tx, 'media', id, 'Media').catch((err: unknown) => {
            throw err instanceof NotFoundError ? new UnprocessableError('invalid-reference', `mediaIds: ${id} does not name media of this clinic`, { field: 'mediaIds' }) : err;
          });
          const content = media.content as { image?: ImageInfo | null; contentType: string; sha256: string };
          const warning = unusableImageWarning(id, content.image);
          if (warning !== null) mediaWarnings.push(warning);
          else if (content.contentType.startsWith('image/')) (images ??= []).push({ mediaId: id, sha256: content.sha256 });
        }
        return null;
      });
      if (replay !== null) return { replay };
    }
    const species = checkSpecies(kb, facts.species, req.patientId !== undefined ? 'patient species' : 'patient.species');
    // Stored observations are not re-checked: one in a unit the agents cannot convert is kept
    // and reported as not interpreted, like an unknown analyte.
    const merged = mergeCase(base, parts);
    const assembled: Assembled = {
      patientId: req.patientId ?? null,
      encounterId: req.encounterId ?? null,
      input: buildCase(species, facts, merged),
      mediaWarnings,
    };
    if (images !== undefined) assembled.images = images;
    return assembled;
  }

  /**
   * Checks a patient reference as a diagnosis would (the patient, the encounter, the species)
   * and returns the patient it names: a consultation starts only on a reference that holds.
   */
  async checkPatient(ctx: RequestContext, ref: PatientRef): Promise<{ patientId: string | null }> {
    const { patientId } = await this.assemble(ctx, ref, []);
    return { patientId };
  }

  /** POST /v1/diagnoses: one shot. */
  diagnose(ctx: RequestContext, req: DiagnosisRequest, opts: DiagnosisOptions = {}): Promise<DiagnosisOutcome> {
    const { patientId, patient, encounterId, consultationId, ...fields } = req;
    return this.diagnoseCase(ctx, { patientId, patient, encounterId }, [fields], consultationId === undefined ? null : { id: consultationId, loaded: false }, opts);
  }

  /**
   * The one diagnosis path, for a one-shot request and a consultation alike: one read (the
   * stored patient and observations, an earlier response to the same Idempotency-Key), the
   * agents, one write. `consultation` names the session the chain is appended to; `loaded`
   * says the caller has just read it (else it is checked here, before the agents run).
   */
  async diagnoseCase(ctx: RequestContext, ref: PatientRef, parts: CaseFieldsInput[], consultation: { id: string; loaded: boolean } | null, opts: DiagnosisOptions = {}): Promise<DiagnosisOutcome> {
    requirePermission(ctx, 'diagnoses:run');
    const assembled = await this.assemble(ctx, ref, parts, opts.idem);
    if ('replay' in assembled) return { response: assembled.replay, sessionDegraded: false };
    if (consultation !== null && !consultation.loaded) {
      // The consultation exists for this clinic and is about the same patient, so a chain is
      // never appended to another patient's session.
      const meta = await this.sessionMeta.lookup(this.sessions(), ctx.principal.clinicId, consultation.id);
      if (meta === null) throw new NotFoundError('Consultation', consultation.id);
      if (meta.patientId !== assembled.patientId) {
        throw new UnprocessableError('invalid-reference', 'consultationId belongs to another patient', { field: 'consultationId' });
      }
    }
    return this.run(ctx, assembled, consultation?.id ?? null, opts);
  }

  /**
   * Runs the agents on an assembled case and persists the result in one write transaction. The
   * report is serialised once: that text is stored and sent.
   */
  private async run(ctx: RequestContext, assembled: Assembled, consultationId: string | null, opts: DiagnosisOptions): Promise<DiagnosisOutcome> {
    const sessions = this.sessions();
    const ttl = this.sessionTtlSeconds;
    const sessionId = consultationId ?? newSessionId();
    const now = new Date().toISOString();
    const id = uuidv7();
    let input = assembled.input;
    let imaging: ImagingOutput | null = null;
    let inputWarnings = assembled.mediaWarnings;
    if (assembled.images !== undefined && this.imaging !== null) {
      // Before the agents: what the models read is case input (the diagnosis id picks canaries).
      const read = await readCaseImages(this.imaging, ctx.principal.clinicId, assembled.images, id);
      imaging = read.output;
      if (read.warnings.length > 0) inputWarnings = [...inputWarnings, ...read.warnings];
      if (imaging !== null) input = { ...input, imageFindings: imaging.findings, imagesRead: imaging.read };
    }
    const result = await orchestrate(this.registry, input, { onStep: opts.onStep });
    this.metrics.agentSteps(result.steps);
    const working = { steps: result.steps, encodedSteps: result.stepJson, messages: result.messages };
    if (consultationId === null) {
      // A one-shot diagnosis: its session is created with the chain in one operation (nobody
      // knows its id before the answer).
      const meta = { id: sessionId, clinicId: ctx.principal.clinicId, patientId: assembled.patientId, createdAt: now, updatedAt: now };
      await sessions.create(meta, ttl, working);
      this.sessionMeta.remember(meta);
    } else if (!(await sessions.write(ctx.principal.clinicId, sessionId, working, ttl))) {
      throw new NotFoundError('Consultation', sessionId);
    }
    const createdAt = new Date();
    const diagnosis = diagnosisReport({
      id,
      createdAt: createdAt.toISOString(),
      requestId: ctx.requestId,
      patientId: assembled.patientId,
      encounterId: assembled.encounterId,
      sessionId,
      input,
      result,
      inputWarnings,
      ...(imaging === null ? {} : { imaging }),
      kbVersion: this.registry.kb.version,
      sessionStore: sessions.degraded ? 'memory-fallback' : sessions.kind,
    });
    const reportJson = diagnosisReportJson(diagnosis, result);
    const response = await this.ops.create(ctx, { ...CREATE_DIAGNOSIS }, opts.idem, async (tx, draft) => {
      draft.entityId = id;
      if (assembled.patientId !== null) draft.detail = { patientId: assembled.patientId };
      const record: DiagnosisRecord = {
        id,
        patientId: assembled.patientId,
        encounterId: assembled.encounterId,
        consultationId: sessionId,
        species: input.species,
        triageLevel: diagnosis.triage.level,
        topCondition: diagnosis.differentials[0]?.code ?? null,
        kbVersion: this.registry.kb.version,
        input,
        report: diagnosis,
        reportJson,
        createdAt,
      };
      const provenance: ProvenanceRecord = {
        agents: { ...AGENT_VERSIONS },
        kbVersion: this.registry.kb.version,
        chainDigest: result.chainDigest,
        chain: result.steps.map((s) => ({ seq: s.seq, agent: s.agent, agentVersion: s.agentVersion, inputDigest: s.inputDigest, status: s.status, durationMs: s.durationMs, at: s.at })),
        requestId: ctx.requestId,
        sessionId,
        recordedAt: createdAt,
      };
      if (imaging !== null) {
        provenance.agents.imaging = IMAGING_VERSION;
        if (imaging.models.length > 0) provenance.models = imaging.models;
      }
      // Only the evidence the report does not itself carry is stored beside it (the trace derives
      // the rest from the report); the audit event goes in the same statement.
      await tx.insertDiagnosis(record, evidenceBesideReport(result, this.registry.kb), provenance, { ...draft, outcome: draft.outcome ?? 'success' });
      draft.skipAudit = true;
      return { status: 201, body: diagnosis, bodyJson: reportJson, location: `/v1/diagnoses/${id}` };
      // Nothing but that write: diagnoses committed together send their rows in one statement.
    }, { writesOnly: true });
    // A replay returns the first request's report; only a new commit changes the triage mix.
    if (response.replayed !== true) this.metrics.diagnosisRecorded(diagnosis.triage.level);
    return { response, sessionDegraded: sessions.degraded };
  }

  get(ctx: RequestContext, id: string): Promise<Diagnosis> {
    return this.ops.run(ctx, { action: 'read', entityType: 'diagnosis', entityId: id }, async (tx) => {
      const d = await tx.getDiagnosis(id);
      if (d === null) throw new NotFoundError('Diagnosis', id);
      return d.report as Diagnosis;
    });
  }

  trace(ctx: RequestContext, id: string) {
    return this.ops.run(ctx, { action: 'read', entityType: 'diagnosis', entityId: id, detail: { view: 'trace' } }, async (tx) => {
      const d = await tx.getDiagnosis(id);
      const t = d === null ? null : await tx.diagnosisTrace(id);
      if (d === null || t === null) throw new NotFoundError('Diagnosis', id);
      const conclusions = new Map<string, { type: string; code: string; evidence: unknown[] }>();
      const evidence = t.besideReport ? reportEvidence(d.report as ReportEvidenceSource, (d.input as CaseInput).mediaIds, t.evidence) : t.evidence;
      for (const e of evidence) {
        const key = `${e.conclusionType}:${e.conclusionCode}`;
        const c = conclusions.get(key) ?? { type: e.conclusionType, code: e.conclusionCode, evidence: [] };
        c.evidence.push({ kind: e.evidenceKind, ref: e.evidenceRef, finding: e.finding, weight: e.weight, ...e.detail });
        conclusions.set(key, c);
      }
      return {
        diagnosisId: id,
        createdAt: d.createdAt.toISOString(),
        input: d.input,
        conclusions: [...conclusions.values()],
        provenance: { ...t.provenance, recordedAt: t.provenance.recordedAt.toISOString() },
      };
    });
  }

  listForPatient(ctx: RequestContext, patientId: string, limit: number, cursor?: string): Promise<Page<Diagnosis>> {
    return this.ops.run(ctx, { action: 'search', entityType: 'diagnosis', entityId: null, detail: { patientId } }, async (tx) => {
      await RecordsService.live(tx, 'patient', patientId, 'Patient');
      const page = await tx.listDiagnoses(patientId, limit, cursor);
      return { items: page.items.map((d) => d.report as Diagnosis), nextCursor: page.nextCursor };
    });
  }
}
