/**
 * The audit trail against an insider who can write the database (and, for the replays, the
 * checkpoint directory): one test per attack, each must fail `audit verify` for its own reason,
 * and the untouched trail must pass. Run on PGlite and on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { issueKey } from '../../src/clinical/access/access.js';
import type { RequestContext } from '../../src/clinical/ports.js';
import { checkpointName, verifyCheckpoints } from '../../src/storage/checkpoints/checkpoint.js';
import { Checkpointer } from '../../src/storage/checkpoints/checkpointer.js';
import { FsCheckpointStore } from '../../src/storage/checkpoints/stores.js';
import { auditRowOf, eventHash, verifyAuditChains, type AnchoredVerification, type EventRecord } from '../../src/storage/sql/audit-chain.js';
import type { SqlExecutor } from '../../src/storage/sql/executor.js';
import { migrate } from '../../src/storage/sql/migrate.js';
import { SqlClinicalStore } from '../../src/storage/sql/store.js';

export interface AnchorHarness {
  db: SqlExecutor;
  cleanup(): Promise<void>;
}

export function auditAnchorContract(name: string, open: () => Promise<AnchorHarness>, opts: { skip?: string | false } = {}): void {
  describe(`audit anchored outside the database: ${name}`, { skip: opts.skip ?? false }, () => {
    let h: AnchorHarness;
    let ctx: RequestContext;
    let dir: string;
    let store: SqlClinicalStore;
    let checkpoints: FsCheckpointStore;
    let checkpointer: Checkpointer;
    let chain: string;
    const { privateKey, publicKey } = generateKeyPairSync('ed25519') as { privateKey: KeyObject; publicKey: KeyObject };

    before(async () => {
      h = await open();
      await migrate(h.db);
      const key = issueKey();
      const clinic = await new SqlClinicalStore(h.db, 'anchor-test').createClinic('Anchored', key);
      ctx = { principal: { clinicId: clinic!.clinicId, keyId: key.id, role: 'admin' }, requestId: 'req-anchor', sourceIp: '127.0.0.1' };
    });
    after(async () => {
      await h.cleanup();
    });

    const append = async (n: number) => {
      for (let i = 0; i < n; i++) await store.inClinic(ctx, (tx) => tx.audit({ action: 'read', entityType: 'owner', entityId: uuidv7(), outcome: 'success', detail: { i } }));
    };
    const events = async (): Promise<EventRecord[]> => (await h.db.query<EventRecord>('SELECT * FROM audit_events WHERE chain_id = $1 ORDER BY seq', [chain])).map((r) => ({ ...r, seq: Number(r.seq) }));
    /** What `audit verify --checkpoints` does; `withCheckpoints: false` is the plain `audit verify`. */
    const verifyAll = async (withCheckpoints = true, now?: Date): Promise<AnchoredVerification & { checkpointFailure?: string; warnings: string[] }> => {
      if (!withCheckpoints) return { ...(await verifyAuditChains(h.db)), warnings: [] };
      const checked = verifyCheckpoints(await checkpoints.list(), publicKey, now);
      if (!checked.ok) return { ok: false, chains: 0, events: 0, anchoredChains: 0, unanchoredEvents: 0, checkpointFailure: `${checked.failure!.checkpoint} ${checked.failure!.reason}`, warnings: checked.warnings };
      return { ...(await verifyAuditChains(h.db, checked.anchors)), warnings: checked.warnings };
    };
    const file = (seq: number) => path.join(dir, checkpointName(checkpointer.writer, seq));

    // Each attack starts from the same trail: one writer, one chain of 7 events, checkpoint #1 at
    // seq 5 and #2 at seq 7, and nothing else in the audit tables.
    beforeEach(async () => {
      await h.db.query('TRUNCATE audit_events, audit_chains');
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-checkpoints-'));
      checkpoints = new FsCheckpointStore(dir);
      store = new SqlClinicalStore(h.db, 'anchor-test');
      checkpointer = new Checkpointer({ store: checkpoints, signingKey: privateKey, heads: () => store.auditHeads(), intervalSeconds: 60 });
      await append(5);
      assert.equal(await checkpointer.checkpoint(), true);
      await append(2);
      assert.equal(await checkpointer.checkpoint(), true);
      chain = (await h.db.query<{ chain_id: string }>('SELECT chain_id FROM audit_chains'))[0]!.chain_id;
    });

    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('passes an intact trail, and counts events past the last checkpoint as unanchored', async () => {
      let result = await verifyAll();
      assert.equal(result.ok, true, JSON.stringify(result));
      assert.equal(result.anchoredChains, 1);
      assert.equal(result.events, 7);
      assert.equal(result.unanchoredEvents, 0);
      assert.deepEqual(result.warnings, []);
      await append(3);
      result = await verifyAll();
      assert.equal(result.ok, true, JSON.stringify(result));
      assert.equal(result.unanchoredEvents, 3);
      // The final checkpoint at shutdown anchors them too.
      assert.equal(await checkpointer.stop(), true);
      const last = JSON.parse(fs.readFileSync(file(3), 'utf8'));
      assert.equal(last.body.final, true);
      assert.deepEqual(last.body.heads.map((x: { seq: number }) => x.seq), [10]);
      assert.equal((await verifyAll()).unanchoredEvents, 0);
    });

    it('modify an event: found, naming the event', async () => {
      const e = await events();
      await h.db.query("UPDATE audit_events SET outcome = 'denied' WHERE id = $1", [e[2]!.id]);
      for (const withCheckpoints of [false, true]) {
        const result = await verifyAll(withCheckpoints);
        assert.equal(result.ok, false);
        assert.equal(result.failure?.eventId, e[2]!.id);
        assert.match(result.failure!.reason, /was modified/);
      }
    });

    it('delete an event: found at the event after the gap', async () => {
      const e = await events();
      await h.db.query('DELETE FROM audit_events WHERE id = $1', [e[1]!.id]);
      const result = await verifyAll();
      assert.equal(result.ok, false);
      assert.equal(result.failure?.seq, 3);
      assert.match(result.failure!.reason, /expected seq 2 but found 3/);
    });

    it('reorder two events: found at the first moved one', async () => {
      const e = await events();
      await h.db.query('UPDATE audit_events SET seq = -seq WHERE id = ANY($1::uuid[])', [[e[1]!.id, e[2]!.id]]);
      await h.db.query('UPDATE audit_events SET seq = 3 WHERE id = $1', [e[1]!.id]);
      await h.db.query('UPDATE audit_events SET seq = 2 WHERE id = $1', [e[2]!.id]);
      const result = await verifyAll();
      assert.equal(result.ok, false);
      assert.equal(result.failure?.seq, 2);
      assert.equal(result.failure?.eventId, e[2]!.id);
      assert.match(result.failure!.reason, /prev_hash/);
    });

    it('truncate the tail: found by the head row, and when the head row is rewritten too, by the checkpoint', async () => {
      const e = await events();
      await h.db.query('DELETE FROM audit_events WHERE chain_id = $1 AND seq > 5', [chain]);
      let result = await verifyAll(false);
      assert.equal(result.ok, false);
      assert.match(result.failure!.reason, /events at the end were deleted/);
      await h.db.query('UPDATE audit_chains SET head_seq = 5, head_hash = $2 WHERE chain_id = $1', [chain, e[4]!.hash]);
      assert.equal((await verifyAll(false)).ok, true, 'without checkpoints a consistent truncation passes: why they exist');
      result = await verifyAll();
      assert.equal(result.ok, false);
      assert.equal(result.failure?.chainId, chain);
      assert.match(result.failure!.reason, /signed this chain at seq 7 but it ends at seq 5: the chain was truncated/);
    });

    it('delete a chain head row: its events are found without a head', async () => {
      // The foreign key stops a plain DELETE; the database owner can drop it.
      await h.db.query('ALTER TABLE audit_events DROP CONSTRAINT audit_events_chain_id_fkey');
      try {
        await h.db.query('DELETE FROM audit_chains WHERE chain_id = $1', [chain]);
        for (const withCheckpoints of [false, true]) {
          const result = await verifyAll(withCheckpoints);
          assert.equal(result.ok, false);
          assert.equal(result.failure?.chainId, chain);
          assert.equal(result.failure?.seq, 1);
          assert.match(result.failure!.reason, /no head row in audit_chains: the head was deleted/);
        }
      } finally {
        await h.db.query('TRUNCATE audit_events, audit_chains');
        await h.db.query('ALTER TABLE audit_events ADD CONSTRAINT audit_events_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES audit_chains (chain_id)');
      }
    });

    it('rewrite a whole chain with every hash recomputed: only the checkpoint finds it', async () => {
      const e = await events();
      // Change event 3's outcome, then recompute its hash and every later one, and the head.
      let prev = e[1]!.hash;
      for (const r of e.slice(2)) {
        const outcome = r.seq === 3 ? 'denied' : r.outcome;
        const hash = eventHash(prev, auditRowOf(r, { outcome }));
        await h.db.query('UPDATE audit_events SET outcome = $2, prev_hash = $3, hash = $4 WHERE id = $1', [r.id, outcome, prev, hash]);
        prev = hash;
      }
      await h.db.query('UPDATE audit_chains SET head_hash = $2 WHERE chain_id = $1', [chain, prev]);
      assert.equal((await verifyAll(false)).ok, true, 'the rewritten chain is consistent in itself');
      const result = await verifyAll();
      assert.equal(result.ok, false);
      assert.equal(result.failure?.chainId, chain);
      assert.equal(result.failure?.seq, 7);
      assert.match(result.failure!.reason, /the chain was rewritten/);
    });

    it('delete a whole chain (events and head): only the checkpoint finds it', async () => {
      await h.db.query('DELETE FROM audit_events WHERE chain_id = $1', [chain]);
      await h.db.query('DELETE FROM audit_chains WHERE chain_id = $1', [chain]);
      assert.equal((await verifyAll(false)).ok, true, 'an empty trail is consistent in itself');
      const result = await verifyAll();
      assert.equal(result.ok, false);
      assert.equal(result.failure?.chainId, chain);
      assert.match(result.failure!.reason, /the whole chain was deleted/);
    });

    it('replay an old checkpoint as the latest: found by its signed sequence number', async () => {
      // The attacker truncates the chain back to checkpoint #1 (seq 5), consistently, and puts
      // checkpoint #1 where #2 was.
      const e = await events();
      await h.db.query('DELETE FROM audit_events WHERE chain_id = $1 AND seq > 5', [chain]);
      await h.db.query('UPDATE audit_chains SET head_seq = 5, head_hash = $2 WHERE chain_id = $1', [chain, e[4]!.hash]);
      fs.rmSync(file(2));
      fs.copyFileSync(file(1), file(2));
      const result = await verifyAll();
      assert.equal(result.ok, false);
      assert.match(result.checkpointFailure!, /does not match its signed body .*re-presented/);
    });

    it('remove checkpoints: a gap is found; a removed tail only shows as a stale, non-final latest checkpoint', async () => {
      await append(1);
      assert.equal(await checkpointer.checkpoint(), true); // #3 at seq 8
      fs.rmSync(file(2));
      let result = await verifyAll();
      assert.equal(result.ok, false);
      assert.match(result.checkpointFailure!, /jumps from checkpoint #1 to #3: checkpoints between them were removed/);
      // Remove the tail instead (#3 and #2 gone), and truncate the chain back to #1 consistently.
      fs.rmSync(file(3));
      const e = await events();
      await h.db.query('DELETE FROM audit_events WHERE chain_id = $1 AND seq > 5', [chain]);
      await h.db.query('UPDATE audit_chains SET head_seq = 5, head_hash = $2 WHERE chain_id = $1', [chain, e[4]!.hash]);
      // Verification alone cannot tell this from a crash after #1: the retention lock of the store
      // is what rules it out. It says what it cannot decide.
      result = await verifyAll(true, new Date(Date.now() + 10 * 60_000));
      assert.equal(result.ok, true);
      assert.equal(result.warnings.length, 1);
      assert.match(result.warnings[0]!, /latest checkpoint #1 .* is not final .*later checkpoints were removed/);
    });

    it('a checkpoint altered (or signed with another key) fails its signature', async () => {
      const c = JSON.parse(fs.readFileSync(file(2), 'utf8'));
      c.body.heads[0].seq = 6;
      fs.chmodSync(file(2), 0o644);
      fs.writeFileSync(file(2), JSON.stringify(c));
      const result = await verifyAll();
      assert.equal(result.ok, false);
      assert.match(result.checkpointFailure!, /signature does not verify/);
      const other = generateKeyPairSync('ed25519').publicKey;
      assert.equal(verifyCheckpoints(await checkpoints.list(), other).ok, false);
    });

    it('two writers (as cluster workers) each anchor their own chains', async () => {
      const second = new SqlClinicalStore(h.db, 'anchor-test-2');
      const other = new Checkpointer({ store: checkpoints, signingKey: privateKey, heads: () => second.auditHeads(), intervalSeconds: 60 });
      await second.inClinic(ctx, (tx) => tx.audit({ action: 'read', entityType: 'owner', entityId: null, outcome: 'success' }));
      assert.equal(await other.checkpoint(), true);
      const checked = verifyCheckpoints(await checkpoints.list(), publicKey);
      assert.equal(checked.ok, true);
      assert.equal(checked.writers, 2);
      const result = await verifyAll();
      assert.equal(result.ok, true, JSON.stringify(result));
      assert.equal(result.anchoredChains, result.chains);
      assert.ok(result.chains >= 2);
    });
  });
}
