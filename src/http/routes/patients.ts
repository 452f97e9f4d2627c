import { Type } from '@sinclair/typebox';
import { IdParams, ListOf, Patient, PatientInput, PatientPatch, PatientQuery, RecordVersion } from '../../contract/schemas.js';
import { idempotencyOf, ifMatchOf, sendStored, withEtag } from '../replies.js';
import type { App, Services } from '../server.js';

const tags = ['patients'];
const IfMatch = Type.Object({ 'if-match': Type.Optional(Type.String({ description: 'ETag of the version being changed (required)' })) });

export function registerPatientRoutes(app: App, { records }: Services): void {
  app.post(
    '/patients',
    { config: { permission: 'records:write' }, schema: { tags, summary: 'Register a patient (animal)', body: PatientInput, response: { 201: Patient } } },
    async (request, reply) => sendStored(reply, await records.createPatient(request.ctx, request.body, idempotencyOf(request))),
  );
  app.get(
    '/patients',
    { config: { permission: 'records:read' }, schema: { tags, summary: 'Search patients by name prefix, species or owner', querystring: PatientQuery, response: { 200: ListOf(Patient) } } },
    async (request) => records.listPatients(request.ctx, request.query),
  );
  app.get(
    '/patients/:id',
    { config: { permission: 'records:read' }, schema: { tags, summary: 'Read a patient', params: IdParams, response: { 200: Patient } } },
    async (request, reply) => withEtag(reply, await records.getPatient(request.ctx, request.params.id)),
  );
  app.patch(
    '/patients/:id',
    {
      config: { permission: 'records:write' },
      schema: {
        tags,
        summary: 'Change a patient (JSON merge patch); needs If-Match',
        params: IdParams,
        headers: IfMatch,
        body: PatientPatch,
        response: { 200: Patient },
      },
    },
    async (request, reply) => withEtag(reply, await records.patchPatient(request.ctx, request.params.id, ifMatchOf(request), request.body)),
  );
  app.delete(
    '/patients/:id',
    { config: { permission: 'records:write' }, schema: { tags, summary: 'Delete a patient (a tombstone version; history is kept); needs If-Match', params: IdParams, headers: IfMatch, response: { 200: Patient } } },
    async (request, reply) => withEtag(reply, await records.deletePatient(request.ctx, request.params.id, ifMatchOf(request))),
  );
  app.get(
    '/patients/:id/history',
    { config: { permission: 'records:read' }, schema: { tags, summary: 'Every version of a patient, newest first', params: IdParams, response: { 200: Type.Object({ items: Type.Array(RecordVersion) }) } } },
    async (request) => ({ items: await records.patientHistory(request.ctx, request.params.id) }),
  );
}
