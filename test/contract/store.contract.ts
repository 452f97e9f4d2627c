/**
 * The persistent-tier contract: every SQL adapter must pass it unchanged.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { issueKey } from '../../src/clinical/access/access.js';
import { IdempotencyKeyTakenError } from '../../src/clinical/errors.js';
import type { RequestContext } from '../../src/clinical/ports.js';
import type { SqlExecutor } from '../../src/storage/sql/executor.js';
import { migrate, MIGRATIONS } from '../../src/storage/sql/migrate.js';
import { SqlClinicalStore } from '../../src/storage/sql/store.js';

export interface Harness {
  db: SqlExecutor;
  /** A second, independent executor on the same database (another process, in effect). */
  second?: SqlExecutor;
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  skip?: string | false;
  /** The adapter has more than one connection, so concurrent writers are real. */
  multiWriter?: boolean;
}

export function storeContract(name: string, open: () => Promise<Harness>, { skip = false, multiWriter = false }: ContractOptions = {}): void {
  describe(`persistent tier contract: ${name}`, { skip }, () => {
    let h: Harness;
    let store: SqlClinicalStore;
    let a: RequestContext;
    let b: RequestContext;

    const ctxFor = (clinicId: string, keyId: string): RequestContext => ({ principal: { clinicId, keyId, role: 'admin' }, requestId: `req-${uuidv7()}`, sourceIp: '127.0.0.1' });

    before(async () => {
      h = await open();
      await migrate(h.db);
      store = new SqlClinicalStore(h.db, 'contract-test');
      const ka = issueKey();
      const kb = issueKey();
      const ca = await store.createClinic('Clinic A', ka);
      const cb = await store.createClinic('Clinic B', kb);
      a = ctxFor(ca!.clinicId, ka.id);
      b = ctxFor(cb!.clinicId, kb.id);
    });
    after(async () => h?.cleanup());

    const newOwner = (ctx: RequestContext, name = 'Owner') =>
      store.inClinic(ctx, async (tx) => {
        const id = uuidv7();
        await tx.insertRecord('owner', id, { name }, new Date());
        return id;
      });

    it('migrations are idempotent and recorded once', async () => {
      const again = await migrate(h.db);
      assert.equal(again.applied.length, 0);
      const rows = await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
      assert.equal(rows[0]!.n, MIGRATIONS.length);
    });

    it('refuses a migration whose text changed after it was applied', async () => {
      const changed = MIGRATIONS.map((m) => ({ ...m, sql: `${m.sql}\n-- edited` }));
      await assert.rejects(migrate(h.db, changed), /was changed after it was applied/);
    });

    it('finds a principal by key hash and forgets it once revoked', async () => {
      const key = issueKey();
      await store.inClinic(a, (tx) => tx.insertApiKey({ id: key.id, name: 'k', role: 'vet', keyHash: key.keyHash, keyPrefix: key.keyPrefix, createdBy: a.principal.keyId }));
      const p = await store.findPrincipalByKeyHash(key.keyHash);
      assert.deepEqual(p, { keyId: key.id, clinicId: a.principal.clinicId, role: 'vet' });
      await store.inClinic(a, (tx) => tx.revokeApiKey(key.id));
      assert.equal(await store.findPrincipalByKeyHash(key.keyHash), null);
    });

    it('creates only one bootstrap clinic when clinics already exist', async () => {
      assert.equal(await store.createClinic('Default clinic', issueKey(), { ifNoClinics: true }), null);
    });

    it('versions records: an update keeps the old version in history; a delete is a tombstone', async () => {
      const id = await newOwner(a, 'First');
      const updated = await store.inClinic(a, (tx) => tx.updateRecord('owner', id, 1, { name: 'Second' }, false, new Date()));
      assert.equal(updated?.version, 2);
      const stale = await store.inClinic(a, (tx) => tx.updateRecord('owner', id, 1, { name: 'Stale' }, false, new Date()));
      assert.equal(stale, null);
      const tomb = await store.inClinic(a, (tx) => tx.updateRecord('owner', id, 2, { name: 'Second' }, true, new Date()));
      assert.equal(tomb?.deleted, true);
      const history = await store.inClinic(a, (tx) => tx.history('owner', id));
      assert.deepEqual(
        history.map((v) => [v.version, v.deleted, (v.content as { name: string }).name]),
        [
          [3, true, 'Second'],
          [2, false, 'Second'],
          [1, false, 'First'],
        ],
      );
    });

    it('rolls back the whole transaction when it fails midway', async () => {
      const id = uuidv7();
      await assert.rejects(
        store.inClinic(a, async (tx) => {
          await tx.insertRecord('owner', id, { name: 'Half' }, new Date());
          await tx.audit({ action: 'create', entityType: 'owner', entityId: id, outcome: 'success' });
          throw new Error('crash after the writes');
        }),
        /crash after the writes/,
      );
      const leftovers = await h.db.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM owners WHERE id = $1) + (SELECT count(*) FROM record_versions WHERE id = $1) + (SELECT count(*) FROM audit_events WHERE entity_id = $1) AS n`,
        [id],
      );
      assert.equal(Number(leftovers[0]!.n), 0);
      assert.equal((await store.verifyAudit()).ok, true, 'a rolled-back audit event must not break the chain');
    });

    it('persists a diagnosis, its evidence and provenance together, or nothing when any part fails', async () => {
      const diagnosis = (id: string) => ({
        id,
        patientId: null,
        encounterId: null,
        consultationId: 'cs_x',
        species: 'dog',
        triageLevel: 'urgent',
        topCondition: 'otitis_externa',
        kbVersion: '1.0.0+test',
        input: { complaint: 'ears' },
        report: { ok: true },
        createdAt: new Date(),
      });
      const evidence = [
        { conclusionType: 'differential' as const, conclusionCode: 'otitis_externa', evidenceKind: 'complaint', evidenceRef: 'complaint', finding: 'head_shaking', detail: { text: 'shaking his head', start: 4, end: 20 }, weight: 1.2 },
        { conclusionType: 'triage' as const, conclusionCode: 'urgent', evidenceKind: 'rule', evidenceRef: 'differential', finding: null, detail: { reason: "it's \"odd\" — 犬", nested: { list: [1, null] } }, weight: null },
        { conclusionType: 'plan' as const, conclusionCode: 'test:cytology', evidenceKind: 'condition', evidenceRef: 'otitis_externa', finding: null, detail: {}, weight: -0.25 },
      ];
      const provenance = { agents: { intake: '1.0.0' }, kbVersion: '1.0.0+test', chainDigest: 'd', chain: [], requestId: 'r', sessionId: 'cs_x', recordedAt: new Date() };
      const good = uuidv7();
      await store.inClinic(a, (tx) => tx.insertDiagnosis(diagnosis(good), evidence, provenance));
      const trace = await store.inClinic(a, (tx) => tx.diagnosisTrace(good));
      assert.deepEqual(trace?.evidence, evidence, 'every evidence row back, in order, nulls and nested detail included');
      assert.equal(await store.inClinic(b, (tx) => tx.getDiagnosis(good)), null);
      const bad = uuidv7();
      // The provenance row violates NOT NULL after the report and evidence were written.
      await assert.rejects(store.inClinic(a, (tx) => tx.insertDiagnosis(diagnosis(bad), evidence, { ...provenance, requestId: null as unknown as string })));
      const left = await h.db.query<{ n: number }>('SELECT (SELECT count(*) FROM diagnoses WHERE id = $1) + (SELECT count(*) FROM diagnosis_provenance WHERE diagnosis_id = $1) + (SELECT count(*) FROM diagnosis_evidence WHERE diagnosis_id = $1) AS n', [bad]);
      assert.equal(Number(left[0]!.n), 0);
    });

    it('an Idempotency-Key stored twice is reported as taken, in domain terms, and the first response stays', async () => {
      const key = `taken-${uuidv7()}`;
      const response = { status: 201, body: { id: 'first' }, bodyJson: '{"id":"first"}', location: '/v1/owners/first' };
      await store.inClinic(a, (tx) => tx.saveIdempotent(key, 'h1', response));
      await assert.rejects(store.inClinic(a, (tx) => tx.saveIdempotent(key, 'h2', { status: 201, body: { id: 'second' } })), IdempotencyKeyTakenError);
      const found = await store.inClinic(a, (tx) => tx.findIdempotent(key));
      assert.deepEqual(found, { requestHash: 'h1', response: { status: 201, body: { id: 'first' }, location: '/v1/owners/first' } });
    });

    it("isolates clinics: another clinic's record is invisible through the store", async () => {
      const id = await newOwner(a);
      assert.equal(await store.inClinic(b, (tx) => tx.getRecord('owner', id)), null);
      assert.equal(await store.inClinic(b, (tx) => tx.updateRecord('owner', id, 1, { name: 'hijack' }, false, new Date())), null);
      assert.deepEqual(await store.inClinic(b, (tx) => tx.history('owner', id)), []);
    });

    it('row-level security: a query with no clinic filter sees only its own clinic', async () => {
      const idA = await newOwner(a, 'Visible to A');
      await newOwner(b, 'Visible to B');
      const seen = await h.db.transaction((tx) => tx.query<{ clinic_id: string; id: string }>('SELECT clinic_id, id FROM owners'), { clinicId: a.principal.clinicId });
      assert.ok(seen.some((r) => r.id === idA));
      assert.ok(seen.every((r) => r.clinic_id === a.principal.clinicId));
      for (const table of ['owners', 'record_versions', 'audit_events', 'api_keys', 'clinics']) {
        const rows = await h.db.transaction((tx) => tx.query(`SELECT * FROM ${table}`), { clinicId: b.principal.clinicId });
        const col = table === 'clinics' ? 'id' : 'clinic_id';
        assert.ok(rows.every((r) => (r as Record<string, unknown>)[col] === b.principal.clinicId), `${table} leaked another clinic's rows`);
      }
    });

    it('row-level security: writing a row for another clinic is refused by the database', async () => {
      await assert.rejects(
        h.db.transaction(
          (tx) => tx.query(`INSERT INTO owners (clinic_id, id, version, name, content, created_at, updated_at) VALUES ($1, $2, 1, 'x', '{}', now(), now())`, [b.principal.clinicId, uuidv7()]),
          { clinicId: a.principal.clinicId },
        ),
        /row-level security/,
      );
    });

    it('the app role cannot hard-delete clinical rows', async () => {
      await newOwner(a);
      await assert.rejects(h.db.transaction((tx) => tx.query('DELETE FROM owners'), { clinicId: a.principal.clinicId }), /permission denied/);
      await assert.rejects(h.db.transaction((tx) => tx.query('DELETE FROM audit_events'), { clinicId: a.principal.clinicId }), /permission denied/);
    });

    it('with no clinic set, the app role sees nothing', async () => {
      const rows = await h.db.transaction(async (tx) => {
        await tx.query("SELECT set_config('role', 'agenticpet_app', true)");
        return tx.query('SELECT * FROM owners');
      });
      assert.equal(rows.length, 0);
    });

    it('stores idempotency keys per clinic', async () => {
      await store.inClinic(a, (tx) => tx.saveIdempotent('key-1', 'hash-a', { status: 201, body: { ok: true } }));
      const found = await store.inClinic(a, (tx) => tx.findIdempotent('key-1'));
      assert.deepEqual(found, { requestHash: 'hash-a', response: { status: 201, body: { ok: true } } });
      assert.equal(await store.inClinic(b, (tx) => tx.findIdempotent('key-1')), null);
    });

    it('exactly one of two concurrent updates from the same version wins', async () => {
      const id = await newOwner(a, 'Race');
      const attempt = (name: string) => store.inClinic(a, (tx) => tx.updateRecord('owner', id, 1, { name }, false, new Date()));
      const results = await Promise.all([attempt('one'), attempt('two')]);
      assert.equal(results.filter((r) => r !== null).length, 1);
    });

    describe('audit trail', () => {
      const appendEvents = async (n: number) => {
        for (let i = 0; i < n; i++) await store.inClinic(a, (tx) => tx.audit({ action: 'read', entityType: 'owner', entityId: uuidv7(), outcome: 'success', detail: { i } }));
      };
      const chainOf = async () => {
        const rows = await h.db.query<{ chain_id: string; seq: string | number; id: string }>(
          'SELECT chain_id, seq, id FROM audit_events WHERE chain_id = (SELECT chain_id FROM audit_events ORDER BY occurred_at DESC LIMIT 1) ORDER BY seq',
        );
        return rows.map((r) => ({ chain: r.chain_id, seq: Number(r.seq), id: r.id }));
      };
      // The tamper tests rewrite history as the database owner would; each restores nothing, so
      // each starts from a fresh chain of events of its own on a fresh store.
      const freshChain = async () => {
        store = new SqlClinicalStore(h.db, 'contract-test');
        const before = new Set((await h.db.query<{ chain_id: string }>('SELECT chain_id FROM audit_chains')).map((r) => r.chain_id));
        await appendEvents(5);
        const chains = (await h.db.query<{ chain_id: string }>('SELECT chain_id FROM audit_chains')).filter((r) => !before.has(r.chain_id));
        assert.equal(chains.length, 1, 'one writer connection writes one chain');
        return (await chainOf()).filter((e) => e.chain === chains[0]!.chain_id);
      };
      // Tampering as the database owner, who bypasses row-level security and grants.
      const asOwner = async (sql: string, params: unknown[]) => h.db.query(sql, params);
      // Break only the chain under test: the others must be intact for the failure to be this one.
      const isolate = async (chain: string) => {
        await h.db.query('DELETE FROM audit_events WHERE chain_id <> $1', [chain]);
        await h.db.query('DELETE FROM audit_chains WHERE chain_id <> $1', [chain]);
      };

      it('verifies an intact trail', async () => {
        await appendEvents(3);
        const result = await store.verifyAudit();
        assert.equal(result.ok, true, JSON.stringify(result.failure));
        assert.ok(result.events >= 3);
      });

      it('detects a modified event and names it', async () => {
        const events = await freshChain();
        await isolate(events[0]!.chain);
        await asOwner("UPDATE audit_events SET outcome = 'denied' WHERE id = $1", [events[2]!.id]);
        const result = await store.verifyAudit();
        assert.equal(result.ok, false);
        assert.equal(result.failure?.eventId, events[2]!.id);
        assert.match(result.failure!.reason, /modified/);
      });

      it('detects a deleted event and names the one after the gap', async () => {
        const events = await freshChain();
        await isolate(events[0]!.chain);
        await asOwner('DELETE FROM audit_events WHERE id = $1', [events[1]!.id]);
        const result = await store.verifyAudit();
        assert.equal(result.ok, false);
        assert.equal(result.failure?.eventId, events[2]!.id);
        assert.equal(result.failure?.seq, 3);
      });

      it('detects reordered events', async () => {
        const events = await freshChain();
        await isolate(events[0]!.chain);
        // Swap the positions of events 2 and 3.
        await asOwner('UPDATE audit_events SET seq = -seq WHERE id = ANY($1::uuid[])', [[events[1]!.id, events[2]!.id]]);
        await asOwner('UPDATE audit_events SET seq = 3 WHERE id = $1', [events[1]!.id]);
        await asOwner('UPDATE audit_events SET seq = 2 WHERE id = $1', [events[2]!.id]);
        const result = await store.verifyAudit();
        assert.equal(result.ok, false);
        assert.equal(result.failure?.seq, 2);
        assert.equal(result.failure?.eventId, events[2]!.id);
      });

      it('detects a truncated tail', async () => {
        const events = await freshChain();
        await isolate(events[0]!.chain);
        await asOwner('DELETE FROM audit_events WHERE id = $1', [events[4]!.id]);
        const result = await store.verifyAudit();
        assert.equal(result.ok, false);
        assert.match(result.failure!.reason, /deleted/);
        assert.equal(result.failure?.seq, 5);
      });

      it('concurrent writers on separate connections keep separate, valid chains', { skip: multiWriter ? false : 'one connection: no concurrent writers' }, async () => {
        assert.ok(h.second, 'a multi-writer harness provides a second executor');
        await h.db.query('DELETE FROM audit_events');
        await h.db.query('DELETE FROM audit_chains');
        const other = new SqlClinicalStore(h.second, 'second-writer');
        store = new SqlClinicalStore(h.db, 'contract-test');
        await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 === 0 ? store : other).inClinic(a, (tx) => tx.audit({ action: 'read', entityType: 'owner', entityId: null, outcome: 'success' })),
          ),
        );
        const result = await store.verifyAudit();
        assert.equal(result.ok, true, JSON.stringify(result.failure));
        assert.equal(result.events, 20);
        assert.ok(result.chains >= 2);
      });
    });
  });
}
