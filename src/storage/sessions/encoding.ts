/**
 * What both session adapters share, so a session behaves the same whichever holds it: values
 * are stored as JSON (what comes back is what JSON can carry, on Redis and in memory alike) and
 * TTLs are whole milliseconds.
 */

/** undefined has no JSON form; it is stored as null so a list keeps its positions. */
export function toJson(value: unknown): string {
  return JSON.stringify(value) ?? 'null';
}

export function ttlMillis(ttlSeconds: number): number {
  const ms = Math.round(ttlSeconds * 1000);
  if (!Number.isFinite(ms) || ms < 1) throw new RangeError(`session TTL must be a positive number of seconds, got ${ttlSeconds}`);
  return ms;
}

/** Agent name -> parsed output. fromEntries defines own properties, so no agent name (not even __proto__) reaches the prototype. */
export function parseResults(entries: Iterable<[string, string]>): Record<string, unknown> {
  return Object.fromEntries(Array.from(entries, ([agent, json]): [string, unknown] => [agent, JSON.parse(json)]));
}
