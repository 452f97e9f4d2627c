/** SQL for idempotency keys: the response of a POST stored with the key it came with. */
import { IdempotencyKeyTakenError } from '../../clinical/errors.js';
import type { StoredResponse } from '../../clinical/ports.js';
import type { SqlTx } from './executor.js';

export async function findIdempotent(tx: SqlTx, clinicId: string, key: string): Promise<{ requestHash: string; response: StoredResponse } | null> {
  const [row] = await tx.query<{ request_hash: string; response: StoredResponse }>('SELECT request_hash, response FROM idempotency_keys WHERE clinic_id = $1 AND key = $2', [clinicId, key]);
  return row === undefined ? null : { requestHash: row.request_hash, response: row.response };
}

export async function saveIdempotent(tx: SqlTx, clinicId: string, key: string, requestHash: string, response: StoredResponse): Promise<void> {
  // A body already serialised is stored as that text rather than serialised a second time:
  // "body" goes last, so its null can be cut off and the stored text put in its place.
  const { bodyJson, body, ...rest } = response;
  const text = bodyJson === undefined ? JSON.stringify({ ...rest, body }) : `${JSON.stringify({ ...rest, body: null }).slice(0, -'null}'.length)}${bodyJson}}`;
  try {
    await tx.query('INSERT INTO idempotency_keys (clinic_id, key, request_hash, status, response) VALUES ($1, $2, $3, $4, $5)', [clinicId, key, requestHash, response.status, text]);
  } catch (err) {
    // A unique violation of this key: a concurrent request with the same key committed first.
    const e = err as { code?: string; constraint?: string; message?: string };
    if (e.code === '23505' && (e.constraint === 'idempotency_keys_pkey' || (e.message ?? '').includes('idempotency_keys_pkey'))) throw new IdempotencyKeyTakenError();
    throw err;
  }
}
