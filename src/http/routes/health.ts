import { Type } from '@sinclair/typebox';
import type { App, Services } from '../server.js';
import { sendProblem } from '../problem.js';

export function registerHealthRoutes(app: App, services: Services): void {
  app.get(
    '/healthz',
    { schema: { tags: ['health'], summary: 'The process is up', security: [], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Storage is reachable (else 503)',
        security: [],
        response: { 200: Type.Object({ status: Type.Literal('ready'), storage: Type.String() }) },
      },
    },
    async (request, reply) => {
      try {
        await services.ping();
      } catch {
        reply.header('retry-after', '5');
        return sendProblem(reply, request, 503, 'storage-unavailable', 'Service Unavailable', 'Storage is unreachable');
      }
      return { status: 'ready' as const, storage: services.storageKind };
    },
  );
}
