import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { httpAccessContract } from './contract/http-access.contract.js';
import { httpRecordsContract } from './contract/http-records.contract.js';

const open = async () => {
  const db = await PgliteExecutor.open();
  return { db, cleanup: async () => undefined /* closed with the runtime */ };
};

httpRecordsContract('PGlite (embedded)', open);
httpAccessContract('PGlite (embedded)', open);
