/** The model registry (issue 13 §3): shared by every clinic; reading needs models:read, changing models:manage. */
import { CanaryInput, Model, ModelInput, ModelList, ModelParams, ModelQuery, ModelVersionParams } from '../../contract/model-schemas.js';
import type { App, Services } from '../server.js';

export function registerModelRoutes(app: App, { models }: Services): void {
  const tags = ['models'];
  app.post(
    '/models',
    { config: { permission: 'models:manage' }, schema: { tags, summary: 'Register a model version (its labels must map to knowledge-base findings or to null); it serves nothing until activated', body: ModelInput, response: { 201: Model } } },
    async (request, reply) => {
      const created = await models.register(request.ctx, request.body);
      return reply.code(201).header('location', `/v1${created.location}`).send(created.body);
    },
  );
  app.get(
    '/models',
    { config: { permission: 'models:read' }, schema: { tags, summary: 'Every registered version, by name (?name= for one model)', querystring: ModelQuery, response: { 200: ModelList } } },
    async (request) => models.list(request.ctx, request.query.name),
  );
  app.get(
    '/models/:name/versions/:version',
    { config: { permission: 'models:read' }, schema: { tags, summary: 'One model version', params: ModelVersionParams, response: { 200: Model } } },
    async (request) => models.get(request.ctx, request.params.name, request.params.version),
  );
  app.post(
    '/models/:name/versions/:version/activate',
    { config: { permission: 'models:manage' }, schema: { tags, summary: 'Make this version the one diagnoses use (the one active before is retired); takes effect on every instance at once', params: ModelVersionParams, response: { 200: Model } } },
    async (request) => models.activate(request.ctx, request.params.name, request.params.version),
  );
  app.post(
    '/models/:name/versions/:version/canary',
    { config: { permission: 'models:manage' }, schema: { tags, summary: 'Give this version a share of the diagnoses (chosen per diagnosis); the active version keeps the rest', params: ModelVersionParams, body: CanaryInput, response: { 200: Model } } },
    async (request) => models.canary(request.ctx, request.params.name, request.params.version, request.body.share),
  );
  app.post(
    '/models/:name/versions/:version/retire',
    { config: { permission: 'models:manage' }, schema: { tags, summary: 'Take this version out of service', params: ModelVersionParams, response: { 200: Model } } },
    async (request) => models.retire(request.ctx, request.params.name, request.params.version),
  );
  app.post(
    '/models/:name/rollback',
    { config: { permission: 'models:manage' }, schema: { tags, summary: 'Go back to the version active before the current one (the current one and any canary are retired)', params: ModelParams, response: { 200: Model } } },
    async (request) => models.rollback(request.ctx, request.params.name),
  );
}
