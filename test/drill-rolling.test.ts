/**
 * The short version of `npm run drill:rolling`: a SIGHUP rolling restart and a SIGTERM of a
 * single worker under write load, without one failed request.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runRollingDrill } from '../scripts/drills/rolling.js';
import { DEFAULT_PG_URL, pgSkipReason } from './support/services.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pgUrl = (process.env.AGENTICPET_TEST_PG ?? DEFAULT_PG_URL).replace(/^skip:.*/, DEFAULT_PG_URL);

describe('drill:rolling (short)', { skip: pgSkipReason(), timeout: 240_000 }, () => {
  it('replaces every worker (SIGHUP) and a single one (SIGTERM) under load with 0 failed requests', async () => {
    const r = await runRollingDrill({ root, code: 'source', pgAdminUrl: pgUrl, workers: 2, ratePerSecond: 30, rolls: 1, terms: 1, settleSeconds: 1, keepAlive: true });
    assert.equal(r.failed, 0, r.failures.join('\n'));
    assert.equal(r.workersReplaced, 3);
    assert.ok(r.duringEvents.sent > 0, 'no request overlapped the restarts');
    assert.equal(r.total.ok2xx, r.total.sent);
  });
});
