import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { auditAnchorContract } from './contract/audit-anchor.contract.js';

auditAnchorContract('PGlite (embedded, in memory)', async () => {
  const db = await PgliteExecutor.open();
  return { db, cleanup: () => db.close() };
});
