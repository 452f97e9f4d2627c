/**
 * Route permissions (issue 14 §2). Every /v1 route declares a permission (registration fails
 * without one), and each role is answered 403 exactly on the routes whose permission it lacks:
 * checked by sending a valid request for every route of the app's route table as every role,
 * so a route added later is covered without editing this file. readonly writes nothing; staff
 * neither manages keys nor reads the audit trail. docs/permissions.md and the OpenAPI document
 * say the same as the route table.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { MATRIX_PATH, renderMatrix } from '../scripts/permissions-matrix.js';
import { PERMISSIONS, ROLES, rolesWith, type Permission } from '../src/clinical/access/permissions.js';
import { collectRoutes, requirePermissions, type RouteEntry } from '../src/http/permissions.js';
import { V1 } from '../src/http/server.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { operationsOf, PNG, send, type Ids, type OpenApiDoc, type Operation } from './support/operations.js';
import { callersByRole, client, startRuntime, type Call, type RoleName, type TestRuntime } from './support/runtime.js';

const FORBIDDEN = 'urn:agenticpet:problem:forbidden';

/** The /v1 rows of a route table that declare no permission: what must never exist. */
function undeclaredV1(table: readonly RouteEntry[]): string[] {
  return table.filter((r) => (r.url === V1 || r.url.startsWith(`${V1}/`)) && r.permission === null).map((r) => `${r.method} ${r.url}`);
}

/** The route table's /v1 rows, as the requests to send (HEAD mirrors GET and is checked apart). */
const v1Rows = (table: readonly RouteEntry[]): (RouteEntry & { permission: Permission })[] =>
  table.filter((r): r is RouteEntry & { permission: Permission } => r.url.startsWith(`${V1}/`) && r.method !== 'HEAD' && r.permission !== null);

/** The OpenAPI operation key of a route table row: /v1/patients/:id -> "get /v1/patients/{id}". */
const openApiKey = (r: RouteEntry): string => `${r.method.toLowerCase()} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`;

describe('route permissions: declaration', () => {
  it('refuses to start with a /v1 route that declares no permission, or an unknown one, in the scope or a child plugin', async () => {
    const undeclared = Fastify();
    undeclared.register(
      async (v1) => {
        requirePermissions(v1);
        v1.get('/declared', { config: { permission: 'records:read' } }, async () => 'ok');
        v1.post('/undeclared', async () => 'ok');
      },
      { prefix: V1 },
    );
    await assert.rejects(async () => void (await undeclared.ready()), /POST \/v1\/undeclared declares no permission/);

    const unknown = Fastify();
    unknown.register(
      async (v1) => {
        requirePermissions(v1);
        v1.delete('/x', { config: { permission: 'records:delete' as Permission } }, async () => 'ok');
      },
      { prefix: V1 },
    );
    await assert.rejects(async () => void (await unknown.ready()), /DELETE \/v1\/x declares the unknown permission "records:delete"/);

    const nested = Fastify();
    nested.register(
      async (v1) => {
        requirePermissions(v1);
        await v1.register(async (child) => void child.put('/deep', async () => 'ok'));
      },
      { prefix: V1 },
    );
    await assert.rejects(async () => void (await nested.ready()), /PUT \/v1\/deep declares no permission/);
  });

  it('refuses a permission declared outside /v1, where no key is authenticated to check it', () => {
    const app = Fastify();
    collectRoutes(app, V1);
    // A root route is registered at once, so the refusal is thrown by the registration itself.
    assert.throws(() => app.get('/open', { config: { permission: 'records:read' } }, async () => 'ok'), /GET \/open declares the permission records:read outside \/v1/);
  });

  it('the route-table check finds a /v1 route without a permission (so it can fail)', async () => {
    // The same collector as the app, without the enforcement: what the check must catch.
    const app = Fastify();
    const table = collectRoutes(app, V1);
    await app.register(
      async (v1) => {
        v1.get('/declared', { config: { permission: 'records:read' } }, async () => 'ok');
        v1.post('/forgotten', async () => 'ok');
      },
      { prefix: V1 },
    );
    app.get('/healthz', async () => 'ok');
    await app.ready();
    assert.deepEqual(undeclaredV1(table), ['POST /v1/forgotten']);
    await app.close();
  });

  it('names a known role for every permission and gives readonly no write', () => {
    for (const [name, spec] of Object.entries(PERMISSIONS)) {
      assert.ok(spec.roles.length > 0, `${name} is held by no role`);
      for (const role of spec.roles) assert.ok(ROLES.includes(role), `${name}: unknown role ${role}`);
    }
    assert.deepEqual(ROLES, ['admin', 'vet', 'staff', 'readonly']);
    assert.deepEqual(
      (Object.keys(PERMISSIONS) as Permission[]).filter((p) => rolesWith(p).includes('readonly')),
      ['records:read'],
    );
    for (const p of ['keys:manage', 'audit:read'] as const) assert.ok(!rolesWith(p).includes('staff'), `staff holds ${p}`);
  });
});

describe('route permissions: the app', () => {
  let rt: TestRuntime;
  let table: readonly RouteEntry[];
  let callers: { role: RoleName; call: Call }[];
  let admin: Call;
  let ids: Ids;
  let etag: string;

  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open());
    table = rt.runtime.app.routeTable;
    const clinic = await rt.newClinic('Permissions clinic');
    admin = client(rt, clinic.key);
    callers = await callersByRole(rt, clinic.key);
    const created = async (method: string, url: string, opts: Parameters<Call>[2]): Promise<string> => {
      const res = await admin(method, url, opts);
      assert.equal(res.statusCode, 201, `${url}: ${res.body}`);
      return res.json().id as string;
    };
    // The clinic's own records, so that allowed requests mostly succeed rather than answer 404.
    const owner = await created('POST', '/v1/owners', { body: { name: 'Own owner' } });
    const patient = await created('POST', '/v1/patients', { body: { name: 'Ownpet', species: 'dog', sex: 'female', neutered: false, ownerId: owner, weightKg: 30 } });
    const encounter = await created('POST', `/v1/patients/${patient}/encounters`, { body: { reason: 'retching' } });
    const observation = await created('POST', `/v1/encounters/${encounter}/observations`, { body: { category: 'note', code: 'note', value: 'a note' } });
    const media = await created('POST', `/v1/media?patientId=${patient}&encounterId=${encounter}`, { raw: PNG, contentType: 'image/png' });
    const diagnosis = await created('POST', '/v1/diagnoses', { body: { patientId: patient, encounterId: encounter, complaint: 'unproductive retching, distended abdomen', mediaIds: [media] } });
    const consultation = await created('POST', '/v1/consultations', { body: { patientId: patient, encounterId: encounter } });
    // A spare key: the admin's DELETE /v1/api-keys/:id revokes it, not a key the suite uses.
    const spare = await created('POST', '/v1/api-keys', { body: { name: 'spare', role: 'staff' } });
    // A registered model, so that the registry's routes mostly answer for it rather than 404.
    const model = { name: 'permissions-model', version: '1.0.0', sha256: 'd'.repeat(64), input: { name: 'image', width: 8, height: 8, channels: 1, layout: 'NCHW', mean: [0.5], std: [0.25] }, output: { activation: 'none' }, labels: [{ label: 'photograph', finding: null, threshold: 0.5, weight: 0 }] };
    assert.equal((await admin('POST', '/v1/models', { body: model })).statusCode, 201);
    ids = { owner, patient, encounter, observation, media, diagnosis, consultation, apiKey: spare, model: model.name, modelVersion: model.version };
    etag = String((await admin('GET', `/v1/patients/${patient}`)).headers.etag);
  });
  after(async () => {
    await rt?.close();
  });

  it('every /v1 route of the route table declares a permission, and every public route is outside /v1', () => {
    assert.deepEqual(undeclaredV1(table), []);
    assert.ok(v1Rows(table).length >= 25, `the route table has ${v1Rows(table).length} /v1 routes`);
    const open = table.filter((r) => r.permission === null).map((r) => r.url);
    for (const url of ['/healthz', '/readyz', '/metrics', '/docs', '/openapi.json', '/ops']) assert.ok(open.includes(url), `${url} is public`);
  });

  it('docs/permissions.md is what scripts/permissions-matrix.ts generates from the route table', () => {
    const generated = renderMatrix(table);
    for (const r of table.filter((row) => row.method !== 'HEAD')) assert.ok(generated.includes(`| ${r.method} | \`${r.url}\` |`), `${r.method} ${r.url} is in the matrix`);
    assert.equal(fs.readFileSync(MATRIX_PATH, 'utf8'), generated, 'docs/permissions.md is stale: run npx tsx scripts/permissions-matrix.ts');
  });

  it('the OpenAPI document shows each operation its permission and roles', async () => {
    const doc = (await rt.runtime.app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      paths: Record<string, Record<string, { description?: string; 'x-permission'?: { name: string; roles: string[] } }>>;
    };
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) => (path.startsWith(`${V1}/`) ? Object.keys(methods).map((m) => `${m} ${path}`) : []));
    assert.deepEqual(documented.sort(), v1Rows(table).map(openApiKey).sort(), 'the document and the route table list the same /v1 operations');
    for (const row of v1Rows(table)) {
      const [method, path] = openApiKey(row).split(' ') as [string, string];
      const op = doc.paths[path]![method]!;
      assert.deepEqual(op['x-permission'], { name: row.permission, roles: [...rolesWith(row.permission)] }, openApiKey(row));
      assert.match(op.description ?? '', new RegExp(`Permission: \`${row.permission}\` \\(roles: ${rolesWith(row.permission).join(', ')}\\)`), openApiKey(row));
    }
    assert.equal(doc.paths['/healthz']!.get!['x-permission'], undefined);
  });

  it('every /v1 route x every role: 403 exactly when the role lacks the permission; readonly writes nothing', async () => {
    const doc = (await rt.runtime.app.inject({ method: 'GET', url: '/openapi.json' })).json() as OpenApiDoc;
    const operations = new Map(operationsOf(doc).map((op) => [`${op.method} ${op.path}`, op]));
    const opOf = (row: RouteEntry): Operation => {
      const op = operations.get(openApiKey(row));
      assert.ok(op !== undefined, `${row.method} ${row.url} is not in the OpenAPI document`);
      return op;
    };
    const rows = v1Rows(table);
    const snapshot = async (): Promise<string> => {
      const audit = (await admin('GET', '/v1/audit?limit=500')).json() as { items: { action: string; entityType: string; entityId: string | null }[] };
      const consultation = (await admin('GET', `/v1/consultations/${ids.consultation}`)).json() as { inputs?: unknown };
      return JSON.stringify({
        writes: audit.items.filter((e) => !['read', 'search'].includes(e.action)).map((e) => `${e.action} ${e.entityType} ${e.entityId}`),
        patient: (await admin('GET', `/v1/patients/${ids.patient}`)).body,
        patients: (await admin('GET', '/v1/patients')).body,
        consultationInputs: consultation.inputs,
        spareKeyRevoked: (await admin('GET', `/v1/audit?entityId=${ids.apiKey}`)).json().items.filter((e: { action: string }) => e.action === 'revoke').length,
      });
    };

    const failures: string[] = [];
    const tally: Record<string, number> = {};
    // The refused roles first, so that an allowed write (a delete, a revocation) cannot hide one.
    const order: RoleName[] = ['readonly', 'staff', 'vet', 'admin'];
    const beforeReadonly = await snapshot();
    for (const role of order) {
      const call = callers.find((c) => c.role === role)!.call;
      for (const row of rows) {
        const label = `${role} ${row.method} ${row.url} (${row.permission})`;
        const answer = await send(call, opOf(row), ids, etag);
        tally[`${role} ${answer.status}`] = (tally[`${role} ${answer.status}`] ?? 0) + 1;
        const allowed = rolesWith(row.permission).includes(role);
        if (!allowed) {
          if (answer.status !== 403 || answer.type !== FORBIDDEN) failures.push(`${label}: expected 403 forbidden, got ${answer.status} ${answer.body.slice(0, 160)}`);
          else if (!answer.body.includes(`needs the permission ${row.permission}`)) failures.push(`${label}: the 403 does not name the permission: ${answer.body.slice(0, 160)}`);
        } else if (answer.status === 401 || answer.status === 403 || answer.status >= 500) {
          failures.push(`${label}: allowed, but answered ${answer.status} ${answer.body.slice(0, 160)}`);
        }
        // The policy itself, independent of the table: readonly writes nothing, staff manages no keys and reads no audit.
        if (role === 'readonly' && row.method !== 'GET' && answer.status !== 403) failures.push(`${label}: readonly was not refused a ${row.method}`);
        if (role === 'staff' && /^\/v1\/(api-keys|audit)(\/|$)/.test(row.url) && answer.status !== 403) failures.push(`${label}: staff was not refused`);
      }
      if (role === 'readonly') assert.equal(await snapshot(), beforeReadonly, "readonly's requests changed nothing");
    }
    assert.deepEqual(failures, []);
    // Each role was refused somewhere and allowed somewhere, and the allowed writes took effect.
    assert.ok(rows.filter((r) => r.method !== 'GET').length >= 10);
    assert.ok(rows.some((r) => r.url.startsWith('/v1/api-keys')) && rows.some((r) => r.url === '/v1/audit'));
    assert.notEqual(await snapshot(), beforeReadonly, 'the allowed roles did write');
    console.log(`permissions: ${rows.length} routes x ${order.length} roles; statuses ${JSON.stringify(tally)}`);
  });

  it('HEAD follows its GET route: readonly refused the audit trail, allowed a patient', async () => {
    const readonly = callers.find((c) => c.role === 'readonly')!.call;
    assert.equal((await readonly('HEAD', '/v1/audit')).statusCode, 403);
    assert.equal((await readonly('HEAD', `/v1/owners/${ids.owner}`)).statusCode, 200);
    assert.equal((await admin('HEAD', '/v1/audit')).statusCode, 200);
  });

  it('a refused request is answered before its body is read: readonly with an invalid body gets 403, not 400', async () => {
    const readonly = callers.find((c) => c.role === 'readonly')!.call;
    const res = await readonly('POST', '/v1/owners', { raw: '{not json', contentType: 'application/json' });
    assert.equal(res.statusCode, 403, res.body);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    // An allowed role with the same body is told what is wrong with it.
    assert.equal((await callers.find((c) => c.role === 'staff')!.call('POST', '/v1/owners', { raw: '{not json', contentType: 'application/json' })).statusCode, 400);
  });
});
