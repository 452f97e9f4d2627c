import { ValidationError } from '../../clinical/errors.js';
import type { Page } from '../../clinical/ports.js';

/** Opaque pagination cursors: base64url of a JSON array of the last row's sort keys. */
export function encodeCursor(values: unknown[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

const SHAPES = {
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  time: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/,
} as const;

/** Decodes a cursor whose values must have the given shapes; anything else is a 400, never SQL. */
export function decodeCursor(cursor: string, shapes: ReadonlyArray<keyof typeof SHAPES>): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const ok =
    Array.isArray(parsed) &&
    parsed.length === shapes.length &&
    parsed.every((v, i) => typeof v === 'string' && SHAPES[shapes[i]!].test(v) && (shapes[i] !== 'time' || !Number.isNaN(Date.parse(v))));
  if (!ok) throw new ValidationError('cursor is not a cursor this API issued');
  return parsed as string[];
}

/** A page of `limit` rows from `rows` (fetched with one extra): the cursor names its last row. */
export function page<T>(rows: T[], limit: number, cursorOf: (last: T) => unknown[]): Page<T> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  return { items, nextCursor: more ? encodeCursor(cursorOf(items[items.length - 1]!)) : null };
}
