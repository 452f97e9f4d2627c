/**
 * Consultations: a session in the ephemeral tier that gathers inputs over several calls and is
 * diagnosed when the clinician asks. The session holds the reasoning chain, per-agent results
 * and inter-agent messages; the diagnosis itself is persisted like any other.
 */
import { checkCaseFields, type PatientFacts } from './case-input.js';
import type { ConsultationInputs, ConsultationRequest } from '../../contract/diagnosis-schemas.js';
import { newSessionId } from '../ids.js';
import { type DiagnosesService, type DiagnosisOptions, type DiagnosisOutcome } from './diagnoses.js';
import { NotFoundError } from '../errors.js';
import { Operations } from '../operation.js';
import { requirePermission } from '../access/permissions.js';
import type { RequestContext } from '../ports.js';
import type { SessionState, TrackedSessions } from '../sessions.js';

/** The first input of every consultation: who the patient is. */
interface Opening {
  kind: 'opening';
  patientId?: string;
  patient?: PatientFacts;
  encounterId?: string;
}

interface Added extends ConsultationInputs {
  kind: 'inputs';
}

export interface ConsultationView {
  id: string;
  patientId: string | null;
  createdAt: string;
  updatedAt: string;
  expiresInSeconds: number;
  inputs: unknown[];
  chain: SessionState['chain'];
  results: SessionState['results'];
  messages: SessionState['messages'];
  sessionStore: string;
}

export class ConsultationsService {
  constructor(
    private readonly ops: Operations,
    private readonly diagnoses: DiagnosesService,
    private readonly sessions: () => TrackedSessions,
  ) {}

  private view(state: SessionState, sessions: TrackedSessions): ConsultationView {
    return {
      id: state.meta.id,
      patientId: state.meta.patientId,
      createdAt: state.meta.createdAt,
      updatedAt: state.meta.updatedAt,
      expiresInSeconds: this.diagnoses.sessionTtlSeconds,
      inputs: state.inputs,
      chain: state.chain,
      results: state.results,
      messages: state.messages,
      sessionStore: sessions.degraded ? 'memory-fallback' : sessions.kind,
    };
  }

  private async load(ctx: RequestContext, id: string, sessions: TrackedSessions): Promise<SessionState> {
    const state = await sessions.get(ctx.principal.clinicId, id, this.diagnoses.sessionTtlSeconds);
    if (state === null) throw new NotFoundError('Consultation', id);
    this.diagnoses.sessionMeta.remember(state.meta);
    return state;
  }

  async start(ctx: RequestContext, req: ConsultationRequest): Promise<{ view: ConsultationView; degraded: boolean }> {
    requirePermission(ctx, 'diagnoses:run');
    // Checks the patient and encounter now, so a consultation never starts on a wrong reference.
    const { patientId } = await this.diagnoses.checkPatient(ctx, req);
    const sessions = this.sessions();
    const now = new Date().toISOString();
    const id = newSessionId();
    const ttl = this.diagnoses.sessionTtlSeconds;
    await sessions.create({ id, clinicId: ctx.principal.clinicId, patientId, createdAt: now, updatedAt: now }, ttl);
    const opening: Opening = { kind: 'opening', ...req };
    await sessions.write(ctx.principal.clinicId, id, { inputs: [opening] }, ttl);
    return { view: this.view(await this.load(ctx, id, sessions), sessions), degraded: sessions.degraded };
  }

  async addInputs(ctx: RequestContext, id: string, inputs: ConsultationInputs): Promise<{ view: ConsultationView; degraded: boolean }> {
    requirePermission(ctx, 'diagnoses:run');
    checkCaseFields(this.diagnoses.knowledge, inputs);
    const sessions = this.sessions();
    const added: Added = { kind: 'inputs', ...inputs };
    if (!(await sessions.write(ctx.principal.clinicId, id, { inputs: [added] }, this.diagnoses.sessionTtlSeconds))) throw new NotFoundError('Consultation', id);
    return { view: this.view(await this.load(ctx, id, sessions), sessions), degraded: sessions.degraded };
  }

  async get(ctx: RequestContext, id: string): Promise<{ view: ConsultationView; degraded: boolean }> {
    const sessions = this.sessions();
    const view = await this.ops.run(ctx, { action: 'read', entityType: 'consultation', entityId: null, detail: { consultationId: id } }, async () =>
      this.view(await this.load(ctx, id, sessions), sessions),
    );
    return { view, degraded: sessions.degraded };
  }

  async diagnose(ctx: RequestContext, id: string, opts: DiagnosisOptions = {}): Promise<DiagnosisOutcome> {
    requirePermission(ctx, 'diagnoses:run');
    const sessions = this.sessions();
    const state = await this.load(ctx, id, sessions);
    const opening = state.inputs.find((i): i is Opening => (i as Opening).kind === 'opening');
    if (opening === undefined) throw new NotFoundError('Consultation', id);
    const parts = state.inputs.filter((i): i is Added => (i as Added).kind === 'inputs').map(({ kind: _kind, ...rest }) => rest);
    const ref = { patientId: opening.patientId, patient: opening.patient, encounterId: opening.encounterId };
    const outcome = await this.diagnoses.diagnoseCase(ctx, ref, parts, { id, loaded: true }, opts);
    return { ...outcome, sessionDegraded: outcome.sessionDegraded || sessions.degraded };
  }
}
