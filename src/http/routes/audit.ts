import { AuditEvent, AuditQuery, ListOf } from '../../contract/schemas.js';
import type { App, Services } from '../server.js';

export function registerAuditRoutes(app: App, { access }: Services): void {
  app.get(
    '/audit',
    { config: { permission: 'audit:read' }, schema: { tags: ['audit'], summary: "This clinic's audit events by entity and time range (admin)", querystring: AuditQuery, response: { 200: ListOf(AuditEvent) } } },
    async (request) => access.listAudit(request.ctx, request.query),
  );
}
