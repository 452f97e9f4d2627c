/**
 * OIDC bearer tokens (JWTs), besides API keys: verified against the identity provider's
 * published key set, and turned into a principal from their claims.
 *
 * - Keys come from the provider's JWKS (jose's remote key set: cached, refetched when a token
 *   names an unknown key id, at most once per cooldown, so a rotation is picked up at once and
 *   a flood of made-up key ids costs one fetch per cooldown).
 * - Only the configured asymmetric algorithms are accepted. jose checks the header's alg
 *   against that list before it looks for a key, so "none" and HS256 signed with the public key
 *   as an HMAC secret (key confusion) are refused without reaching the key set.
 * - Issuer exact; audience: `aud` must name a configured client, or, for a token without `aud`
 *   (Cognito access tokens), `client_id` must. exp, nbf and iat are checked with a clock-skew
 *   tolerance; exp and sub are required.
 * - The clinic and the role come only from the configured claims (or groups mapped to a role);
 *   no other claim is read, so an unexpected claim can never grant anything.
 * - A verified token is remembered for at most the key-cache TTL (and never past its expiry),
 *   so a client sending the same token on every request pays the signature check once.
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { v5 as uuidv5, validate as isUuid } from 'uuid';
import type { Role } from '../../contract/schemas.js';
import { DependencyUnavailableError, ForbiddenError, UnauthorizedError } from '../errors.js';
import { NO_CACHE_METRICS, type CacheMetrics } from './key-cache.js';
import type { ClinicalStore, Principal } from '../ports.js';

/** Names the UUIDv5 space of token principals: the same issuer and subject give the same id everywhere. */
export const OIDC_PRINCIPAL_NAMESPACE = '6672aa34-c787-4d11-986b-071b037590ef';

/**
 * The stable id a token principal is recorded under (audit actor, recorded_by, created_by).
 * The pair is JSON-encoded so that no issuer/subject split can collide with another.
 */
export function oidcPrincipalId(issuer: string, subject: string): string {
  return uuidv5(JSON.stringify([issuer, subject]), OIDC_PRINCIPAL_NAMESPACE);
}

export interface OidcOptions {
  issuer: string;
  audiences: string[];
  jwksUrl: string;
  algorithms: string[];
  clockSkewSeconds: number;
  tokenUse: Array<'id' | 'access'> | undefined;
  clinicClaim: string;
  roleClaim: string;
  groupsClaim: string;
  groupRoles: ReadonlyMap<string, Role>;
  jwksCooldownSeconds: number;
  jwksMaxAgeSeconds: number;
  jwksTimeoutMs: number;
}

/** Most privileged first: a member of several mapped groups gets the strongest of their roles. */
const ROLE_RANK: readonly Role[] = ['admin', 'vet', 'staff', 'readonly'];

/** The key set could not be fetched or used: the provider's fault, not the token's. */
class KeySetUnavailable extends Error {}

export class OidcVerifier {
  private readonly keys: JWTVerifyGetKey;
  private readonly audiences: ReadonlySet<string>;
  private readonly tokenUse: ReadonlySet<string> | null;
  private readonly tokens: LRUCache<string, Principal> | null;
  private readonly clinics: LRUCache<string, boolean, unknown>;
  private readonly metrics: CacheMetrics;

  constructor(
    private readonly opts: OidcOptions,
    store: Pick<ClinicalStore, 'clinicExists'>,
    cache: { ttlMs: number; metrics?: CacheMetrics } = { ttlMs: 0 },
  ) {
    const remote = createRemoteJWKSet(new URL(opts.jwksUrl), {
      cooldownDuration: opts.jwksCooldownSeconds * 1000,
      cacheMaxAge: opts.jwksMaxAgeSeconds * 1000,
      timeoutDuration: opts.jwksTimeoutMs,
    });
    this.keys = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        // No key for this kid (after a refetch, cooldown permitting) is the token's problem.
        if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
        throw new KeySetUnavailable((err as Error).message, { cause: err });
      }
    };
    this.audiences = new Set(opts.audiences);
    this.tokenUse = opts.tokenUse === undefined ? null : new Set(opts.tokenUse);
    this.metrics = cache.metrics ?? NO_CACHE_METRICS;
    this.tokens =
      cache.ttlMs <= 0
        ? null
        : // Bounded by bytes too: a token is ~1 KiB, more with many groups.
          new LRUCache<string, Principal>({ max: 10_000, maxSize: 16 * 1024 * 1024, sizeCalculation: (_v, token) => token.length, ttl: cache.ttlMs, updateAgeOnGet: false });
    this.clinics = new LRUCache<string, boolean, unknown>({
      max: 10_000,
      // Clinics are never deleted, so a known one stays known; an unknown one may be created soon.
      ttl: 10 * 60_000,
      fetchMethod: async (clinicId, _stale, { options }) => {
        const exists = await store.clinicExists(clinicId);
        if (!exists) options.ttl = 1000;
        return exists;
      },
    });
  }

  /** The principal of a compact JWS; 401 for a token that does not verify, 403 for one that grants nothing here. */
  async principal(token: string): Promise<Principal> {
    const cached = this.tokens?.get(token);
    if (this.tokens !== null) this.metrics.cacheLookup('oidc_tokens', cached !== undefined);
    if (cached !== undefined) return cached;
    const payload = await this.verify(token);
    const clinicId = this.clinicOf(payload);
    const role = this.roleOf(payload);
    // Last, once the claims are known to be acceptable: the one check that may need the database.
    if (!(await this.clinics.fetch(clinicId))) throw new ForbiddenError("The bearer token's clinic is not known here");
    const principal: Principal = { keyId: oidcPrincipalId(this.opts.issuer, payload.sub!), clinicId, role };
    if (this.tokens !== null) {
      const untilExpiry = (payload.exp! + this.opts.clockSkewSeconds) * 1000 - Date.now();
      if (untilExpiry > 0) this.tokens.set(token, principal, { ttl: Math.min(untilExpiry, this.tokens.ttl) });
    }
    return principal;
  }

  private async verify(token: string): Promise<JWTPayload> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.opts.issuer,
        algorithms: this.opts.algorithms,
        clockTolerance: this.opts.clockSkewSeconds,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      throw refusal(err);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new UnauthorizedError('The bearer token has no subject ("sub")');
    // jose checks aud only when it is present; Cognito access tokens name their client in client_id instead.
    const audiences = payload.aud === undefined ? [payload.client_id] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!audiences.some((a) => typeof a === 'string' && this.audiences.has(a))) throw new UnauthorizedError('The bearer token was not issued for this service (audience)');
    if (this.tokenUse !== null && !(typeof payload.token_use === 'string' && this.tokenUse.has(payload.token_use))) {
      throw new UnauthorizedError(`The bearer token's "token_use" must be ${[...this.tokenUse].join(' or ')}`);
    }
    return payload;
  }

  private clinicOf(payload: JWTPayload): string {
    const claimed = payload[this.opts.clinicClaim];
    if (typeof claimed !== 'string' || claimed === '') throw new UnauthorizedError(`The bearer token names no clinic ("${this.opts.clinicClaim}" claim)`);
    // Refused before any query: a value that is not a uuid would otherwise be a database error.
    if (!isUuid(claimed)) throw new ForbiddenError("The bearer token's clinic is not known here");
    return claimed.toLowerCase();
  }

  private roleOf(payload: JWTPayload): Role {
    const claimed = payload[this.opts.roleClaim];
    if (claimed !== undefined) {
      // An explicit role that is not ours is refused, not replaced by the groups' role.
      if (typeof claimed === 'string' && (ROLE_RANK as readonly string[]).includes(claimed)) return claimed as Role;
      throw new ForbiddenError(`The bearer token's "${this.opts.roleClaim}" is not one of ${ROLE_RANK.join(', ')}`);
    }
    const groups = payload[this.opts.groupsClaim];
    const roles = Array.isArray(groups) ? groups.flatMap((g) => (typeof g === 'string' ? (this.opts.groupRoles.get(g) ?? []) : [])) : [];
    const role = ROLE_RANK.find((r) => roles.includes(r));
    if (role === undefined) throw new ForbiddenError(`The bearer token grants no role ("${this.opts.roleClaim}" claim, or a "${this.opts.groupsClaim}" group mapped to one)`);
    return role;
  }
}

/** What the client is told: which check failed (jose's claim names are fixed strings), never key material. */
function refusal(err: unknown): Error {
  if (err instanceof KeySetUnavailable) return new DependencyUnavailableError("The identity provider's key set could not be fetched; retry shortly");
  if (err instanceof errors.JWTExpired) return new UnauthorizedError('The bearer token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) return new UnauthorizedError(`The bearer token's "${err.claim}" claim is not acceptable (${err.reason})`);
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return new UnauthorizedError("The bearer token's signing algorithm is not accepted");
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return new UnauthorizedError("The bearer token was not signed by one of the identity provider's keys");
  if (err instanceof errors.JWSSignatureVerificationFailed) return new UnauthorizedError("The bearer token's signature does not verify");
  return new UnauthorizedError('The bearer token is not a valid JWT');
}
