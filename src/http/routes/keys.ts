import { ApiKey, ApiKeyInput, CreatedApiKey, IdParams } from '../../contract/schemas.js';
import { idempotencyOf, sendStored } from '../replies.js';
import type { App, Services } from '../server.js';

export function registerKeyRoutes(app: App, { access }: Services): void {
  const tags = ['api keys'];
  app.post(
    '/api-keys',
    { config: { permission: 'keys:manage' }, schema: { tags, summary: 'Issue an API key for this clinic (admin); the key is shown once', body: ApiKeyInput, response: { 201: CreatedApiKey } } },
    async (request, reply) => sendStored(reply, await access.createKey(request.ctx, request.body, idempotencyOf(request))),
  );
  app.delete(
    '/api-keys/:id',
    { config: { permission: 'keys:manage' }, schema: { tags, summary: 'Revoke an API key (admin)', params: IdParams, response: { 200: ApiKey } } },
    async (request) => access.revokeKey(request.ctx, request.params.id),
  );
}
