import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { httpAccessContract } from './contract/http-access.contract.js';
import { httpDiagnosesContract } from './contract/http-diagnoses.contract.js';
import { httpRecordsContract } from './contract/http-records.contract.js';

const open = async () => {
  const db = await PgliteExecutor.open();
  return { db, cleanup: async () => undefined /* closed with the runtime */ };
};

httpRecordsContract('PGlite (embedded)', open);
httpAccessContract('PGlite (embedded)', open);
httpDiagnosesContract('PGlite + in-process sessions', open, { sessionStore: 'memory' });
// Redis configured but unreachable: diagnoses still succeed on in-process state, and say so.
httpDiagnosesContract('PGlite + unreachable Redis (fallback)', open, { env: { REDIS_URL: 'redis://127.0.0.1:1' }, sessionStore: 'memory-fallback' });
