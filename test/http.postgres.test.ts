import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { httpAccessContract } from './contract/http-access.contract.js';
import { httpDiagnosesContract } from './contract/http-diagnoses.contract.js';
import { httpRecordsContract } from './contract/http-records.contract.js';
import { deleteKeysUnder, redisSkipReason, redisUrl, testKeyPrefix } from './support/redis.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

const open = async () => {
  const database = await createTestDatabase();
  const db = new PostgresExecutor({ connectionString: database.url, poolMax: 8 });
  return { db, cleanup: () => database.drop() };
};

httpRecordsContract('PostgreSQL', open, pgSkipReason());
httpAccessContract('PostgreSQL', open, pgSkipReason());
const prefix = testKeyPrefix();
const openWithRedis = async () => {
  const opened = await open();
  return { ...opened, cleanup: async () => (await opened.cleanup(), await deleteKeysUnder(prefix), undefined) };
};
httpDiagnosesContract('PostgreSQL + Redis', openWithRedis, {
  skip: pgSkipReason() || redisSkipReason(),
  env: { REDIS_URL: redisUrl(), REDIS_KEY_PREFIX: prefix },
  sessionStore: 'redis',
});
