import { configure } from 'safe-stable-stringify';

const stringify = configure({ deterministic: true, bigint: false, circularValue: TypeError });

/**
 * JSON with object keys sorted, so the same value always has the same text (and hash).
 * Properties that are undefined are left out, as JSON.stringify does; undefined alone is null.
 * A replacer works as JSON.stringify's does.
 */
export function canonicalJson(value: unknown, replacer?: (key: string, value: unknown) => unknown): string {
  return (replacer === undefined ? stringify(value) : stringify(value, replacer as (this: unknown, key: string, value: unknown) => unknown)) ?? 'null';
}
