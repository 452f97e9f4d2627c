/**
 * Security headers on API responses, the Swagger UI's own CSP (and that the UI still renders
 * under it, in Debian's chromium), and CORS: only the allow-listed origins, preflight answered
 * without authentication, credentials off; no CORS header at all without an allow-list.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { chromium, type Browser } from 'playwright-core';
import { loadConfig } from '../src/config.js';
import { DOCS_CSP } from '../src/http/security-headers.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { client, startRuntime, type TestRuntime } from './support/runtime.js';

const CHROMIUM = '/usr/bin/chromium';
const ALLOWED = 'https://app.example.com';
const ALSO_ALLOWED = 'http://localhost:5173';
const list = (v: unknown) =>
  String(v ?? '')
    .toLowerCase()
    .split(/\s*,\s*/)
    .filter((s) => s !== '');

function assertApiHeaders(res: LightMyRequestResponse, what: string): void {
  const csp = String(res.headers['content-security-policy']);
  assert.match(csp, /default-src 'none'/, what);
  assert.match(csp, /frame-ancestors 'none'/, what);
  assert.match(String(res.headers['strict-transport-security']), /^max-age=63072000; includeSubDomains$/, what);
  assert.equal(res.headers['x-content-type-options'], 'nosniff', what);
  assert.equal(res.headers['x-frame-options'], 'DENY', what);
  assert.equal(res.headers['referrer-policy'], 'no-referrer', what);
  assert.equal(res.headers['x-powered-by'], undefined, what);
}

describe('security headers and CORS (allow-list set)', () => {
  let rt: TestRuntime;
  let key: string;

  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open(), { AGENTICPET_CORS_ORIGINS: `${ALLOWED}, ${ALSO_ALLOWED}`, AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '100' });
    key = (await rt.newClinic('Headers clinic')).key;
  });
  after(async () => rt?.close());

  it('sends the security headers on API answers of every kind (200, 401, 404, 400)', async () => {
    const api = client(rt, key);
    const owner = await api('POST', '/v1/owners', { body: { name: 'Header owner' } });
    assert.equal(owner.statusCode, 201);
    const cases: Array<[string, LightMyRequestResponse]> = [
      ['201', owner],
      ['200', await api('GET', `/v1/owners/${owner.json().id}`)],
      ['401', await client(rt, null)('GET', '/v1/owners/x')],
      ['404', await api('GET', '/v1/nowhere')],
      ['400', await api('POST', '/v1/owners', { raw: '{', contentType: 'application/json' })],
      ['healthz', await api('GET', '/healthz')],
    ];
    for (const [what, res] of cases) assertApiHeaders(res, what);
  });

  it('gives the docs their own CSP (scripts and styles from this origin, not frameable)', async () => {
    for (const url of ['/docs', '/docs/json', '/docs/static/swagger-ui-bundle.js']) {
      const res = await rt.runtime.app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.headers['content-security-policy'], DOCS_CSP, url);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', url);
    }
  });

  it('answers an allowed origin with ACAO and the exposed headers, and no credentials', async () => {
    for (const origin of [ALLOWED, ALSO_ALLOWED]) {
      const res = await client(rt, key)('GET', '/v1/nowhere', { headers: { origin } });
      assert.equal(res.headers['access-control-allow-origin'], origin);
      assert.equal(res.headers['access-control-allow-credentials'], undefined);
      assert.ok(list(res.headers.vary).includes('origin'), 'caches keep answers per origin');
      const exposed = list(res.headers['access-control-expose-headers']);
      for (const h of ['etag', 'location', 'x-request-id', 'ratelimit', 'ratelimit-policy', 'retry-after']) assert.ok(exposed.includes(h), `exposes ${h}: ${exposed}`);
    }
  });

  it('gives a disallowed origin no CORS header, nor a caller that sends no Origin', async () => {
    const serverToServer = await client(rt, key)('GET', '/v1/nowhere');
    assert.deepEqual(
      Object.keys(serverToServer.headers).filter((h) => h.startsWith('access-control-')),
      [],
    );
    for (const origin of ['https://evil.example.com', 'https://app.example.com.evil.net', 'http://app.example.com', 'null']) {
      const res = await client(rt, key)('GET', '/v1/nowhere', { headers: { origin } });
      assert.deepEqual(
        Object.keys(res.headers).filter((h) => h.startsWith('access-control-')),
        [],
        origin,
      );
    }
  });

  it('answers a preflight from an allowed origin without a key, and refuses one from elsewhere', async () => {
    const preflight = (origin: string) =>
      rt.runtime.app.inject({
        method: 'OPTIONS',
        url: '/v1/diagnoses',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, idempotency-key, if-match, x-request-id' },
      });
    const ok = await preflight(ALLOWED);
    assert.equal(ok.statusCode, 204, ok.body);
    assert.equal(ok.headers['access-control-allow-origin'], ALLOWED);
    assert.ok(list(ok.headers['access-control-allow-methods']).includes('post'));
    const allowed = list(ok.headers['access-control-allow-headers']);
    for (const h of ['authorization', 'content-type', 'idempotency-key', 'if-match', 'x-request-id']) assert.ok(allowed.includes(h), `allows ${h}: ${allowed}`);
    assert.equal(ok.headers['access-control-max-age'], '600');
    assert.equal(ok.headers['access-control-allow-credentials'], undefined);
    assert.equal(ok.headers.ratelimit, undefined, 'a preflight is not authenticated, so not counted');
    const refused = await preflight('https://evil.example.com');
    assert.equal(refused.statusCode, 404);
    assert.deepEqual(
      Object.keys(refused.headers).filter((h) => h.startsWith('access-control-')),
      [],
    );
  });
});

describe('CORS without an allow-list', () => {
  let rt: TestRuntime;
  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open());
  });
  after(async () => rt?.close());

  it('sends no CORS header at all, to any origin, and answers no preflight', async () => {
    const { key } = await rt.newClinic('No CORS clinic');
    const res = await client(rt, key)('GET', '/v1/nowhere', { headers: { origin: ALLOWED } });
    const preflight = await rt.runtime.app.inject({ method: 'OPTIONS', url: '/v1/diagnoses', headers: { origin: ALLOWED, 'access-control-request-method': 'POST' } });
    for (const r of [res, preflight]) {
      assert.deepEqual(
        Object.keys(r.headers).filter((h) => h.startsWith('access-control-')),
        [],
      );
    }
    assert.equal(preflight.statusCode, 404);
    assertApiHeaders(res, 'without CORS');
  });
});

describe('AGENTICPET_CORS_ORIGINS', () => {
  it('takes exact origins and refuses anything else, naming the variable', () => {
    assert.deepEqual(loadConfig({}).corsOrigins, []);
    assert.deepEqual(loadConfig({ AGENTICPET_CORS_ORIGINS: ' https://a.example.com ,http://localhost:8080' }).corsOrigins, ['https://a.example.com', 'http://localhost:8080']);
    for (const bad of ['*', 'https://a.example.com/', 'https://a.example.com/app', 'ftp://a.example.com', 'https://A.example.com', 'a.example.com', 'https://a.example.com,']) {
      assert.throws(() => loadConfig({ AGENTICPET_CORS_ORIGINS: bad }), /AGENTICPET_CORS_ORIGINS must be comma-separated origins/, bad);
    }
  });
});

describe('the docs in a browser under their CSP', { skip: fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium); the browser test needs it` }, () => {
  let rt: TestRuntime;
  let browser: Browser;
  let base: string;

  before(async () => {
    rt = await startRuntime(await PgliteExecutor.open());
    base = await rt.runtime.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await rt?.close();
  });

  it('renders the Swagger UI with the operations and no CSP violation', { timeout: 60_000 }, async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(msg.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(`${base}/docs`);
    await page.locator('.opblock').first().waitFor({ state: 'visible', timeout: 30_000 });
    assert.ok((await page.locator('.opblock').count()) > 10, 'the operations are listed');
    assert.match(await page.locator('.title').first().innerText(), /AgenticPet API/);
    assert.deepEqual(problems, [], 'no script errors or CSP violations');
  });
});
