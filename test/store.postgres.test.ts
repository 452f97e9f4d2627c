import { PostgresExecutor } from '../src/storage/sql/postgres.js';
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
