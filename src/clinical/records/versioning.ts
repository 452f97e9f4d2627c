/** ETags, If-Match and the shared shape of a versioned record's representation. */
import { PreconditionFailedError, PreconditionRequiredError } from '../errors.js';
import type { StoredRecord } from '../ports.js';

export function etagOf(version: number): string {
  return `"${version}"`;
}

/**
 * Checks an If-Match header against the current version. Missing: 428. Any listed ETag that
 * names the current version (weak or strong form), or `*`, passes; anything else is 412.
 */
export function checkIfMatch(ifMatch: string | undefined, current: number): void {
  if (ifMatch === undefined || ifMatch.trim() === '') throw new PreconditionRequiredError();
  const tags = ifMatch.split(',').map((t) => t.trim());
  if (tags.includes('*')) return;
  const ok = tags.some((tag) => tag.replace(/^W\//, '') === etagOf(current));
  if (!ok) throw new PreconditionFailedError(ifMatch, current);
}

export function metaOf(rec: StoredRecord<unknown>) {
  return {
    id: rec.id,
    version: rec.version,
    createdAt: rec.createdAt.toISOString(),
    updatedAt: rec.updatedAt.toISOString(),
    deleted: rec.deleted,
  };
}

/** Drops optional fields left undefined, so stored content has no holes. */
export function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
