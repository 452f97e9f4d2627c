import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StorageUnavailableError } from '../src/clinical/errors.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { storeContract } from './contract/store.contract.js';

storeContract('PGlite (embedded, in memory)', async () => {
  const db = await PgliteExecutor.open();
  return { db, cleanup: () => db.close() };
});

describe('PGlite on its own thread', () => {
  it('carries a database error across the thread with its SQLSTATE and constraint', async () => {
    const db = await PgliteExecutor.open();
    try {
      await db.query('CREATE TABLE t (id int PRIMARY KEY)');
      await db.query('INSERT INTO t VALUES (1)');
      const err = await db.query('INSERT INTO t VALUES (1)').then(
        () => null,
        (e: unknown) => e as { code?: string; constraint?: string },
      );
      assert.equal(err?.code, '23505');
      assert.equal(err?.constraint, 't_pkey');
    } finally {
      await db.close();
    }
  });

  it('rolls back a transaction whose body throws, and commits the next one', async () => {
    const db = await PgliteExecutor.open();
    try {
      await db.query('CREATE TABLE t (id int)');
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO t VALUES (1)');
          throw new Error('boom');
        }),
        /boom/,
      );
      await db.transaction((tx) => tx.query('INSERT INTO t VALUES (2)'));
      assert.deepEqual(await db.query('SELECT id FROM t'), [{ id: 2 }]);
    } finally {
      await db.close();
    }
  });

  it('answers StorageUnavailableError (a 503), not a hang or a crash, once its thread is gone', async () => {
    const db = await PgliteExecutor.open();
    await (db as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await assert.rejects(db.query('SELECT 1'), StorageUnavailableError);
    await assert.rejects(db.transaction(async () => undefined, { clinicId: '01a24b63-c19a-755d-bd61-f48d2831b929' }), StorageUnavailableError);
    await db.close();
  });
});
