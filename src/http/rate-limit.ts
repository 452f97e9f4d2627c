/**
 * The request budgets on the wire, per draft-ietf-httpapi-ratelimit-headers-10 (the RateLimit
 * and RateLimit-Policy fields as Structured Field Lists of quoted policy names with parameters):
 *   RateLimit-Policy: "api-key";q=3000;w=60, "clinic";q=12000;w=60     the budgets (fixed per process)
 *   RateLimit: "api-key";r=2999;t=60, "clinic";r=11873;t=41            what is left, seconds to reset
 * on every authenticated /v1 response, and on a 429 also Retry-After (the same point in time as
 * the spent budget's t, as the draft asks) with a problem+json body.
 */
import type { FastifyReply } from 'fastify';
import { RateLimitedError, type RateDecision, type RateLimiter } from '../clinical/access/rate-limits.js';
import type { Principal } from '../clinical/ports.js';

/** The RateLimit-Policy value; computed once, it does not change while the process runs. */
export function rateLimitPolicyHeader(limiter: RateLimiter): string {
  const w = Math.round(limiter.windowMs / 1000);
  const items: string[] = [];
  if (limiter.keyLimit > 0) items.push(`"api-key";q=${limiter.keyLimit};w=${w}`);
  if (limiter.clinicLimit > 0) items.push(`"clinic";q=${limiter.clinicLimit};w=${w}`);
  return items.join(', ');
}

export function rateLimitHeader(decision: RateDecision): string {
  const b = decision.budgets;
  const first = `"${b[0]!.policy}";r=${b[0]!.remaining};t=${b[0]!.resetSeconds}`;
  return b.length === 1 ? first : `${first}, "${b[1]!.policy}";r=${b[1]!.remaining};t=${b[1]!.resetSeconds}`;
}

/**
 * Counts the request against its key's and clinic's budgets and writes the fields; throws
 * RateLimitedError (429) when a budget is spent. With the counters unavailable the request goes
 * ahead without the fields (see RateLimiter).
 */
export function enforcer(limiter: RateLimiter): ((principal: Principal, reply: FastifyReply) => Promise<void>) | null {
  if (!limiter.enabled) return null;
  const policy = rateLimitPolicyHeader(limiter);
  return async (principal, reply) => {
    const decision = await limiter.check(principal);
    if (decision === null) return;
    reply.header('ratelimit-policy', policy);
    reply.header('ratelimit', rateLimitHeader(decision));
    if (decision.admitted) return;
    const err = new RateLimitedError(decision, limiter.windowMs);
    reply.header('retry-after', String(err.retryAfterSeconds));
    throw err;
  };
}
