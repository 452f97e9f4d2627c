import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DiagnosisOutcome } from '../../clinical/diagnoses/diagnoses.js';
import { ConsultationInputs, ConsultationParams, ConsultationRequest, Diagnosis, DiagnosisRequest } from '../../contract/diagnosis-schemas.js';
import type { ChainStep } from '../../clinical/sessions.js';
import { IdParams, ListOf, PageQuery } from '../../contract/schemas.js';
import { idempotencyOf, sendStored } from '../replies.js';
import { problemBody } from '../problem.js';
import type { App, Services } from '../server.js';

function sessionHeader(reply: FastifyReply, degraded: boolean, kind: string): void {
  reply.header('x-session-store', degraded ? 'memory-fallback' : kind);
}

/**
 * With Accept: text/event-stream, each agent step is sent as an SSE "step" event as it
 * completes, then the report as a "diagnosis" event. The stream opens at the first step, so
 * a request refused before any agent runs still gets an ordinary problem+json answer.
 */
async function diagnoseMaybeStreaming(request: FastifyRequest, reply: FastifyReply, run: (onStep?: (s: ChainStep) => void) => Promise<DiagnosisOutcome>, storeKind: string) {
  if (!(request.headers.accept ?? '').includes('text/event-stream')) {
    const outcome = await run();
    sessionHeader(reply, outcome.sessionDegraded, storeKind);
    return sendStored(reply, outcome.response);
  }
  let open = false;
  const send = (event: string, data: unknown) => reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const openStream = () => {
    if (open) return;
    open = true;
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': request.id });
  };
  try {
    const outcome = await run((step) => {
      openStream();
      send('step', step);
    });
    openStream();
    send('diagnosis', outcome.response.body);
    reply.raw.end();
  } catch (err) {
    if (!open) throw err;
    request.log.warn({ err: { message: (err as Error).message } }, 'diagnosis failed after streaming began');
    send('error', problemBody(request, err));
    reply.raw.end();
  }
  return reply;
}

export function registerDiagnosisRoutes(app: App, { diagnoses, consultations, sessionStoreKind }: Services): void {
  const tags = ['diagnoses'];
  app.post(
    '/diagnoses',
    { config: { permission: 'diagnoses:run' }, schema: { tags, summary: 'Diagnose a case in one shot: triage, ranked differential with evidence, plan, narrative', body: DiagnosisRequest, response: { 201: Diagnosis } } },
    async (request, reply) => {
      const outcome = await diagnoses.diagnose(request.ctx, request.body, { idem: idempotencyOf(request) });
      sessionHeader(reply, outcome.sessionDegraded, sessionStoreKind);
      return sendStored(reply, outcome.response);
    },
  );
  app.get('/diagnoses/:id', { config: { permission: 'records:read' }, schema: { tags, summary: 'A stored diagnostic report', params: IdParams, response: { 200: Diagnosis } } }, async (request) => diagnoses.get(request.ctx, request.params.id));
  app.get(
    '/diagnoses/:id/trace',
    { config: { permission: 'records:read' }, schema: { tags, summary: 'Every conclusion with its evidence and the provenance, from the persistent tier', params: IdParams } },
    async (request) => diagnoses.trace(request.ctx, request.params.id),
  );
  app.get(
    '/patients/:id/diagnoses',
    { config: { permission: 'records:read' }, schema: { tags, summary: "A patient's diagnoses, newest first", params: IdParams, querystring: PageQuery, response: { 200: ListOf(Diagnosis) } } },
    async (request) => diagnoses.listForPatient(request.ctx, request.params.id, request.query.limit, request.query.cursor),
  );

  const ctags = ['consultations'];
  app.post(
    '/consultations',
    { config: { permission: 'diagnoses:run' }, schema: { tags: ctags, summary: 'Start a consultation session for a patient (ephemeral; expires after inactivity)', body: ConsultationRequest } },
    async (request, reply) => {
      const { view, degraded } = await consultations.start(request.ctx, request.body);
      sessionHeader(reply, degraded, sessionStoreKind);
      return reply.code(201).header('location', `/v1/consultations/${view.id}`).send(view);
    },
  );
  app.post(
    '/consultations/:id/inputs',
    { config: { permission: 'diagnoses:run' }, schema: { tags: ctags, summary: 'Add complaint text, signs, vitals, labs or media to a consultation', params: ConsultationParams, body: ConsultationInputs } },
    async (request, reply) => {
      const { view, degraded } = await consultations.addInputs(request.ctx, request.params.id, request.body);
      sessionHeader(reply, degraded, sessionStoreKind);
      return view;
    },
  );
  app.post(
    '/consultations/:id/diagnose',
    {
      config: { permission: 'diagnoses:run' },
      schema: {
        tags: ctags,
        summary: 'Diagnose the consultation; with Accept: text/event-stream, stream each agent step as it completes',
        params: ConsultationParams,
      },
    },
    async (request, reply) => diagnoseMaybeStreaming(request, reply, (onStep) => consultations.diagnose(request.ctx, request.params.id, { onStep, idem: idempotencyOf(request) }), sessionStoreKind),
  );
  app.get(
    '/consultations/:id',
    { config: { permission: 'records:read' }, schema: { tags: ctags, summary: 'The ephemeral state: inputs, reasoning chain, per-agent results, inter-agent messages', params: ConsultationParams } },
    async (request, reply) => {
      const { view, degraded } = await consultations.get(request.ctx, request.params.id);
      sessionHeader(reply, degraded, sessionStoreKind);
      return view;
    },
  );
}
