import type { ChainStep, SessionWrite } from '../../clinical/sessions.js';

/**
 * What both session adapters share, so a session behaves the same whichever holds it: values
 * are stored as JSON (what comes back is what JSON can carry, on Redis and in memory alike) and
 * TTLs are whole milliseconds.
 */

/** undefined has no JSON form; it is stored as null so a list keeps its positions. */
export function toJson(value: unknown): string {
  return JSON.stringify(value) ?? 'null';
}

/** A batch's values as the JSON both adapters store; steps the orchestrator encoded are kept as they are. */
export function encodeBatch(batch: SessionWrite | undefined): { inputs: string[]; steps: string[]; messages: string[] } {
  return {
    inputs: (batch?.inputs ?? []).map(toJson),
    steps: batch?.encodedSteps ?? (batch?.steps ?? []).map(toJson),
    messages: (batch?.messages ?? []).map(toJson),
  };
}

export function ttlMillis(ttlSeconds: number): number {
  const ms = Math.round(ttlSeconds * 1000);
  if (!Number.isFinite(ms) || ms < 1) throw new RangeError(`session TTL must be a positive number of seconds, got ${ttlSeconds}`);
  return ms;
}

/**
 * Agent name -> latest output: the last step of each agent with an output (a failed step without
 * a fail-safe answer has none and leaves the earlier one). fromEntries defines own properties, so
 * no agent name (not even __proto__) reaches the prototype.
 */
export function resultsOf(chain: readonly ChainStep[]): Record<string, unknown> {
  const latest = new Map<string, unknown>();
  for (const step of chain) if (step.output !== null && step.output !== undefined) latest.set(step.agent, step.output);
  return Object.fromEntries(latest);
}
