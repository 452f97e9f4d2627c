import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { issueKey } from '../src/clinical/access/access.js';
import { migrate } from '../src/storage/sql/migrate.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { SqlClinicalStore } from '../src/storage/sql/store.js';
import { storeContract } from './contract/store.contract.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

storeContract(
  'PostgreSQL',
  async () => {
    const database = await createTestDatabase();
    const db = new PostgresExecutor({ connectionString: database.url, poolMax: 4 });
    const second = new PostgresExecutor({ connectionString: database.url, poolMax: 4 });
    return {
      db,
      second,
      cleanup: async () => {
        await db.close();
        await second.close();
        await database.drop();
      },
    };
  },
  { skip: pgSkipReason(), multiWriter: true },
);

describe('PostgreSQL as a non-superuser owner (like a managed database master user)', { skip: pgSkipReason() }, () => {
  it('migrates and runs clinic transactions under row-level security', async () => {
    const admin = new pg.Client({ connectionString: process.env.AGENTICPET_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres' });
    await admin.connect();
    const suffix = randomBytes(4).toString('hex');
    const owner = `agenticpet_owner_${suffix}`;
    const dbName = `agenticpet_test_owner_${suffix}`;
    await admin.query(`CREATE ROLE ${owner} LOGIN CREATEROLE`);
    await admin.query(`CREATE DATABASE ${dbName} OWNER ${owner}`);
    const url = new URL(process.env.AGENTICPET_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    url.username = owner;
    url.pathname = `/${dbName}`;
    const db = new PostgresExecutor({ connectionString: url.toString(), poolMax: 2 });
    try {
      const [me] = await db.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
      assert.equal(me!.rolsuper, false);
      await migrate(db);
      const store = new SqlClinicalStore(db, 'owner-test');
      const key = issueKey();
      const clinic = await store.createClinic('Managed', key);
      const ctx = { principal: { clinicId: clinic!.clinicId, keyId: key.id, role: 'admin' as const }, requestId: 'r', sourceIp: null };
      const rows = await store.inClinic(ctx, async (tx) => {
        await tx.insertRecord('owner', uuidv7(), { name: 'x' }, new Date());
        return tx.listPatients({ limit: 5 });
      });
      assert.deepEqual(rows.items, []);
      assert.equal((await store.verifyAudit()).ok, true);
    } finally {
      await db.close();
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.query(`DROP OWNED BY ${owner}`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${owner}`);
      await admin.end();
    }
  });
});
