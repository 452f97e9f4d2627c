/**
 * OIDC bearer tokens (issue 14 §2, the JWT part of §3): a local identity provider (a JWKS served
 * on 127.0.0.1 from keys generated here) signs tokens; the real service, embedded, must accept
 * the good ones within their clinic and role, record them in the audit trail, and answer every
 * forged, stale or misdirected token 401 problem+json.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { base64url, exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { v4 as uuidv4, version as uuidVersion } from 'uuid';
import { OidcVerifier, oidcPrincipalId } from '../src/clinical/access/oidc.js';
import { ConfigError, loadConfig } from '../src/config.js';
import type { SqlExecutor } from '../src/storage/sql/executor.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';
import { client, startRuntime, type TestRuntime } from './support/runtime.js';

const AUDIENCE = 'agenticpet-test-client';
const SKEW = 30;
const now = () => Math.floor(Date.now() / 1000);

interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
  spki: string;
}

async function signingKey(kid: string, alg: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }, spki: await exportSPKI(publicKey) };
}

/** The identity provider's JWKS endpoint; `keys` is what it publishes, and can change (rotation). */
class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  private readonly server = http.createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    this.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

type Open = () => Promise<{ db: SqlExecutor; cleanup(): Promise<void> }>;

function oidcSuite(name: string, open: Open, skip: string | false): void {
  describe(`OIDC bearer tokens (JWT) besides API keys: ${name}`, { skip }, () => {
    const idp = new JwksServer();
    let issuer: string;
    let rt: TestRuntime;
    let clinicA: { clinicId: string; key: string };
    let clinicB: { clinicId: string; key: string };
    let k1: SigningKey;
    let k2: SigningKey;
    let k3: SigningKey;
    let attacker: SigningKey;
    let ownerA: string;
    let cleanup: (() => Promise<void>) | undefined;

    /** A token as the provider would issue it: good unless the overrides say otherwise. */
    async function mint(claims: JWTPayload = {}, key: SigningKey = k1, header: Record<string, unknown> = {}): Promise<string> {
      const payload: JWTPayload = { iss: issuer, aud: AUDIENCE, sub: 'user-vet-1', iat: now(), exp: now() + 300, 'custom:clinic_id': clinicA.clinicId, 'custom:role': 'vet', ...claims };
      for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
      return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
    }

    const as = (token: string) => client(rt, token);

    const problem = (res: { statusCode: number; headers: Record<string, unknown>; body: string; json(): Record<string, unknown> }, status: number, type?: string) => {
      assert.equal(res.statusCode, status, res.body);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      const body = res.json();
      assert.equal(body.status, status);
      if (type !== undefined) assert.equal(body.type, `urn:agenticpet:problem:${type}`);
      return body;
    };

    before(async () => {
      [k1, k2, k3, attacker] = await Promise.all([signingKey('k1', 'RS256'), signingKey('k2', 'ES256'), signingKey('k3', 'EdDSA'), signingKey('k1', 'RS256')]);
      idp.keys = [k1.jwk];
      issuer = await idp.start();
      const opened = await open();
      cleanup = opened.cleanup;
      rt = await startRuntime(opened.db, {
        AGENTICPET_OIDC_ISSUER: issuer,
        AGENTICPET_OIDC_AUDIENCE: `other-client,${AUDIENCE}`,
        AGENTICPET_OIDC_CLOCK_SKEW_SECONDS: String(SKEW),
        // Every unknown kid refetches at once, so rotation is visible without waiting 30 s.
        AGENTICPET_OIDC_JWKS_COOLDOWN_SECONDS: '0',
      });
      clinicA = await rt.newClinic('Clinic A');
      clinicB = await rt.newClinic('Clinic B');
      ownerA = (await client(rt, clinicA.key)('POST', '/v1/owners', { body: { name: 'Owner A' } })).json().id;
    });
    after(async () => {
      await rt?.close();
      await cleanup?.();
      await idp.stop();
    });

    it('a valid token reads and writes within its clinic, and only there', async () => {
      const vet = as(await mint());
      const created = await vet('POST', '/v1/patients', { body: { name: 'Rex', species: 'dog', sex: 'male', neutered: false, ownerId: ownerA } });
      assert.equal(created.statusCode, 201, created.body);
      const id = created.json().id;
      assert.equal((await vet('GET', `/v1/patients/${id}`)).json().name, 'Rex');
      // Clinic A's own API key sees it: the token wrote into clinic A.
      assert.equal((await client(rt, clinicA.key)('GET', `/v1/patients/${id}`)).statusCode, 200);
      // A token for clinic B, like clinic B's key, does not.
      const vetB = as(await mint({ sub: 'user-vet-b', 'custom:clinic_id': clinicB.clinicId }));
      problem(await vetB('GET', `/v1/patients/${id}`), 404);
      problem(await client(rt, clinicB.key)('GET', `/v1/patients/${id}`), 404);
      // API keys keep working beside tokens.
      assert.equal((await client(rt, clinicA.key)('GET', '/v1/patients')).statusCode, 200);
    });

    it('the claims decide the role: readonly reads but cannot write; groups map to a role; anything else grants nothing', async () => {
      const readonly = as(await mint({ 'custom:role': 'readonly' }));
      assert.equal((await readonly('GET', '/v1/patients')).statusCode, 200);
      problem(await readonly('POST', '/v1/owners', { body: { name: 'x' } }), 403, 'forbidden');
      problem(await readonly('GET', '/v1/audit'), 403, 'forbidden');
      // No role claim: the most privileged mapped group; unknown groups are ignored.
      const grouped = as(await mint({ 'custom:role': undefined, 'cognito:groups': ['night-shift', 'staff', 'vet'] }));
      const byGroup = await grouped('POST', '/v1/owners', { body: { name: 'By group' } });
      assert.equal(byGroup.statusCode, 201, byGroup.body);
      problem(await grouped('GET', '/v1/audit'), 403, 'forbidden');
      const groupAdmin = as(await mint({ sub: 'user-group-admin', 'custom:role': undefined, 'cognito:groups': ['readonly', 'admin'] }));
      const audit = await groupAdmin('GET', `/v1/audit?entityType=owner&entityId=${byGroup.json().id}`);
      assert.equal(audit.statusCode, 200, audit.body);
      assert.deepEqual(audit.json().items.map((e: { role: string }) => e.role), ['vet'], 'vet, the strongest of staff and vet');
      // An explicit role wins over the groups, even when the groups would grant more.
      problem(await as(await mint({ 'custom:role': 'readonly', 'cognito:groups': ['admin'] }))('POST', '/v1/owners', { body: { name: 'x' } }), 403);
      // Roles that are not ours, no role at all, claims that merely sound powerful: 403 on every route.
      const grantNothing: JWTPayload[] = [
        { 'custom:role': 'superuser' },
        { 'custom:role': ['admin'] },
        { 'custom:role': undefined },
        { 'custom:role': undefined, 'cognito:groups': ['Admins'] },
        { 'custom:role': undefined, 'cognito:groups': 'admin' },
        { 'custom:role': undefined, admin: true, role: 'admin', scope: 'admin', groups: ['admin'] },
      ];
      for (const claims of grantNothing) {
        problem(await as(await mint(claims))('GET', '/v1/patients'), 403, 'forbidden');
      }
      // A clinic that does not exist, or a claim that is not a clinic id at all.
      for (const clinic of [uuidv4(), 'not-a-uuid', "' OR 1=1 --"]) {
        problem(await as(await mint({ 'custom:clinic_id': clinic }))('GET', '/v1/patients'), 403, 'forbidden');
      }
    });

    it('audit events and record history name the token principal: a stable UUIDv5 of issuer and subject', async () => {
      const adminToken = await mint({ sub: 'user-admin-1', 'custom:role': 'admin' });
      const admin = as(adminToken);
      const owner = await admin('POST', '/v1/owners', { body: { name: 'Audited owner' }, headers: { 'x-request-id': 'oidc-audit-1' } });
      assert.equal(owner.statusCode, 201, owner.body);
      const expected = oidcPrincipalId(issuer, 'user-admin-1');
      assert.equal(uuidVersion(expected), 5);
      assert.notEqual(expected, oidcPrincipalId(issuer, 'user-admin-2'));
      assert.notEqual(expected, oidcPrincipalId(`${issuer}/other`, 'user-admin-1'));
      // Another token of the same user (a later one) is the same principal.
      const later = as(await mint({ sub: 'user-admin-1', 'custom:role': 'admin', iat: now() + 1 }));
      await later('GET', `/v1/owners/${owner.json().id}`);
      const audit = await admin('GET', `/v1/audit?entityType=owner&entityId=${owner.json().id}`);
      assert.equal(audit.statusCode, 200, audit.body);
      const events = audit.json().items as Array<{ action: string; principalId: string; role: string; requestId: string }>;
      assert.deepEqual(events.map((e) => [e.action, e.principalId, e.role]), [
        ['create', expected, 'admin'],
        ['read', expected, 'admin'],
      ]);
      assert.equal(events[0]!.requestId, 'oidc-audit-1');
      // The record's history names the same principal as the version's author.
      const patient = await admin('POST', '/v1/patients', { body: { name: 'Mia', species: 'cat', sex: 'female', neutered: true, ownerId: owner.json().id } });
      assert.equal(patient.statusCode, 201, patient.body);
      const history = await admin('GET', `/v1/patients/${patient.json().id}/history`);
      assert.equal(history.statusCode, 200, history.body);
      assert.deepEqual(history.json().items.map((v: { recordedBy: string }) => v.recordedBy), [expected]);
      // A token admin issues an API key (created_by is the token principal), and the key works.
      const key = await admin('POST', '/v1/api-keys', { body: { name: 'issued by a token user', role: 'readonly' } });
      assert.equal(key.statusCode, 201, key.body);
      assert.equal((await client(rt, key.json().key)('GET', '/v1/patients')).statusCode, 200);
      // The audit chain still verifies with token principals in it.
      assert.equal((await rt.runtime.store.verifyAudit()).ok, true);
    });

    it('Cognito access tokens: client_id instead of aud; a foreign aud is not rescued by client_id', async () => {
      const access = await mint({ aud: undefined, client_id: AUDIENCE, token_use: 'access' });
      assert.equal((await as(access)('GET', '/v1/patients')).statusCode, 200);
      problem(await as(await mint({ aud: undefined, client_id: 'someone-else' }))('GET', '/v1/patients'), 401, 'unauthorized');
      problem(await as(await mint({ aud: 'someone-else', client_id: AUDIENCE }))('GET', '/v1/patients'), 401, 'unauthorized');
      problem(await as(await mint({ aud: undefined }))('GET', '/v1/patients'), 401, 'unauthorized');
      // aud as a list is accepted when it names us.
      assert.equal((await as(await mint({ aud: ['someone-else', AUDIENCE] }))('GET', '/v1/patients')).statusCode, 200);
    });

    it('expiry with the clock-skew tolerance: expired within the skew passes, beyond it is refused; so is not-yet-valid', async () => {
      assert.equal((await as(await mint({ exp: now() - (SKEW - 10) }))('GET', '/v1/patients')).statusCode, 200);
      const expired = problem(await as(await mint({ exp: now() - (SKEW + 30) }))('GET', '/v1/patients'), 401, 'unauthorized');
      assert.match(String(expired.detail), /expired/);
      problem(await as(await mint({ nbf: now() + SKEW + 60 }))('GET', '/v1/patients'), 401, 'unauthorized');
      assert.equal((await as(await mint({ nbf: now() + (SKEW - 10) }))('GET', '/v1/patients')).statusCode, 200);
      problem(await as(await mint({ exp: undefined }))('GET', '/v1/patients'), 401, 'unauthorized');
      problem(await as(await mint({ sub: undefined }))('GET', '/v1/patients'), 401, 'unauthorized');
    });

    it('JWT attacks answer 401 problem+json', async () => {
      const good = await mint({ 'custom:role': 'readonly' });
      const [h, p, signature] = good.split('.') as [string, string, string];
      const encode = (o: object) => base64url.encode(JSON.stringify(o));
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as JWTPayload;
      const hs256 = (secret: string) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(new TextEncoder().encode(secret));
      // Each is refused for its own reason (the detail says which check failed), not by accident.
      const attacks: Record<string, [string, RegExp]> = {
        'alg none': [`${encode({ alg: 'none', typ: 'JWT' })}.${p}.`, /algorithm/],
        'alg none, kid of a real key': [`${encode({ alg: 'none', kid: 'k1' })}.${p}.`, /algorithm/],
        // Key confusion: HMAC with the published public key as the secret.
        'HS256 keyed with the public key (PEM)': [await hs256(k1.spki), /algorithm/],
        'HS256 keyed with the public JWK': [await hs256(JSON.stringify(k1.jwk)), /algorithm/],
        'a key not in the JWKS, under a published kid': [await mint({ 'custom:role': 'admin' }, attacker), /signature does not verify/],
        'a key not in the JWKS, under an unknown kid': [await mint({ 'custom:role': 'admin' }, { ...attacker, kid: 'attacker' }), /not signed by one of/],
        'wrong issuer': [await mint({ iss: 'https://evil.example.com' }), /"iss"/],
        'issuer with a trailing slash': [await mint({ iss: `${issuer}/` }), /"iss"/],
        'wrong audience': [await mint({ aud: 'someone-else' }), /audience/],
        'missing clinic claim': [await mint({ 'custom:clinic_id': undefined }), /names no clinic/],
        'clinic claim not a string': [await mint({ 'custom:clinic_id': [clinicA.clinicId] }), /names no clinic/],
        'tampered payload (readonly raised to admin)': [`${h}.${encode({ ...claims, 'custom:role': 'admin' })}.${signature}`, /signature does not verify/],
        'signature stripped': [`${h}.${p}.`, /signature does not verify/],
        'header alg swapped to another allowed one': [`${encode({ alg: 'PS256', kid: 'k1', typ: 'JWT' })}.${p}.${signature}`, /not signed by one of/],
        'garbage in the shape of a JWT': ['eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl', /not a valid JWT/],
      };
      for (const [name, [token, reason]] of Object.entries(attacks)) {
        const res = await rt.runtime.app.inject({ method: 'GET', url: '/v1/patients', headers: { authorization: `Bearer ${token}` } });
        assert.equal(res.statusCode, 401, `${name}: ${res.body}`);
        assert.match(String(problem(res, 401, 'unauthorized').detail), reason, name);
        assert.equal(res.headers['www-authenticate'], 'Bearer', name);
        assert.ok(!res.body.includes('    at '), `${name}: no stack trace`);
      }
      // The genuine token those were made from still works.
      assert.equal((await as(good)('GET', '/v1/patients')).statusCode, 200);
    });

    it('key rotation: a new kid refetches the key set; the removed key no longer verifies', async () => {
      const before = await mint({ sub: 'rotation-user' });
      assert.equal((await as(before)('GET', '/v1/patients')).statusCode, 200);
      idp.keys = [k2.jwk];
      const fetches = idp.fetches;
      const rotated = await mint({ sub: 'rotation-user' }, k2);
      assert.equal((await as(rotated)('GET', '/v1/patients')).statusCode, 200);
      assert.equal(idp.fetches, fetches + 1, 'the unknown kid fetched the key set once');
      // A token of the removed key, minted now (never verified before, so not remembered).
      problem(await as(await mint({ sub: 'rotation-user', iat: now() + 1 }))('GET', '/v1/patients'), 401, 'unauthorized');
      assert.equal((await as(await mint({ sub: 'rotation-user', iat: now() + 2 }, k2))('POST', '/v1/owners', { body: { name: 'After rotation' } })).statusCode, 201);
    });

    it('the key set unreachable: 503 problem+json (dependency failure), not 500; keys already fetched keep working', async () => {
      await idp.stop();
      const res = await as(await mint({}, k3))('GET', '/v1/patients');
      problem(res, 503, 'dependency-unavailable');
      assert.equal(res.headers['retry-after'], '5');
      // k2 is in the key set fetched before the outage.
      assert.equal((await as(await mint({ iat: now() + 3 }, k2))('GET', '/v1/patients')).statusCode, 200);
      // API keys never depend on the identity provider.
      assert.equal((await client(rt, clinicA.key)('GET', '/v1/patients')).statusCode, 200);
    });
  });

}

oidcSuite('PGlite (embedded)', async () => ({ db: await PgliteExecutor.open(), cleanup: async () => undefined /* closed with the runtime */ }), false);
oidcSuite(
  'PostgreSQL',
  async () => {
    const database = await createTestDatabase();
    return { db: new PostgresExecutor({ connectionString: database.url, poolMax: 4 }), cleanup: () => database.drop() };
  },
  pgSkipReason(),
);

describe('OidcVerifier: what the end-to-end suite cannot see', () => {
  const idp = new JwksServer();
  const clinicId = uuidv4();
  let key: SigningKey;
  let issuer: string;
  const options = (over: Partial<ConstructorParameters<typeof OidcVerifier>[0]> = {}): ConstructorParameters<typeof OidcVerifier>[0] => ({
    ...loadConfig({ AGENTICPET_OIDC_ISSUER: issuer, AGENTICPET_OIDC_AUDIENCE: AUDIENCE, AGENTICPET_OIDC_CLOCK_SKEW_SECONDS: '0' }).oidc!,
    ...over,
  });
  // The clinic lookup is the store's (exercised end to end above); here one clinic exists.
  const clinics = { clinicExists: async (id: string) => id === clinicId };
  const mint = (claims: JWTPayload, kid = key.kid) => {
    const payload = { iss: issuer, aud: AUDIENCE, sub: 'u1', exp: now() + 300, 'custom:clinic_id': clinicId, 'custom:role': 'vet', ...claims };
    return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid }).sign(key.privateKey);
  };

  before(async () => {
    key = await signingKey('only', 'ES256');
    idp.keys = [key.jwk];
    issuer = await idp.start();
  });
  after(() => idp.stop());

  it('a remembered token is never accepted past its expiry', async () => {
    const lookups: boolean[] = [];
    const verifier = new OidcVerifier(options(), clinics, { ttlMs: 60_000, metrics: { cacheLookup: (cache, hit) => cache === 'oidc_tokens' && lookups.push(hit) } });
    const token = await mint({ exp: now() + 1 });
    assert.equal((await verifier.principal(token)).role, 'vet');
    assert.equal((await verifier.principal(token)).role, 'vet');
    assert.deepEqual(lookups, [false, true], 'verified once, then remembered');
    await new Promise((resolve) => setTimeout(resolve, 2100));
    await assert.rejects(verifier.principal(token), (err: Error & { status?: number }) => err.status === 401 && /expired/.test(err.message));
  });

  it('made-up key ids refetch the key set at most once per cooldown', async () => {
    const verifier = new OidcVerifier(options({ jwksCooldownSeconds: 30 }), clinics);
    await verifier.principal(await mint({}));
    const fetches = idp.fetches;
    for (let i = 0; i < 20; i++) await assert.rejects(verifier.principal(await mint({}, `made-up-${i}`)), (err: Error & { status?: number }) => err.status === 401);
    assert.equal(idp.fetches, fetches, 'no refetch within the cooldown');
  });

  it('token_use, when configured, must match (Cognito ID vs access tokens)', async () => {
    const idOnly = new OidcVerifier(options({ tokenUse: ['id'] }), clinics);
    assert.equal((await idOnly.principal(await mint({ token_use: 'id' }))).clinicId, clinicId);
    for (const claims of [{ token_use: 'access' }, {}, { token_use: ['id'] }]) {
      await assert.rejects(idOnly.principal(await mint(claims)), (err: Error & { status?: number }) => err.status === 401 && /token_use/.test(err.message));
    }
  });
});

describe('OIDC configuration', () => {
  const base = { AGENTICPET_OIDC_ISSUER: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example', AGENTICPET_OIDC_AUDIENCE: 'client-1' };
  const refused = (env: Record<string, string>, variable: string) =>
    assert.throws(
      () => loadConfig(env),
      (err: unknown) => err instanceof ConfigError && err.variable === variable,
    );

  it('off unless the issuer is set; defaults the JWKS URL, claims and an asymmetric allow-list', () => {
    assert.equal(loadConfig({}).oidc, undefined);
    const oidc = loadConfig(base).oidc!;
    assert.equal(oidc.jwksUrl, `${base.AGENTICPET_OIDC_ISSUER}/.well-known/jwks.json`);
    assert.deepEqual(oidc.audiences, ['client-1']);
    assert.equal(oidc.clinicClaim, 'custom:clinic_id');
    assert.equal(oidc.roleClaim, 'custom:role');
    assert.equal(oidc.groupsClaim, 'cognito:groups');
    assert.ok(oidc.algorithms.every((a: string) => !a.startsWith('HS') && a !== 'none'));
    assert.equal(loadConfig({ ...base, AGENTICPET_OIDC_GROUP_ROLES: 'Vets=vet, ClinicAdmins=admin' }).oidc!.groupRoles.get('ClinicAdmins'), 'admin');
  });

  it('refuses what would weaken verification, naming the variable', () => {
    refused({ ...base, AGENTICPET_OIDC_AUDIENCE: '' }, 'AGENTICPET_OIDC_AUDIENCE');
    refused({ ...base, AGENTICPET_OIDC_ALGORITHMS: 'RS256,HS256' }, 'AGENTICPET_OIDC_ALGORITHMS');
    refused({ ...base, AGENTICPET_OIDC_ALGORITHMS: 'none' }, 'AGENTICPET_OIDC_ALGORITHMS');
    refused({ ...base, AGENTICPET_OIDC_JWKS_URL: 'http://idp.example.com/jwks.json' }, 'AGENTICPET_OIDC_JWKS_URL');
    refused({ ...base, AGENTICPET_OIDC_TOKEN_USE: 'refresh' }, 'AGENTICPET_OIDC_TOKEN_USE');
    refused({ ...base, AGENTICPET_OIDC_GROUP_ROLES: 'Vets=superuser' }, 'AGENTICPET_OIDC_GROUP_ROLES');
    refused({ ...base, AGENTICPET_OIDC_CLOCK_SKEW_SECONDS: '3600' }, 'AGENTICPET_OIDC_CLOCK_SKEW_SECONDS');
    refused({ AGENTICPET_OIDC_AUDIENCE: 'client-1' }, 'AGENTICPET_OIDC_AUDIENCE');
    refused({ ...base, AGENTICPET_BOOTSTRAP_KEY: 'abcdefgh.ijklmnopqrst.uvwxyz' }, 'AGENTICPET_BOOTSTRAP_KEY');
  });
});
