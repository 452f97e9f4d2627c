/**
 * Route permissions for HTTP. Each /v1 route declares `config: { permission }` (a name from
 * clinical/access/permissions.ts); registering one without it fails at startup, so a new
 * route cannot be reachable by every role by omission. The check runs as the route's own
 * first onRequest hook, after the /v1 hook has authenticated the key: the role's grant was
 * computed when the route was registered, so a request costs one property read, and a refused
 * one never has its body read.
 */
import type { FastifyInstance, FastifySchema, HookHandlerDoneFunction, onRequestHookHandler, RouteOptions } from 'fastify';
import { forbidden, grantOf, isPermission, rolesWith, type Permission } from '../clinical/access/permissions.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the caller's role must hold to use the route; every /v1 route must declare one. */
    permission?: Permission;
  }
}

/** One row of the app's route table: a route that declares no permission is public. */
export interface RouteEntry {
  method: string;
  url: string;
  permission: Permission | null;
}

function methodsOf(route: { method: string | string[] }): string[] {
  return Array.isArray(route.method) ? route.method : [route.method];
}

/**
 * The app's route table, filled as routes are registered (the root's onRoute hook sees the
 * routes of every plugin). A permission declared outside `guardedPrefix` would never be
 * checked, since only that scope authenticates, so such a route is refused too: the table,
 * and the matrix generated from it, then cannot claim a protection that is not there.
 */
export function collectRoutes(app: FastifyInstance, guardedPrefix: string): RouteEntry[] {
  const table: RouteEntry[] = [];
  app.addHook('onRoute', (route) => {
    const declared: unknown = route.config?.permission;
    const guarded = route.url === guardedPrefix || route.url.startsWith(`${guardedPrefix}/`);
    if (declared !== undefined && !guarded) {
      throw new Error(`${methodsOf(route).join(',')} ${route.url} declares the permission ${String(declared)} outside ${guardedPrefix}, where no key is authenticated to check it`);
    }
    const permission = isPermission(declared) ? declared : null;
    for (const method of methodsOf(route)) table.push({ method, url: route.url, permission });
  });
  return table;
}

/**
 * Makes every route registered in `scope` (and its child plugins) declare a known permission,
 * and refuses with 403 a principal whose role lacks it. Call it first thing in the scope,
 * after the hook that sets request.ctx: route hooks run after the scope's own.
 */
export function requirePermissions(scope: FastifyInstance): void {
  scope.addHook('onRoute', (route: RouteOptions) => {
    const declared: unknown = route.config?.permission;
    if (!isPermission(declared)) {
      const what = declared === undefined ? 'declares no permission' : `declares the unknown permission ${JSON.stringify(declared)}`;
      throw new Error(`${methodsOf(route).join(',')} ${route.url} ${what}: add config: { permission } naming one of clinical/access/permissions.ts`);
    }
    const grant = grantOf(declared);
    const check: onRequestHookHandler = (request, _reply, done: HookHandlerDoneFunction) => {
      const role = request.ctx.principal.role;
      if (grant[role]) done();
      else done(forbidden(declared, role));
    };
    const own = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [check, ...own];
  });
}

/**
 * @fastify/swagger's transform: each operation's document carries its permission, both as an
 * x-permission extension (for tools) and in its description (for people reading /docs).
 */
export function documentPermission({ schema, url, route }: { schema: FastifySchema; url: string; route: RouteOptions }): { schema: FastifySchema; url: string } {
  const permission: unknown = route.config?.permission;
  if (!isPermission(permission)) return { schema, url };
  const roles = rolesWith(permission);
  const line = `Permission: \`${permission}\` (roles: ${roles.join(', ')}).`;
  const description = typeof schema?.description === 'string' && schema.description !== '' ? `${schema.description}\n\n${line}` : line;
  return { schema: { ...schema, description, 'x-permission': { name: permission, roles: [...roles] } } as FastifySchema, url };
}
