import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemorySessionStore, SessionTooLargeError } from '../src/storage/sessions/memory.js';
import { newMeta, sessionStoreContract, step } from './contract/sessions.contract.js';

sessionStoreContract('in-process (lru-cache)', async () => {
  const store = new MemorySessionStore();
  return { store, cleanup: () => store.close() };
});

describe('in-process session store bounds', () => {
  it('holds at most maxSessions, evicting the least recently used', async () => {
    const store = new MemorySessionStore({ maxSessions: 3 });
    const metas = Array.from({ length: 6 }, () => newMeta());
    for (const m of metas.slice(0, 3)) await store.create(m, 60);
    // Reading the first makes the second the least recently used.
    assert.notEqual(await store.get(metas[0]!.clinicId, metas[0]!.id, 60), null);
    await store.create(metas[3]!, 60);
    assert.equal(await store.get(metas[1]!.clinicId, metas[1]!.id, 60), null);
    for (const m of metas.slice(4)) await store.create(m, 60);
    assert.equal(store.stats().sessions, 3);
    const alive = [];
    for (const m of metas) if ((await store.get(m.clinicId, m.id, 60)) !== null) alive.push(m.id);
    assert.deepEqual(alive, [metas[3]!.id, metas[4]!.id, metas[5]!.id]);
    await store.close();
  });

  it('keeps the memory held under maxBytes as sessions grow, evicting the oldest', async () => {
    const maxBytes = 200_000;
    const store = new MemorySessionStore({ maxBytes });
    const metas = Array.from({ length: 40 }, () => newMeta());
    const note = 'x'.repeat(2_000);
    for (const m of metas) {
      await store.create(m, 60);
      for (let i = 0; i < 5; i++) assert.equal(await store.write(m.clinicId, m.id, { inputs: [note], steps: [step(i, 'triage', note)] }, 60), true);
      assert.ok(store.stats().bytes <= maxBytes, `${store.stats().bytes} bytes held, bound is ${maxBytes}`);
    }
    const { sessions, bytes } = store.stats();
    assert.ok(sessions < metas.length && sessions > 5, `${sessions} sessions kept`);
    assert.ok(bytes > maxBytes / 2, `the bound should be used, not undershot: ${bytes}`);
    assert.equal(await store.get(metas[0]!.clinicId, metas[0]!.id, 60), null);
    const last = await store.get(metas[39]!.clinicId, metas[39]!.id, 60);
    assert.equal(last?.inputs.length, 5);
    await store.close();
  });

  it('counts each agent output once: a diagnosis chain is not stored again as results', async () => {
    const store = new MemorySessionStore({ maxBytes: 1_000_000 });
    const m = newMeta();
    await store.create(m, 60);
    const empty = store.stats().bytes;
    const output = 'y'.repeat(10_000);
    await store.write(m.clinicId, m.id, { steps: [step(1, 'triage', output)] }, 60);
    const held = store.stats().bytes - empty;
    assert.ok(held > 10_000 && held < 11_000, `${held} bytes for one 10,000-character output`);
    assert.equal((await store.get(m.clinicId, m.id, 60))?.results.triage, output);
    await store.close();
  });

  it('refuses a write that would make one session larger than the whole store, changing nothing', async () => {
    const store = new MemorySessionStore({ maxBytes: 50_000 });
    const m = newMeta();
    await store.create(m, 60);
    await store.write(m.clinicId, m.id, { inputs: ['kept'] }, 60);
    await assert.rejects(store.write(m.clinicId, m.id, { inputs: ['z'.repeat(60_000)] }, 60), SessionTooLargeError);
    assert.deepEqual((await store.get(m.clinicId, m.id, 60))?.inputs, ['kept']);
    await store.close();
  });

  it('rejects a TTL that is not a positive number of seconds', async () => {
    const store = new MemorySessionStore();
    await assert.rejects(store.create(newMeta(), 0), RangeError);
    await assert.rejects(store.get('c', 's', Number.NaN), RangeError);
    await store.close();
  });
});
