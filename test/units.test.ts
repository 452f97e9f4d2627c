/** Pure parsers and validators, with property-based tests where the input space is large. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalJson } from '../src/clinical/canonical-json.js';
import { PreconditionFailedError, PreconditionRequiredError, ValidationError } from '../src/clinical/errors.js';
import { sniffMediaType } from '../src/clinical/records/media-type.js';
import { checkIfMatch } from '../src/clinical/records/versioning.js';
import { ConfigError, loadConfig, parseSentinelUrl } from '../src/config.js';
import { sentinelOptions } from '../src/storage/redis/connection.js';
import { SERVE_NODE_FLAGS, withServeFlags } from '../src/node-flags.js';
import { decodeCursor, encodeCursor } from '../src/storage/sql/cursor.js';

describe('config', () => {
  it('has embedded defaults', () => {
    const c = loadConfig({});
    assert.equal(c.port, 3000);
    assert.equal(c.databaseUrl, undefined);
    assert.equal(c.redisUrl, undefined);
    assert.ok(c.dataDir.endsWith('/data'));
    assert.equal(c.logLevel, 'info');
  });

  it('names the variable in every error', () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ PORT: 'abc' }, 'PORT'],
      [{ PORT: '70000' }, 'PORT'],
      [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
      [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
      [{ AGENTICPET_BOOTSTRAP_KEY: 'short' }, 'AGENTICPET_BOOTSTRAP_KEY'],
      [{ DATABASE_POOL_MAX: '0' }, 'DATABASE_POOL_MAX'],
    ];
    for (const [env, variable] of cases) {
      assert.throws(
        () => loadConfig(env),
        (err: unknown) => err instanceof ConfigError && err.variable === variable && err.message.includes(variable),
      );
    }
  });

  it('REDIS_URL names one Redis or Redis Sentinel (sentinels and the monitored primary)', () => {
    assert.equal(loadConfig({ REDIS_URL: 'redis+sentinel://127.0.0.1:26379,[::1]:26380,sentinel-3/mymaster' }).redisUrl, 'redis+sentinel://127.0.0.1:26379,[::1]:26380,sentinel-3/mymaster');
    assert.deepEqual(parseSentinelUrl('redis+sentinel://app:p%40ss:word@10.0.0.1:26379,10.0.0.2/cache/2?sentinelPassword=s3'), {
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26379 },
      ],
      name: 'cache',
      db: 2,
      username: 'app',
      password: 'p@ss:word',
      sentinelPassword: 's3',
    });
    assert.deepEqual(sentinelOptions('redis+sentinel://[::1]:26380/mymaster'), { sentinels: [{ host: '::1', port: 26380 }], name: 'mymaster', failoverDetector: true });
    for (const bad of ['redis+sentinel://h:1', 'redis+sentinel://h:1/', 'redis+sentinel://h:99999/m', 'redis+sentinel://h:1/m/x', 'redis+sentinel://h:1/m/1/2', 'redis+sentinel://h:1/m?db=1', 'redis+sentinel://h:x/m', 'redis+sentinel:///m']) {
      assert.throws(
        () => loadConfig({ REDIS_URL: bad }),
        (err: unknown) => err instanceof ConfigError && err.variable === 'REDIS_URL' && !err.message.includes(bad),
        bad,
      );
    }
  });

  it('property: any PORT either parses to itself or is refused naming PORT', () => {
    fc.assert(
      fc.property(fc.string(), (raw) => {
        try {
          const c = loadConfig({ PORT: raw });
          assert.ok(raw.trim() === '' ? c.port === 3000 : c.port === Number(raw));
        } catch (err) {
          assert.ok(err instanceof ConfigError && err.variable === 'PORT');
        }
      }),
    );
  });
});

describe('media type sniffing', () => {
  it('recognises JPEG, PNG and PDF by their first bytes only', () => {
    assert.equal(sniffMediaType(Buffer.from([0xff, 0xd8, 0xff, 0xdb])), 'image/jpeg');
    assert.equal(sniffMediaType(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0])), 'image/png');
    assert.equal(sniffMediaType(Buffer.from('%PDF-1.4')), 'application/pdf');
    assert.equal(sniffMediaType(Buffer.from('GIF89a')), null);
    assert.equal(sniffMediaType(Buffer.from([0xff, 0xd8])), null);
  });

  it('property: bytes not starting with a known signature are never accepted', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const type = sniffMediaType(bytes);
        const b = Buffer.from(bytes);
        if (type === 'image/jpeg') assert.ok(b.subarray(0, 3).equals(Buffer.from([0xff, 0xd8, 0xff])));
        if (type === 'image/png') assert.ok(b.subarray(0, 4).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47])));
        if (type === 'application/pdf') assert.ok(b.subarray(0, 5).toString('latin1') === '%PDF-');
      }),
    );
  });
});

describe('cursors', () => {
  it('property: every issued cursor decodes to what was encoded', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }), (id, at) => {
        assert.deepEqual(decodeCursor(encodeCursor([id]), ['uuid']), [id]);
        assert.deepEqual(decodeCursor(encodeCursor([at.toISOString(), id]), ['time', 'uuid']), [at.toISOString(), id]);
      }),
    );
  });

  it('property: arbitrary strings are refused as a 400, never passed on', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          const [v] = decodeCursor(s, ['uuid']);
          assert.match(v!, /^[0-9a-f-]{36}$/);
        } catch (err) {
          assert.ok(err instanceof ValidationError);
        }
      }),
    );
  });
});

describe('If-Match', () => {
  it('accepts the current ETag in strong, weak, listed or * form', () => {
    for (const h of ['"3"', 'W/"3"', '"1", "3"', '*']) checkIfMatch(h, 3);
  });
  it('428 when missing, 412 when stale or malformed', () => {
    assert.throws(() => checkIfMatch(undefined, 3), PreconditionRequiredError);
    assert.throws(() => checkIfMatch('  ', 3), PreconditionRequiredError);
    for (const h of ['"2"', '3', 'W/3', '"3', 'garbage']) assert.throws(() => checkIfMatch(h, 3), PreconditionFailedError);
  });
});

describe('canonical JSON', () => {
  it('property: key order never changes the text', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        assert.equal(canonicalJson(obj), canonicalJson(reversed));
        assert.deepEqual(JSON.parse(canonicalJson(obj)), JSON.parse(JSON.stringify(obj)));
      }),
    );
  });

  it('property: the same text as the hand-written version audit chains were first hashed with', () => {
    // Audit events stored before canonicalJson moved to safe-stable-stringify must still verify.
    const original = (value: unknown): string => {
      if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
      if (Array.isArray(value)) return `[${value.map(original).join(',')}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${original(v)}`).join(',')}}`;
    };
    fc.assert(
      fc.property(fc.jsonValue(), fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null))), (value, detail) => {
        assert.equal(canonicalJson(value), original(value));
        assert.equal(canonicalJson(['chain', 1, 'id', '2026-11-26T00:00:00.000Z', null, detail]), original(['chain', 1, 'id', '2026-11-26T00:00:00.000Z', null, detail]));
      }),
      { numRuns: 500 },
    );
  });
});

describe('the V8 flags the service starts with', () => {
  it('adds each flag the operator did not give, and keeps one the operator did', () => {
    assert.deepEqual(withServeFlags([]), [...SERVE_NODE_FLAGS]);
    assert.deepEqual(withServeFlags(['--inspect']), ['--inspect', ...SERVE_NODE_FLAGS]);
    assert.deepEqual(withServeFlags(['--max-semi-space-size=16']), ['--max-semi-space-size=16']);
    assert.deepEqual(withServeFlags(['--max_semi_space_size=8']), ['--max_semi_space_size=8']);
  });

  it('are on every command that starts the service: npm start and the image', () => {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    const cmd = /^CMD (\[.*\])$/m.exec(fs.readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8'));
    assert.ok(cmd, 'the Dockerfile has an exec-form CMD');
    assert.deepEqual(JSON.parse(cmd[1]!), ['node', ...SERVE_NODE_FLAGS, 'dist/cli.js', 'serve']);
    assert.equal(pkg.scripts.start, ['node', ...SERVE_NODE_FLAGS, 'dist/cli.js', 'serve'].join(' '));
  });
});
