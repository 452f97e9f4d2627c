/**
 * Who may do what: the one table from permission to roles. Every /v1 route declares the
 * permission it needs (src/http/permissions.ts refuses a route without one at startup), and
 * the services check the same permission again, since the CLI calls them without HTTP.
 * docs/permissions.md is generated from this table and the route table
 * (npx tsx scripts/permissions-matrix.ts).
 */
import { Role } from '../../contract/schemas.js';
import { ForbiddenError } from '../errors.js';
import type { RequestContext } from '../ports.js';

/** Every role, in the order of the contract's schema (most to least privileged). */
export const ROLES: readonly Role[] = Object.freeze(Role.anyOf.map((literal) => literal.const));

interface PermissionSpec {
  roles: readonly Role[];
  /** What holding it lets a key do, for the docs. */
  summary: string;
}

export const PERMISSIONS = {
  'records:read': { roles: ['admin', 'vet', 'staff', 'readonly'], summary: 'Read owners, patients, encounters, observations, media, diagnostic reports and consultations' },
  'records:write': { roles: ['admin', 'vet', 'staff'], summary: 'Create and change owners, patients, encounters, observations and media' },
  'diagnoses:run': { roles: ['admin', 'vet', 'staff'], summary: 'Diagnose a case and run consultations (stores a diagnostic report)' },
  'keys:manage': { roles: ['admin'], summary: "Issue and revoke the clinic's API keys" },
  'audit:read': { roles: ['admin'], summary: "Read the clinic's audit trail" },
  'models:read': { roles: ['admin', 'vet'], summary: 'List and read the image models of the registry (shared by every clinic)' },
  'models:manage': { roles: ['admin'], summary: 'Register image models and activate, canary, roll back or retire their versions (shared by every clinic)' },
  'ops:read': { roles: ['admin'], summary: 'Read the operations dashboard’s metrics snapshot' },
} as const satisfies Record<string, PermissionSpec>;

export type Permission = keyof typeof PERMISSIONS;

export function isPermission(name: unknown): name is Permission {
  return typeof name === 'string' && Object.hasOwn(PERMISSIONS, name);
}

export function rolesWith(permission: Permission): readonly Role[] {
  return PERMISSIONS[permission].roles;
}

/**
 * Role -> allowed, for one permission: built once (per route, at registration), so a request's
 * check is one property read.
 */
export type RoleGrant = Readonly<Record<Role, boolean>>;

export function grantOf(permission: Permission): RoleGrant {
  const roles: readonly Role[] = PERMISSIONS[permission].roles;
  return Object.freeze(Object.fromEntries(ROLES.map((r) => [r, roles.includes(r)])) as Record<Role, boolean>);
}

const GRANTS = Object.fromEntries(Object.keys(PERMISSIONS).map((p) => [p, grantOf(p as Permission)])) as Record<Permission, RoleGrant>;

export function forbidden(permission: Permission, role: Role): ForbiddenError {
  return new ForbiddenError(`This action needs the permission ${permission} (roles ${rolesWith(permission).join(', ')}); this key has role ${role}`);
}

/** Throws 403 unless the caller's role holds the permission. */
export function requirePermission(ctx: RequestContext, permission: Permission): void {
  if (GRANTS[permission][ctx.principal.role] !== true) throw forbidden(permission, ctx.principal.role);
}
