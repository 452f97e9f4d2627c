import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { auditAnchorContract } from './contract/audit-anchor.contract.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

auditAnchorContract(
  'PostgreSQL',
  async () => {
    const database = await createTestDatabase();
    const db = new PostgresExecutor({ connectionString: database.url, poolMax: 2 });
    return {
      db,
      cleanup: async () => {
        await db.close();
        await database.drop();
      },
    };
  },
  { skip: pgSkipReason() },
);
