/**
 * The point-in-time recovery drill (npm run drill:pitr), short: a cluster of its own with WAL
 * archived by pgBackRest, a few diagnoses either side of a noted time, a restore to that time.
 * Needs the Debian packages postgresql and pgbackrest (.ci/run installs both); without them it
 * is skipped, unless AGENTICPET_REQUIRE_SERVICES=1, where it runs and fails.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { clusterUnavailable, which } from '../scripts/drills/pitr/cluster.js';
import { runPitrDrill } from '../scripts/drills/pitr/drill.js';
import { compareRecords, type DiagnosisRecord } from '../scripts/drills/pitr/records.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const missing = which('pgbackrest') === undefined ? 'pgbackrest is not installed (apt-get install pgbackrest)' : clusterUnavailable();
const skip = missing !== null && process.env.AGENTICPET_REQUIRE_SERVICES !== '1' ? missing : false;

describe('the PITR drill restores exactly what was committed before the target', { skip, timeout: 150_000 }, () => {
  it('finds every diagnosis of set A complete, none of set B, an intact audit trail, and cleans up', async () => {
    if (missing !== null) assert.fail(`AGENTICPET_REQUIRE_SERVICES=1 but ${missing}`);
    const archiveTimeoutS = 1;
    const result = await runPitrDrill({ root, entry: 'source', setA: 12, setB: 12, archiveTimeoutS, ports: [15550, 15599], timeoutMs: 140_000, log: (line) => console.log(`${new Date().toISOString().slice(11, 23)} ${line}`) });
    assert.equal(result.setA.written, 12);
    assert.deepEqual(result.setA.missing, []);
    assert.deepEqual(result.setA.incomplete, []);
    assert.equal(result.setA.found, 12);
    assert.equal(result.setB.written, 12);
    assert.deepEqual(result.setB.found, []);
    assert.deepEqual(result.setB.partial, []);
    assert.equal(result.otherDiagnoses, 0);
    // Recovery stopped at the target (B's WAL was there to replay), it did not run out of WAL.
    assert.match(result.restore.stopLine ?? '', /recovery stopping before commit of transaction \d+/);
    assert.match(result.restore.archivedFirst, /^00000002\.history$/);
    assert.ok(result.audit.ok, result.audit.output);
    assert.match(result.audit.output, /Audit trail intact: \d+ events/);
    assert.ok(result.rpo.lagMs >= 0 && result.rpo.lagMs < archiveTimeoutS * 1000 + 10_000, `archive lag ${result.rpo.lagMs} ms`);
    assert.ok(result.backup.repoBytes > 0 && result.backup.databaseBytes > result.backup.repoBytes);
    assert.ok(result.restore.totalMs > 0);
    assert.ok(result.ok);
    assert.equal(fs.existsSync(result.workDir), false, 'the temp dir is removed');
  });
});

describe('comparing restored diagnoses with the originals', () => {
  const full: DiagnosisRecord = { present: true, reportMd5: 'f00', evidence: 5, chainDigest: 'abc', auditEvents: 1 };
  const original = new Map([
    ['a', full],
    ['b', full],
    ['c', full],
    ['d', full],
    ['e', full],
  ]);

  it('reports an absent report row as missing and any differing part as incomplete', () => {
    const restored = new Map<string, DiagnosisRecord>([
      ['a', full],
      ['b', { ...full, evidence: 4 }],
      ['c', { ...full, auditEvents: 0 }],
      ['d', { ...full, present: false }],
      ['e', { ...full, reportMd5: 'bad' }],
    ]);
    assert.deepEqual(compareRecords(['a', 'b', 'c', 'd', 'e', 'f'], original, restored), {
      missing: ['d', 'f'],
      incomplete: ['b', 'c', 'e'],
    });
  });

  it('does not accept a restored diagnosis that was not in the original either', () => {
    assert.deepEqual(compareRecords(['x'], original, new Map([['x', full]])), { missing: [], incomplete: ['x'] });
  });
});
