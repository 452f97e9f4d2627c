import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { httpAccessContract } from './contract/http-access.contract.js';
import { httpRecordsContract } from './contract/http-records.contract.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

const open = async () => {
  const database = await createTestDatabase();
  const db = new PostgresExecutor({ connectionString: database.url, poolMax: 8 });
  return { db, cleanup: () => database.drop() };
};

httpRecordsContract('PostgreSQL', open, pgSkipReason());
httpAccessContract('PostgreSQL', open, pgSkipReason());
