/** API keys (authentication), clinics, and reading the audit trail. */
import { createHash, randomBytes } from 'node:crypto';
import { uuidv7 } from '../ids.js';
import { NotFoundError, UnauthorizedError } from '../errors.js';
import { KeyCache, type CacheMetrics } from './key-cache.js';
import { Operations, type Idempotency, type Replayable } from '../operation.js';
import { requirePermission } from './permissions.js';
import type { ClinicalStore, Page, Principal, RequestContext, StoredApiKey } from '../ports.js';
import type { ApiKey, ApiKeyInput, AuditEvent, AuditQuery } from '../../contract/schemas.js';

const KEY_PREFIX = 'apk_';
const BEARER = /^Bearer\s+(\S{16,8192})\s*$/i;
/** A compact JWS: three base64url parts (the last empty for an unsigned token, refused by the verifier). */
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;
const API_KEY_MAX_LENGTH = 200;

/** Turns a bearer token that is not an API key (an OIDC JWT) into a principal, or refuses it. */
export interface TokenVerifier {
  principal(token: string): Promise<Principal>;
}

export interface IssuedKey {
  id: string;
  key: string;
  keyHash: Buffer;
  keyPrefix: string;
}

/** Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force. */
export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

export function issueKey(key: string = KEY_PREFIX + randomBytes(32).toString('base64url')): IssuedKey {
  return { id: uuidv7(), key, keyHash: hashKey(key), keyPrefix: key.slice(0, 12) };
}

export function apiKeyView(k: StoredApiKey): ApiKey {
  return { id: k.id, name: k.name, role: k.role, keyPrefix: k.keyPrefix, createdAt: k.createdAt.toISOString(), revokedAt: k.revokedAt?.toISOString() ?? null };
}

/** Tells every instance that a key was revoked, so each drops it from its cache at once. */
export interface RevocationBus {
  publish(keyId: string): Promise<void>;
  onRevoked(listener: (keyId: string) => void): void;
}

export interface AccessOptions {
  /** Milliseconds a looked-up key is trusted in this process (0: no cache); bounds revocation. */
  keyCacheTtlMs?: number;
  metrics?: CacheMetrics;
  revocations?: RevocationBus;
  /** Bearer JWTs besides API keys (OIDC); unset: API keys only. */
  tokens?: TokenVerifier;
}

export class AccessService {
  private readonly keys: KeyCache;
  private readonly revocations: RevocationBus | undefined;
  private readonly tokens: TokenVerifier | null;
  private readonly bearerHint: string;

  constructor(
    private readonly store: ClinicalStore,
    private readonly ops: Operations,
    opts: AccessOptions = {},
  ) {
    this.keys = new KeyCache((hashes) => store.findPrincipalsByKeyHashes(hashes), { ttlMs: opts.keyCacheTtlMs ?? 0, metrics: opts.metrics });
    this.revocations = opts.revocations;
    this.tokens = opts.tokens ?? null;
    this.bearerHint = this.tokens === null ? 'Send an API key as "Authorization: Bearer <key>"' : 'Send an API key or an OIDC token as "Authorization: Bearer <key or token>"';
    this.revocations?.onRevoked((keyId) => this.keys.forgetKey(keyId));
  }

  /**
   * The principal behind a bearer token: an API key, or (with OIDC configured) a JWT. 401 for a
   * missing, unknown or revoked key or a token that does not verify; 403 for a token that
   * verifies but grants nothing here.
   */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    const match = BEARER.exec(authorization ?? '');
    if (match === null) throw new UnauthorizedError(this.bearerHint);
    const token = match[1]!;
    // API keys first, by their prefix: the common case costs one startsWith more than before.
    if (this.tokens !== null && !token.startsWith(KEY_PREFIX) && JWT_SHAPE.test(token)) return this.tokens.principal(token);
    if (token.length > API_KEY_MAX_LENGTH) throw new UnauthorizedError(this.bearerHint);
    const principal = await this.keys.principal(hashKey(token));
    if (principal === null) throw new UnauthorizedError('The API key is unknown or revoked');
    return principal;
  }

  /** Creates a clinic and its first admin key; the key is returned once and stored hashed. */
  async createClinic(name: string): Promise<{ clinicId: string; key: string }> {
    const issued = issueKey();
    const created = await this.store.createClinic(name, issued);
    return { clinicId: created!.clinicId, key: issued.key };
  }

  /**
   * First start: when no clinic exists, create "Default clinic" with an admin key (the given
   * one, or a generated one). Returns the key only if this call created it.
   */
  async bootstrap(key?: string): Promise<{ clinicId: string; key: string } | null> {
    const issued = issueKey(key);
    const created = await this.store.createClinic('Default clinic', issued, { ifNoClinics: true });
    return created === null ? null : { clinicId: created.clinicId, key: issued.key };
  }

  /**
   * Issues a key. The secret is returned in this response only: the idempotency record stores
   * the metadata, so a replay returns the key's metadata without the secret.
   */
  async createKey(ctx: RequestContext, input: ApiKeyInput, idem?: Idempotency): Promise<Replayable> {
    requirePermission(ctx, 'keys:manage');
    let secret: string | undefined;
    const res = await this.ops.create(ctx, { action: 'create', entityType: 'api_key', entityId: null }, idem, async (tx, draft) => {
      const issued = issueKey();
      draft.entityId = issued.id;
      secret = issued.key;
      const stored = await tx.insertApiKey({ id: issued.id, name: input.name, role: input.role, keyHash: issued.keyHash, keyPrefix: issued.keyPrefix, createdBy: ctx.principal.keyId });
      return { status: 201, body: apiKeyView(stored), location: `/v1/api-keys/${issued.id}` };
    });
    return res.replayed || secret === undefined ? res : { ...res, body: { ...(res.body as ApiKey), key: secret } };
  }

  async revokeKey(ctx: RequestContext, id: string): Promise<ApiKey> {
    requirePermission(ctx, 'keys:manage');
    const revoked = await this.ops.run(ctx, { action: 'revoke', entityType: 'api_key', entityId: id }, async (tx) => {
      const found = await tx.revokeApiKey(id);
      if (found === null) throw new NotFoundError('API key', id);
      return apiKeyView(found);
    });
    // After the commit: here at once, elsewhere by the bus (or, if it is down, the cache TTL).
    this.keys.forgetKey(id);
    await this.revocations?.publish(id).catch(() => undefined);
    return revoked;
  }

  listAudit(ctx: RequestContext, q: AuditQuery): Promise<Page<AuditEvent>> {
    requirePermission(ctx, 'audit:read');
    return this.ops.run(ctx, { action: 'search', entityType: 'audit_event', entityId: null }, async (tx) => {
      const found = await tx.listAudit({
        entityType: q.entityType,
        entityId: q.entityId,
        from: q.from === undefined ? undefined : new Date(q.from),
        to: q.to === undefined ? undefined : new Date(q.to),
        limit: q.limit,
        cursor: q.cursor,
      });
      return {
        items: found.items.map((e) => ({ ...e, occurredAt: e.occurredAt.toISOString() })),
        nextCursor: found.nextCursor,
      };
    });
  }
}
