/**
 * Real servers for the tests. scripts/test.mjs probes PostgreSQL once and passes the verdict in
 * AGENTICPET_TEST_PG ("postgres://..." or "skip:<reason>"); a suite that needs the server is
 * skipped with that reason (or, under AGENTICPET_REQUIRE_SERVICES=1, the runner has already failed).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export function pgSkipReason(): string | false {
  const verdict = process.env.AGENTICPET_TEST_PG ?? DEFAULT_PG_URL;
  return verdict.startsWith('skip:') ? verdict.slice(5) : false;
}

function adminUrl(): string {
  const verdict = process.env.AGENTICPET_TEST_PG ?? DEFAULT_PG_URL;
  return verdict.startsWith('skip:') ? DEFAULT_PG_URL : verdict;
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh database of its own for one test file; drop() removes it (connections included). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `agenticpet_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl() });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
