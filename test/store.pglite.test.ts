import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { storeContract } from './contract/store.contract.js';

storeContract('PGlite (embedded, in memory)', async () => {
  const db = await PgliteExecutor.open();
  return { db, cleanup: () => db.close() };
});
