import { Encounter, EncounterInput, IdParams, ListOf, Observation, ObservationInput, PageQuery } from '../../contract/schemas.js';
import { idempotencyOf, sendStored, withEtag } from '../replies.js';
import type { App, Services } from '../server.js';

export function registerEncounterRoutes(app: App, { encounters }: Services): void {
  const tags = ['encounters'];
  app.post(
    '/patients/:id/encounters',
    { config: { permission: 'records:write' }, schema: { tags, summary: 'Open an encounter (visit) for a patient', params: IdParams, body: EncounterInput, response: { 201: Encounter } } },
    async (request, reply) => sendStored(reply, await encounters.createEncounter(request.ctx, request.params.id, request.body, idempotencyOf(request))),
  );
  app.get(
    '/patients/:id/encounters',
    { config: { permission: 'records:read' }, schema: { tags, summary: "A patient's encounters, oldest first", params: IdParams, querystring: PageQuery, response: { 200: ListOf(Encounter) } } },
    async (request) => encounters.listEncounters(request.ctx, request.params.id, request.query),
  );
  app.get(
    '/encounters/:id',
    { config: { permission: 'records:read' }, schema: { tags, summary: 'Read an encounter', params: IdParams, response: { 200: Encounter } } },
    async (request, reply) => withEtag(reply, await encounters.getEncounter(request.ctx, request.params.id)),
  );
  const obsTags = ['observations'];
  app.post(
    '/encounters/:id/observations',
    { config: { permission: 'records:write' }, schema: { tags: obsTags, summary: 'Record an observation (vital sign, lab result, clinical sign, note)', params: IdParams, body: ObservationInput, response: { 201: Observation } } },
    async (request, reply) => sendStored(reply, await encounters.createObservation(request.ctx, request.params.id, request.body, idempotencyOf(request))),
  );
  app.get(
    '/encounters/:id/observations',
    { config: { permission: 'records:read' }, schema: { tags: obsTags, summary: "An encounter's observations, oldest first", params: IdParams, querystring: PageQuery, response: { 200: ListOf(Observation) } } },
    async (request) => encounters.listObservations(request.ctx, request.params.id, request.query),
  );
  app.get(
    '/observations/:id',
    { config: { permission: 'records:read' }, schema: { tags: obsTags, summary: 'Read an observation', params: IdParams, response: { 200: Observation } } },
    async (request, reply) => withEtag(reply, await encounters.getObservation(request.ctx, request.params.id)),
  );
}
