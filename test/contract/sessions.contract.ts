/**
 * The ephemeral-tier contract: every SessionStore adapter (and the resilient wrapper) must pass
 * it unchanged.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { AgentMessage, ChainStep, SessionMeta, SessionStore } from '../../src/clinical/sessions.js';

export interface SessionHarness {
  store: SessionStore;
  cleanup(): Promise<void>;
}

const TTL = 60;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function newMeta(clinicId: string = randomUUID(), patientId: string | null = null): SessionMeta {
  const at = '2020-01-01T00:00:00.000Z';
  return { id: randomUUID(), clinicId, patientId, createdAt: at, updatedAt: at };
}

export function step(seq: number, agent = 'triage', output: unknown = { seq, level: 'urgent' }): ChainStep {
  return { seq, agent, agentVersion: '1.0.0', inputDigest: `sha256-${seq}`, status: output === null ? 'failed' : 'ok', durationMs: seq * 2, at: new Date().toISOString(), output };
}

export function message(n: number): AgentMessage {
  return { from: 'triage', to: 'differential', kind: 'hint', at: new Date().toISOString(), body: { n } };
}

export function sessionStoreContract(name: string, open: () => Promise<SessionHarness>, { skip = false }: { skip?: string | false } = {}): void {
  describe(`ephemeral tier contract: ${name}`, { skip }, () => {
    let h: SessionHarness;
    let store: SessionStore;

    before(async () => {
      h = await open();
      store = h.store;
    });
    after(async () => h?.cleanup());

    it('answers ping', async () => {
      await store.ping();
    });

    it('creates a session and reads it back, empty', async () => {
      const meta = newMeta(randomUUID(), randomUUID());
      await store.create(meta, TTL);
      assert.deepEqual(await store.get(meta.clinicId, meta.id, TTL), { meta, inputs: [], chain: [], results: {}, messages: [] });
      assert.deepEqual(await store.meta(meta.clinicId, meta.id), meta);
      assert.equal(await store.meta(randomUUID(), meta.id), null, "another clinic's id");
      assert.equal(await store.meta(meta.clinicId, randomUUID()), null);
      const anonymous = newMeta();
      await store.create(anonymous, TTL);
      assert.equal((await store.get(anonymous.clinicId, anonymous.id, TTL))?.meta.patientId, null);
    });

    it('appends inputs, steps and messages in order across writes', async () => {
      const meta = newMeta();
      await store.create(meta, TTL);
      assert.equal(await store.write(meta.clinicId, meta.id, { inputs: ['limping'], steps: [step(1), step(2)], messages: [message(1)] }, TTL), true);
      assert.equal(await store.write(meta.clinicId, meta.id, { inputs: [{ temperature: 39.1 }, 'fever'], steps: [step(3)] }, TTL), true);
      assert.equal(await store.write(meta.clinicId, meta.id, { messages: [message(2), message(3)] }, TTL), true);
      assert.equal(await store.write(meta.clinicId, meta.id, {}, TTL), true);
      const s = await store.get(meta.clinicId, meta.id, TTL);
      assert.deepEqual(s?.inputs, ['limping', { temperature: 39.1 }, 'fever']);
      assert.deepEqual(s?.chain, [step(1), step(2), step(3)].map((x, i) => ({ ...x, at: s?.chain[i]?.at })));
      assert.deepEqual(s?.chain.map((x) => x.seq), [1, 2, 3]);
      assert.deepEqual(s?.messages.map((m) => (m.body as { n: number }).n), [1, 2, 3]);
    });

    it('keeps thousands of values from one write, in order', async () => {
      const meta = newMeta();
      await store.create(meta, TTL);
      const inputs = Array.from({ length: 5_000 }, (_, i) => ({ i }));
      const steps = Array.from({ length: 2_500 }, (_, i) => step(i));
      assert.equal(await store.write(meta.clinicId, meta.id, { inputs, steps }, TTL), true);
      const s = await store.get(meta.clinicId, meta.id, TTL);
      assert.deepEqual(s?.inputs, inputs);
      assert.deepEqual(s?.chain.map((x) => x.seq), steps.map((x) => x.seq));
    });

    it('refuses a write to a session that does not exist, and creates nothing', async () => {
      const meta = newMeta();
      assert.equal(await store.write(meta.clinicId, meta.id, { inputs: ['x'], steps: [step(1)], messages: [message(1)] }, TTL), false);
      assert.equal(await store.get(meta.clinicId, meta.id, TTL), null);
    });

    it('creates a session with its first batch in one call', async () => {
      const meta = newMeta();
      await store.create(meta, TTL, { inputs: ['first'], steps: [step(1), step(2, 'plan')], messages: [message(1)] });
      const s = await store.get(meta.clinicId, meta.id, TTL);
      assert.deepEqual(s?.meta, meta);
      assert.deepEqual(s?.inputs, ['first']);
      assert.deepEqual(s?.chain.map((x) => `${x.seq}:${x.agent}`), ['1:triage', '2:plan']);
      assert.deepEqual(s?.results, { triage: { seq: 1, level: 'urgent' }, plan: { seq: 2, level: 'urgent' } });
      assert.deepEqual(s?.messages.map((m) => (m.body as { n: number }).n), [1]);
      // Creating again over the same id starts afresh.
      await store.create(meta, TTL, { inputs: ['again'] });
      assert.deepEqual(await store.get(meta.clinicId, meta.id, TTL), { meta, inputs: ['again'], chain: [], results: {}, messages: [] });
    });

    it("gives each agent's latest output as its result, read from the chain", async () => {
      const meta = newMeta();
      await store.create(meta, TTL);
      await store.write(meta.clinicId, meta.id, { steps: [step(1, 'triage', { level: 'routine' }), step(2, 'differential', ['otitis'])] }, TTL);
      await store.write(meta.clinicId, meta.id, { steps: [step(3, 'triage', { level: 'emergency' })] }, TTL);
      // A failed step without a fail-safe answer leaves the agent's earlier result.
      await store.write(meta.clinicId, meta.id, { steps: [step(4, 'differential', null), step(5, 'plan', null)] }, TTL);
      const s = await store.get(meta.clinicId, meta.id, TTL);
      assert.deepEqual(s?.results, { triage: { level: 'emergency' }, differential: ['otitis'] });
      assert.equal(s?.chain.length, 5);
    });

    it('keeps results under agent names that mean something to JavaScript objects', async () => {
      const meta = newMeta();
      await store.create(meta, TTL);
      await store.write(meta.clinicId, meta.id, { steps: [step(1, '__proto__', { polluted: true }), step(2, 'constructor', 1), step(3, 'toString', 'x')] }, TTL);
      const got = (await store.get(meta.clinicId, meta.id, TTL))?.results;
      assert.deepEqual(Object.keys(got ?? {}).sort(), ['__proto__', 'constructor', 'toString']);
      assert.deepEqual(Object.getOwnPropertyDescriptor(got, '__proto__')?.value, { polluted: true });
      assert.equal(Object.getPrototypeOf(got), Object.prototype);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it('moves updatedAt on write, and only then', async () => {
      const meta = newMeta();
      await store.create(meta, TTL);
      assert.equal((await store.get(meta.clinicId, meta.id, TTL))?.meta.updatedAt, meta.updatedAt);
      const before = Date.now();
      await store.write(meta.clinicId, meta.id, { inputs: [1] }, TTL);
      const s = await store.get(meta.clinicId, meta.id, TTL);
      assert.equal(s?.meta.createdAt, meta.createdAt);
      assert.ok(Date.parse(s?.meta.updatedAt ?? '') >= before - 5, `updatedAt ${s?.meta.updatedAt} should be the write's time`);
    });

    it('stores values as JSON: what comes back is what JSON carries', async () => {
      const meta = newMeta();
      await store.create(meta, TTL);
      const when = new Date('2024-05-01T10:00:00.000Z');
      const values = [null, 0, -1.5, true, 'chien — 犬 🐕', { nested: { list: [1, [2, { three: 3 }]] }, empty: {} }, when, undefined, { gone: undefined, kept: 1 }];
      await store.write(meta.clinicId, meta.id, { inputs: values, steps: [step(1, 'when', { when, nothing: undefined })] }, TTL);
      const s = await store.get(meta.clinicId, meta.id, TTL);
      assert.deepEqual(s?.inputs, JSON.parse(JSON.stringify(values)));
      assert.deepEqual(s?.results, { when: { when: when.toISOString() } });
    });

    it("finds nothing with another clinic's id or a wrong session id, and writes nothing there", async () => {
      const meta = newMeta();
      await store.create(meta, TTL);
      await store.write(meta.clinicId, meta.id, { inputs: ['mine'] }, TTL);
      const otherClinic = randomUUID();
      assert.equal(await store.get(otherClinic, meta.id, TTL), null);
      assert.equal(await store.get(meta.clinicId, randomUUID(), TTL), null);
      assert.equal(await store.get(meta.id, meta.clinicId, TTL), null);
      assert.equal(await store.write(otherClinic, meta.id, { inputs: ['theirs'] }, TTL), false);
      assert.deepEqual((await store.get(meta.clinicId, meta.id, TTL))?.inputs, ['mine']);
      // Ids that could be confused if the two were simply joined.
      const a = { ...newMeta('clinic:a'), id: 'b:session' };
      await store.create(a, TTL);
      assert.equal(await store.get('clinic', 'a:b:session', TTL), null);
      assert.equal(await store.get('clinic:a:b', 'session', TTL), null);
      assert.notEqual(await store.get('clinic:a', 'b:session', TTL), null);
    });

    it('returns copies: changing what came back, or what went in, changes nothing stored', async () => {
      const meta = newMeta();
      await store.create(meta, TTL);
      const batch = { inputs: [{ weightKg: 30 }], steps: [step(1, 'triage', { level: 'routine' })], messages: [message(1)] };
      await store.write(meta.clinicId, meta.id, batch, TTL);
      batch.inputs[0]!.weightKg = 1;
      (batch.steps[0]!.output as { level: string }).level = 'changed';
      const first = await store.get(meta.clinicId, meta.id, TTL);
      assert.ok(first !== null);
      const snapshot = structuredClone(first);
      first.meta.patientId = 'someone else';
      first.inputs.push('extra');
      (first.inputs[0] as { weightKg: number }).weightKg = 99;
      (first.results.triage as { level: string }).level = 'mutated';
      first.chain.length = 0;
      first.messages.pop();
      assert.deepEqual(await store.get(meta.clinicId, meta.id, TTL), snapshot);
      assert.deepEqual(snapshot.inputs, [{ weightKg: 30 }]);
      assert.deepEqual(snapshot.results, { triage: { level: 'routine' } });
    });

    describe('TTL', { concurrency: true }, () => {
      it('expires a session after its TTL', async () => {
        const meta = newMeta();
        await store.create(meta, 1);
        await store.write(meta.clinicId, meta.id, { inputs: ['x'], steps: [step(1)], messages: [message(1)] }, 1);
        assert.notEqual(await store.get(meta.clinicId, meta.id, 1), null);
        await sleep(1_500);
        assert.equal(await store.get(meta.clinicId, meta.id, 1), null);
        assert.equal(await store.write(meta.clinicId, meta.id, { inputs: ['y'] }, 1), false);
      });

      it('slides the TTL on get', async () => {
        const meta = newMeta();
        await store.create(meta, 1);
        for (let i = 0; i < 4; i++) {
          await sleep(450);
          assert.notEqual(await store.get(meta.clinicId, meta.id, 1), null, `gone after ${(i + 1) * 450} ms although read every 450 ms`);
        }
        await sleep(1_500);
        assert.equal(await store.get(meta.clinicId, meta.id, 1), null);
      });

      it('slides the TTL on write', async () => {
        const meta = newMeta();
        await store.create(meta, 1);
        for (let i = 0; i < 4; i++) {
          await sleep(450);
          assert.equal(await store.write(meta.clinicId, meta.id, { inputs: [i], steps: [step(i)] }, 1), true, `gone after ${(i + 1) * 450} ms although written every 450 ms`);
        }
        const s = await store.get(meta.clinicId, meta.id, 1);
        assert.deepEqual(s?.inputs, [0, 1, 2, 3]);
      });

      it('takes the TTL each call gives', async () => {
        const meta = newMeta();
        await store.create(meta, 1);
        assert.notEqual(await store.get(meta.clinicId, meta.id, 5), null);
        await sleep(1_500);
        assert.notEqual(await store.get(meta.clinicId, meta.id, 1), null, 'a get with a 5 s TTL should have extended the session');
      });
    });
  });
}
