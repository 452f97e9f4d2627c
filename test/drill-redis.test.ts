/**
 * The short version of `npm run drill:redis`: the service's own Redis killed under write load
 * and started again (≥ 99.9 % 2xx, back on Redis within the bound), then a Sentinel failover
 * the service follows without a restart. Needs redis-server, and redis-sentinel for the second
 * part (.ci/run installs both); missing, the part is skipped with the reason, or fails under
 * AGENTICPET_REQUIRE_SERVICES=1.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BACK_ON_REDIS_BOUND_MS, redisFailures, runRedisDrill, sentinelMissing } from '../scripts/drills/redis.js';
import { DEFAULT_PG_URL, pgSkipReason } from './support/services.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pgUrl = (process.env.AGENTICPET_TEST_PG ?? DEFAULT_PG_URL).replace(/^skip:.*/, DEFAULT_PG_URL);
const required = process.env.AGENTICPET_REQUIRE_SERVICES === '1';

const serverMissing = spawnSync('redis-server', ['--version']).status === 0 ? false : 'redis-server is not installed (Debian package redis-server)';
/** A missing binary skips, unless CI requires every service: then it fails (the test sees sentinel: skipped). */
const skip = pgSkipReason() || (required ? false : serverMissing);
const sentinel = required || sentinelMissing() === false;

describe('drill:redis (short)', { skip, timeout: 240_000 }, () => {
  it(`keeps answering through a Redis outage${sentinel ? ' and follows a Sentinel failover' : ` (Sentinel part skipped: ${sentinelMissing()})`}`, async () => {
    assert.equal(serverMissing, false);
    const r = await runRedisDrill({ root, code: 'source', pgAdminUrl: pgUrl, workers: 2, ratePerSecond: 40, settleSeconds: 2, outageSeconds: 3, sentinel, downAfterMs: 1000 });
    assert.deepEqual(redisFailures(r), []);
    assert.ok(r.outage.duringOutage.sent >= 50, `only ${r.outage.duringOutage.sent} requests while Redis was down`);
    assert.ok(r.outage.backOnRedisMs !== undefined && r.outage.backOnRedisMs <= BACK_ON_REDIS_BOUND_MS);
    if (!sentinel) return;
    assert.ok(!('skipped' in r.sentinel), `Sentinel part skipped: ${'skipped' in r.sentinel ? r.sentinel.skipped : ''}`);
    assert.equal(r.sentinel.newPrimaryRole, 'master');
    assert.ok(r.sentinel.failoverGapMs !== undefined);
  });
});
