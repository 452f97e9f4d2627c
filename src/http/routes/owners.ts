import { IdParams, Owner, OwnerInput } from '../../contract/schemas.js';
import { idempotencyOf, sendStored, withEtag } from '../replies.js';
import type { App, Services } from '../server.js';

const tags = ['owners'];

export function registerOwnerRoutes(app: App, { records }: Services): void {
  app.post(
    '/owners',
    { config: { permission: 'records:write' }, schema: { tags, summary: 'Create an owner', body: OwnerInput, response: { 201: Owner } } },
    async (request, reply) => sendStored(reply, await records.createOwner(request.ctx, request.body, idempotencyOf(request))),
  );
  app.get(
    '/owners/:id',
    { config: { permission: 'records:read' }, schema: { tags, summary: 'Read an owner', params: IdParams, response: { 200: Owner } } },
    async (request, reply) => withEtag(reply, await records.getOwner(request.ctx, request.params.id)),
  );
}
