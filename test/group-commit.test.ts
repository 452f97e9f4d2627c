/**
 * Group commit on both adapters: clinic transactions queued while the connections are busy
 * share one database transaction, yet each keeps its own tenant scope, its own failure and its
 * own acknowledgement (only after the COMMIT that holds its writes).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { issueKey } from '../src/clinical/access/access.js';
import { NotFoundError, OverloadedError } from '../src/clinical/errors.js';
import type { RequestContext } from '../src/clinical/ports.js';
import type { SqlExecutor } from '../src/storage/sql/executor.js';
import { migrate } from '../src/storage/sql/migrate.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { SqlClinicalStore } from '../src/storage/sql/store.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

interface Harness {
  db: SqlExecutor & { group: { depth: number } };
  batches: number[];
  cleanup(): Promise<void>;
}

function ctxFor(clinicId: string, keyId: string): RequestContext {
  return { principal: { clinicId, keyId, role: 'admin' }, requestId: `req-${uuidv7()}`, sourceIp: '127.0.0.1' };
}

/** A promise and its resolver: holds the only connection slot until released. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

function groupCommitSuite(name: string, make: (batches: number[], queueMax?: number) => Promise<Harness>, skip: string | false): void {
  describe(`group commit: ${name}`, { skip }, () => {
    let h: Harness;
    let store: SqlClinicalStore;
    let a: RequestContext;
    let b: RequestContext;

    before(async () => {
      h = await make([]);
      await migrate(h.db);
      store = new SqlClinicalStore(h.db, 'group-commit-test');
      const ka = issueKey();
      const kb = issueKey();
      a = ctxFor((await store.createClinic('A', ka))!.clinicId, ka.id);
      b = ctxFor((await store.createClinic('B', kb))!.clinicId, kb.id);
      // The probe table has a deferred unique constraint, checked only at COMMIT.
      await h.db.query('CREATE TABLE IF NOT EXISTS gc_probe (v int UNIQUE DEFERRABLE INITIALLY DEFERRED)');
      await h.db.query('GRANT INSERT, SELECT ON gc_probe TO agenticpet_app');
    });
    after(async () => h.cleanup());

    /** Runs `units` while a first transaction holds the connection, so they queue and batch. */
    async function batched<T>(units: Array<() => Promise<T>>): Promise<PromiseSettledResult<T>[]> {
      const hold = gate();
      const blocker = store.inClinic(a, async () => hold.promise);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const settled = Promise.allSettled(units.map((u) => u()));
      hold.open();
      await blocker;
      return settled;
    }

    it('queued clinic transactions share one commit, each under its own clinic scope', async () => {
      h.batches.length = 0;
      const visible: Array<{ clinic: string; seen: string[] }> = [];
      const results = await batched(
        Array.from({ length: 20 }, (_, i) => () => {
          const ctx = i % 2 === 0 ? a : b;
          return store.inClinic(ctx, async (tx) => {
            await tx.insertRecord('owner', uuidv7(), { name: `owner ${i}` }, new Date());
            await tx.audit({ action: 'create', entityType: 'owner', entityId: null, outcome: 'success' });
            // Row-level security per unit: earlier units of the same transaction wrote owners of
            // the other clinic too, and none of them may be visible here.
            const page = await tx.listPatients({ limit: 1 });
            visible.push({ clinic: ctx.principal.clinicId, seen: page.items.map((p) => p.id) });
            return i;
          });
        }),
      );
      assert.ok(results.every((r) => r.status === 'fulfilled'));
      assert.ok(Math.max(...h.batches) >= 10, `expected a shared commit, batch sizes were ${h.batches.join(',')}`);
      const rows = await h.db.query<{ clinic_id: string; n: number }>('SELECT clinic_id, count(*)::int AS n FROM owners GROUP BY clinic_id');
      assert.equal(rows.find((r) => r.clinic_id === a.principal.clinicId)?.n, 10);
      assert.equal(rows.find((r) => r.clinic_id === b.principal.clinicId)?.n, 10);
      // And from inside a unit, the other clinic's rows of the same batch are invisible.
      const counts = await batched([a, b].map((ctx) => () => h.db.transaction(async (tx) => (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM owners'))[0]!.n, { clinicId: ctx.principal.clinicId })));
      assert.deepEqual(
        counts.map((c) => (c as PromiseFulfilledResult<number>).value),
        [10, 10],
      );
      assert.ok(visible.length === 20);
      assert.equal((await store.verifyAudit()).ok, true);
    });

    it("one unit's failure rolls back that unit only; the others commit and the audit chain holds", async () => {
      h.batches.length = 0;
      const ids = Array.from({ length: 12 }, () => uuidv7());
      const results = await batched(
        ids.map((id, i) => () =>
          store.inClinic(a, async (tx) => {
            await tx.insertRecord('owner', id, { name: `owner ${i}` }, new Date());
            await tx.audit({ action: 'create', entityType: 'owner', entityId: id, outcome: 'success' });
            if (i % 3 === 1) throw new NotFoundError('Thing', `t${i}`); // a domain refusal after writing
            if (i % 3 === 2 && i < 6) await tx.insertRecord('owner', id, { name: 'duplicate id' }, new Date()); // an SQL error
            return id;
          }),
        ),
      );
      assert.ok(Math.max(...h.batches) >= 12, `batch sizes ${h.batches.join(',')}`);
      const failedAt = new Set(ids.map((_, i) => i).filter((i) => i % 3 === 1 || (i % 3 === 2 && i < 6)));
      results.forEach((r, i) => {
        if (failedAt.has(i)) {
          assert.equal(r.status, 'rejected', `unit ${i} should fail`);
          if (i % 3 === 1) assert.ok((r as PromiseRejectedResult).reason instanceof NotFoundError, 'its own error');
          else assert.match(String(((r as PromiseRejectedResult).reason as { code?: string }).code), /23505/);
        } else assert.equal(r.status, 'fulfilled', `unit ${i} should commit: ${String((r as PromiseRejectedResult).reason)}`);
      });
      const stored = new Set((await h.db.query<{ id: string }>('SELECT id FROM owners WHERE id = ANY($1::uuid[])', [ids])).map((r) => r.id));
      ids.forEach((id, i) => assert.equal(stored.has(id), !failedAt.has(i), `owner of unit ${i}`));
      const audited = new Set((await h.db.query<{ entity_id: string }>('SELECT entity_id FROM audit_events WHERE entity_id = ANY($1)', [ids])).map((r) => r.entity_id));
      ids.forEach((id, i) => assert.equal(audited.has(id), !failedAt.has(i), `audit event of unit ${i}`));
      const verified = await store.verifyAudit();
      assert.equal(verified.ok, true, JSON.stringify(verified));
    });

    it('a unit is acknowledged only after COMMIT: a failing COMMIT rejects every unit of the batch and writes nothing', async () => {
      h.batches.length = 0;
      const ids = Array.from({ length: 6 }, () => uuidv7());
      const owners = ids.map((id, i) => () =>
        store.inClinic(b, async (tx) => {
          await tx.insertRecord('owner', id, { name: `owner ${i}` }, new Date());
          await tx.audit({ action: 'create', entityType: 'owner', entityId: id, outcome: 'success' });
          return id;
        }),
      );
      // Two more units insert the same value: legal until the deferred check at COMMIT.
      const probes = [1, 2].map(() => () => h.db.transaction(async (tx) => (await tx.query('INSERT INTO gc_probe (v) VALUES (42)')).length, { clinicId: b.principal.clinicId }));
      const results = await batched<unknown>([...owners.slice(0, 3), probes[0]!, ...owners.slice(3), probes[1]!]);
      assert.ok(Math.max(...h.batches) >= 8, `batch sizes ${h.batches.join(',')}`);
      assert.ok(results.every((r) => r.status === 'rejected'), 'no unit of a failed commit may be acknowledged');
      const stored = await h.db.query('SELECT id FROM owners WHERE id = ANY($1::uuid[])', [ids]);
      assert.equal(stored.length, 0);
      // The chain head was not advanced in memory: later writes still verify.
      await store.inClinic(b, (tx) => tx.audit({ action: 'create', entityType: 'owner', entityId: null, outcome: 'success' }));
      const verified = await store.verifyAudit();
      assert.equal(verified.ok, true, JSON.stringify(verified));
    });

    it('writes-only diagnoses of one clinic share one statement; a bad one fails alone, clinics stay scoped, the audit chain holds', async () => {
      h.batches.length = 0;
      const diagnosis = (id: string, at: Date) => ({
        record: { id, patientId: null, encounterId: null, consultationId: `cs_${id}`, species: 'dog', triageLevel: 'routine', topCondition: null, kbVersion: 'test', input: { n: id }, report: { id }, createdAt: at },
        evidence: [{ conclusionType: 'triage' as const, conclusionCode: 'routine', evidenceKind: 'vital', evidenceRef: 'heartRate', finding: null, detail: {}, weight: null }],
        provenance: { agents: { intake: 'test' }, kbVersion: 'test', chainDigest: 'd'.repeat(64), chain: [], requestId: `req-${id}`, sessionId: `cs_${id}`, recordedAt: at },
      });
      const taken = uuidv7();
      const first = diagnosis(taken, new Date());
      await store.inClinic(a, (tx) => tx.insertDiagnosis(first.record, first.evidence, first.provenance, { action: 'create', entityType: 'diagnosis', entityId: taken, outcome: 'success' }), { writesOnly: true });
      // a a a b b a a a(taken again: 23505) a a(domain refusal after its write) a
      const plan: Array<{ ctx: RequestContext; id: string; refuse?: true }> = [];
      const clinics = [a, a, a, b, b, a, a, a, a, a, a];
      clinics.forEach((ctx, i) => plan.push({ ctx, id: i === 7 ? taken : uuidv7(), ...(i === 9 ? { refuse: true as const } : {}) }));
      const results = await batched(
        plan.map((p) => () =>
          store.inClinic(
            p.ctx,
            async (tx) => {
              const d = diagnosis(p.id, new Date());
              await tx.insertDiagnosis(d.record, d.evidence, d.provenance, { action: 'create', entityType: 'diagnosis', entityId: p.id, outcome: 'success' });
              if (p.refuse) throw new NotFoundError('Thing', p.id);
              return p.id;
            },
            { writesOnly: true },
          ),
        ),
      );
      assert.ok(Math.max(...h.batches) >= plan.length, `batch sizes ${h.batches.join(',')}`);
      results.forEach((r, i) => {
        if (i === 7) assert.match(String(((r as PromiseRejectedResult).reason as { code?: string }).code), /23505/, 'the duplicate fails with its own error');
        else if (i === 9) assert.ok((r as PromiseRejectedResult).reason instanceof NotFoundError, 'the refusal fails with its own error');
        else assert.equal(r.status, 'fulfilled', `unit ${i}: ${String((r as PromiseRejectedResult).reason)}`);
      });
      const ids = plan.map((p) => p.id);
      const rows = await h.db.query<{ id: string; clinic_id: string; cmin: string }>('SELECT id, clinic_id, cmin::text AS cmin FROM diagnoses WHERE id = ANY($1::uuid[])', [ids]);
      const byId = new Map(rows.map((r) => [r.id, r]));
      plan.forEach((p, i) => {
        if (i === 7) return;
        assert.equal(byId.has(p.id), i !== 9, `diagnosis of unit ${i}`);
        if (i !== 9) assert.equal(byId.get(p.id)!.clinic_id, p.ctx.principal.clinicId, `unit ${i} stored under its own clinic`);
      });
      // Units 0-2 (clinic A) and 3-4 (clinic B) went as one statement each: one command id per run.
      assert.equal(new Set(ids.slice(0, 3).map((id) => byId.get(id)!.cmin)).size, 1, 'units 0-2 shared a statement');
      assert.equal(new Set(ids.slice(3, 5).map((id) => byId.get(id)!.cmin)).size, 1, 'units 3-4 shared a statement');
      assert.notEqual(byId.get(ids[0]!)!.cmin, byId.get(ids[3]!)!.cmin, 'a change of clinic starts a new statement');
      const provenance = await h.db.query<{ diagnosis_id: string }>('SELECT diagnosis_id FROM diagnosis_provenance WHERE diagnosis_id = ANY($1::uuid[])', [ids]);
      assert.equal(provenance.length, plan.length - 2 + 1, 'provenance beside every stored diagnosis (and the first, taken id)');
      const audited = await h.db.query<{ entity_id: string }>("SELECT entity_id FROM audit_events WHERE entity_type = 'diagnosis' AND entity_id = ANY($1)", [ids]);
      assert.equal(audited.filter((e) => e.entity_id !== taken).length, plan.length - 2, 'one audit event per stored diagnosis');
      const verified = await store.verifyAudit();
      assert.equal(verified.ok, true, JSON.stringify(verified));
      // A writes-only transaction that queries is a bug, refused (inside a batch; alone it runs as any).
      const refused = await batched([() => h.db.transaction((tx) => tx.query('SELECT 1'), { clinicId: a.principal.clinicId, writesOnly: true }), () => h.db.transaction((tx) => tx.query('SELECT 1'), { clinicId: a.principal.clinicId, writesOnly: true })]);
      assert.ok(refused.every((r) => r.status === 'rejected' && /writes-only/.test(String(r.reason))));
    });

    it('coalesces reads of one record within a shared commit, never across a write or a rollback', async () => {
      const reads: boolean[] = [];
      const coalescing = new SqlClinicalStore(h.db, 'coalesce-test', (hit) => reads.push(hit));
      const id = uuidv7();
      await coalescing.inClinic(a, (tx) => tx.insertRecord('owner', id, { name: 'v1' }, new Date()));
      const name = (r: { content: unknown } | null) => (r?.content as { name: string } | undefined)?.name;

      h.batches.length = 0;
      reads.length = 0;
      const plain = await batched(
        Array.from({ length: 10 }, (_, i) => () =>
          coalescing.inClinic(a, async (tx) => {
            const rec = await tx.getRecord('owner', id);
            await tx.audit({ action: 'read', entityType: 'owner', entityId: id, outcome: 'success' });
            const seen = name(rec);
            // A request changing its copy must not change what the next one reads.
            (rec!.content as { name: string }).name = `changed by ${i}`;
            return seen;
          }),
        ),
      );
      assert.ok(Math.max(...h.batches) >= 10, `batch sizes ${h.batches.join(',')}`);
      assert.deepEqual(plain.map((r) => (r as PromiseFulfilledResult<string>).value), Array(10).fill('v1'));
      assert.equal(reads.filter((hit) => !hit).length, 1, `one SELECT for ten reads, got ${reads.map((hit) => (hit ? 'hit' : 'miss')).join(',')}`);

      // Another clinic reading the same id in the batch is not served from clinic A's read.
      reads.length = 0;
      const crossed = await batched([a, b].map((ctx) => () => coalescing.inClinic(ctx, async (tx) => name(await tx.getRecord('owner', id)) ?? null)));
      assert.deepEqual(crossed.map((r) => (r as PromiseFulfilledResult<string | null>).value), ['v1', null]);
      assert.deepEqual(reads, [false, false]);

      h.batches.length = 0;
      const read = () => coalescing.inClinic(a, async (tx) => {
        const rec = await tx.getRecord('owner', id);
        return `${name(rec)}@${rec?.version}`;
      });
      const write = (from: number, to: string, fail: boolean) => () =>
        coalescing.inClinic(a, async (tx) => {
          const updated = await tx.updateRecord('owner', id, from, { name: to }, false, new Date());
          assert.ok(updated !== null);
          // Read back within the unit: the rolled-back state must not reach later units.
          assert.equal(name(await tx.getRecord('owner', id)), to);
          if (fail) throw new NotFoundError('Thing', 'after the write');
          return `${to}@${updated.version}`;
        });
      const mixed = await batched<string>([read, read, write(1, 'v2', false), read, read, write(2, 'v3', true), read, read]);
      assert.ok(Math.max(...h.batches) >= 8, `batch sizes ${h.batches.join(',')}`);
      assert.deepEqual(
        mixed.map((r) => (r.status === 'fulfilled' ? r.value : 'rejected')),
        ['v1@1', 'v1@1', 'v2@2', 'v2@2', 'v2@2', 'rejected', 'v2@2', 'v2@2'],
      );
      const [stored] = await h.db.query<{ version: number }>('SELECT version FROM owners WHERE id = $1', [id]);
      assert.equal(stored?.version, 2);

      // A read sent just before a write of the same record, on the same connection, answers
      // first; the older row it brings back must not be served afterwards.
      const raced = await coalescing.inClinic(a, async (tx) => {
        const [, updated] = await Promise.all([tx.getRecord('owner', id), tx.updateRecord('owner', id, 2, { name: 'v4' }, false, new Date())]);
        assert.ok(updated !== null);
        return name(await tx.getRecord('owner', id));
      });
      assert.equal(raced, 'v4');
    });

    it('refuses new work with OverloadedError once the queue is full, and loses nothing it accepted', async () => {
      const small = await make([], 5);
      try {
        await migrate(small.db);
        const s = new SqlClinicalStore(small.db, 'overload-test');
        const k = issueKey();
        const ctx = ctxFor((await s.createClinic('C', k))!.clinicId, k.id);
        const hold = gate();
        const blocker = s.inClinic(ctx, async () => hold.promise);
        await new Promise((resolve) => setTimeout(resolve, 20));
        const ids = Array.from({ length: 8 }, () => uuidv7());
        const running = Promise.allSettled(ids.map((id) => s.inClinic(ctx, (tx) => tx.insertRecord('owner', id, { name: 'x' }, new Date()))));
        hold.open();
        await blocker;
        const settled = await running;
        const refused = settled.filter((r) => r.status === 'rejected');
        assert.equal(refused.length, 3);
        assert.ok(refused.every((r) => (r as PromiseRejectedResult).reason instanceof OverloadedError));
        const stored = await small.db.query<{ id: string }>('SELECT id FROM owners WHERE id = ANY($1::uuid[])', [ids]);
        assert.equal(stored.length, 5, 'every accepted unit committed');
      } finally {
        await small.cleanup();
      }
    });
  });
}

groupCommitSuite(
  'PGlite',
  async (batches, queueMax) => {
    const db = await PgliteExecutor.open({ onBatch: (n) => batches.push(n), queueMax });
    return { db, batches, cleanup: () => db.close() };
  },
  false,
);

groupCommitSuite(
  'PostgreSQL',
  async (batches, queueMax) => {
    const database = await createTestDatabase();
    // Two connections: one for clinic transactions (the slot the blocker holds), one for system queries.
    const db = new PostgresExecutor({ connectionString: database.url, poolMax: 2, onBatch: (n) => batches.push(n), queueMax });
    return {
      db,
      batches,
      cleanup: async () => {
        await db.close();
        await database.drop();
      },
    };
  },
  pgSkipReason(),
);
