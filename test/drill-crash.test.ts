/**
 * The short version of `npm run drill:crash`: kill -9 of the whole server (primary and workers)
 * under write load on PostgreSQL, a restart, and every acknowledged diagnosis read back complete,
 * no partial rows, the audit trail verified.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { crashFailures, runCrashDrill } from '../scripts/drills/crash.js';
import { DEFAULT_PG_URL, pgSkipReason } from './support/services.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pgUrl = (process.env.AGENTICPET_TEST_PG ?? DEFAULT_PG_URL).replace(/^skip:.*/, DEFAULT_PG_URL);

describe('drill:crash (short)', { skip: pgSkipReason(), timeout: 180_000 }, () => {
  it('loses no acknowledged diagnosis and leaves no partial rows when the whole server is killed', async () => {
    const r = await runCrashDrill({ root, code: 'source', pgAdminUrl: pgUrl, workers: 2, ratePerSecond: 40, beforeKillSeconds: 3 });
    assert.deepEqual(crashFailures(r), []);
    assert.ok(r.acknowledged >= 40, `only ${r.acknowledged} diagnoses acknowledged before the kill`);
    assert.equal(r.killedPids.length, 3, 'primary and two workers killed');
    assert.equal(r.sql.acknowledgedFound, r.acknowledged);
    assert.equal(r.sql.diagnoses, r.acknowledged + r.sql.committedUnacknowledged);
    assert.match(r.auditVerify.output, /Audit trail intact/);
  });
});
