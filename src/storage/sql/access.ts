/** SQL for clinics, API keys and the principals they authenticate. */
import { uuidv7 } from '../../clinical/ids.js';
import type { Principal, StoredApiKey } from '../../clinical/ports.js';
import type { Role } from '../../contract/schemas.js';
import type { SqlExecutor, SqlTx } from './executor.js';

interface ApiKeyRow {
  id: string;
  name: string;
  role: Role;
  key_prefix: string;
  created_at: Date;
  revoked_at: Date | null;
}

function toApiKey(row: ApiKeyRow): StoredApiKey {
  return { id: row.id, name: row.name, role: row.role, keyPrefix: row.key_prefix, createdAt: row.created_at, revokedAt: row.revoked_at };
}

export async function insertApiKey(tx: SqlTx, clinicId: string, key: { id: string; name: string; role: Role; keyHash: Buffer; keyPrefix: string; createdBy: string | null }): Promise<StoredApiKey> {
  const [row] = await tx.query<ApiKeyRow>(
    `INSERT INTO api_keys (clinic_id, id, name, role, key_hash, key_prefix, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)
     RETURNING id, name, role, key_prefix, created_at, revoked_at`,
    [clinicId, key.id, key.name, key.role, key.keyHash, key.keyPrefix, key.createdBy],
  );
  return toApiKey(row!);
}

export async function revokeApiKey(tx: SqlTx, clinicId: string, id: string): Promise<StoredApiKey | null> {
  const [row] = await tx.query<ApiKeyRow>(
    `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE clinic_id = $1 AND id = $2
     RETURNING id, name, role, key_prefix, created_at, revoked_at`,
    [clinicId, id],
  );
  return row === undefined ? null : toApiKey(row);
}

export async function findPrincipalByKeyHash(db: SqlExecutor, keyHash: Buffer): Promise<Principal | null> {
  const [row] = await db.query<{ id: string; clinic_id: string; role: Role }>('SELECT id, clinic_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL', [keyHash]);
  return row === undefined ? null : { keyId: row.id, clinicId: row.clinic_id, role: row.role };
}

export async function findPrincipalsByKeyHashes(db: SqlExecutor, keyHashes: Buffer[]): Promise<Map<string, Principal>> {
  const rows = await db.query<{ id: string; clinic_id: string; role: Role; key_hash: Buffer }>(
    'SELECT id, clinic_id, role, key_hash FROM api_keys WHERE key_hash = ANY($1::bytea[]) AND revoked_at IS NULL',
    [keyHashes],
  );
  return new Map(rows.map((r) => [Buffer.from(r.key_hash).toString('hex'), { keyId: r.id, clinicId: r.clinic_id, role: r.role }]));
}

/** Outside any clinic's scope, like the key lookups: the caller is not authenticated yet. */
export async function clinicExists(db: SqlExecutor, clinicId: string): Promise<boolean> {
  const rows = await db.query<{ found: number }>('SELECT 1 AS found FROM clinics WHERE id = $1', [clinicId]);
  return rows.length > 0;
}

// Serialises bootstrap across instances that start together.
const BOOTSTRAP_LOCK_KEY = 7_240_611_902_312;

export function createClinic(db: SqlExecutor, name: string, adminKey: { id: string; keyHash: Buffer; keyPrefix: string }, opts: { ifNoClinics?: boolean } = {}): Promise<{ clinicId: string } | null> {
  return db.transaction(async (tx) => {
    if (opts.ifNoClinics) {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK_KEY]);
      const [row] = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM clinics');
      if (row!.n > 0) return null;
    }
    const clinicId = uuidv7();
    await tx.query('INSERT INTO clinics (id, name) VALUES ($1, $2)', [clinicId, name]);
    await tx.query(`INSERT INTO api_keys (clinic_id, id, name, role, key_hash, key_prefix) VALUES ($1, $2, 'initial admin key', 'admin', $3, $4)`, [
      clinicId,
      adminKey.id,
      adminKey.keyHash,
      adminKey.keyPrefix,
    ]);
    return { clinicId };
  });
}
