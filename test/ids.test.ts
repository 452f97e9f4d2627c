import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validate, version } from 'uuid';
import { newSessionId, uuidv7 } from '../src/clinical/ids.js';

test('uuidv7 gives RFC 9562 version-7 ids whose order is the order they were made in', () => {
  const before = Date.now();
  const ids = Array.from({ length: 20_000 }, () => uuidv7());
  const after = Date.now();
  for (const id of ids) {
    assert.ok(validate(id), id);
    assert.equal(version(id), 7);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
  assert.equal(new Set(ids).size, ids.length, 'no id repeats');
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} sorts before ${ids[i]}`);
  // The first 48 bits are the Unix time in milliseconds.
  const msecs = (id: string) => parseInt(id.replace(/-/g, '').slice(0, 12), 16);
  assert.ok(msecs(ids[0]!) >= before && msecs(ids.at(-1)!) <= after + 1, 'timestamps fall within the run');
});

test('session ids are cs_ and 16 random bytes, never repeated', () => {
  const ids = Array.from({ length: 5_000 }, () => newSessionId());
  for (const id of ids) assert.match(id, /^cs_[A-Za-z0-9_-]{22}$/);
  assert.equal(new Set(ids).size, ids.length);
  // Pool refills must not repeat bytes: 5,000 ids span many 4 KiB refills.
  assert.equal(new Set(ids.map((id) => id.slice(3, 11))).size, ids.length);
});
