/**
 * The clinical store on SQL: one implementation for PostgreSQL and PGlite. Every clinical
 * transaction runs under row-level security for the caller's clinic, and every query also names
 * the clinic, so isolation holds even if one of the two were forgotten.
 */
import { v7 as uuidv7 } from 'uuid';
import type {
  AuditEntry,
  AuditFilter,
  AuditVerification,
  ClinicalStore,
  ClinicalTx,
  DiagnosisRecord,
  EvidenceLink,
  Page,
  PatientFilter,
  Principal,
  ProvenanceRecord,
  RequestContext,
  ResourceType,
  StoredApiKey,
  StoredAuditEvent,
  StoredRecord,
  StoredResponse,
  StoredVersion,
  WeightEntry,
} from '../../clinical/ports.js';
import type { Role } from '../../clinical/schemas.js';
import { AuditWriter, verifyAuditChains } from './audit-chain.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import * as diagnosisSql from './diagnoses.js';
import type { SqlExecutor, SqlTx } from './executor.js';

type Columns = Record<string, unknown>;

interface TableSpec {
  table: string;
  /** Typed columns copied out of the content for indexing and foreign keys. */
  columns: (content: Record<string, unknown>) => Columns;
}

const TABLES: Record<ResourceType, TableSpec> = {
  owner: { table: 'owners', columns: (c) => ({ name: c.name }) },
  patient: { table: 'patients', columns: (c) => ({ owner_id: c.ownerId, name: c.name, species: c.species }) },
  encounter: { table: 'encounters', columns: (c) => ({ patient_id: c.patientId, status: c.status }) },
  observation: {
    table: 'observations',
    columns: (c) => ({ encounter_id: c.encounterId, patient_id: c.patientId, category: c.category, code: c.code }),
  },
  media: {
    table: 'media',
    columns: (c) => ({ patient_id: c.patientId ?? null, encounter_id: c.encounterId ?? null, content_type: c.contentType, size_bytes: c.sizeBytes, sha256: c.sha256 }),
  },
};

const CHILDREN = {
  encounter: { table: 'encounters', parent: 'patient_id' },
  observation: { table: 'observations', parent: 'encounter_id' },
} as const;

interface RecordRow {
  id: string;
  version: number;
  deleted: boolean;
  content: unknown;
  created_at: Date;
  updated_at: Date;
}

const RECORD_COLUMNS = 'id, version, deleted, content, created_at, updated_at';

function toRecord(row: RecordRow): StoredRecord<unknown> {
  return { id: row.id, version: row.version, deleted: row.deleted, content: row.content, createdAt: row.created_at, updatedAt: row.updated_at };
}

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

function likePrefix(prefix: string): string {
  return `${prefix.toLowerCase().replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
}

function page<T>(rows: T[], limit: number, cursorOf: (last: T) => unknown[]): Page<T> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  return { items, nextCursor: more ? encodeCursor(cursorOf(items[items.length - 1]!)) : null };
}

/**
 * Reads coalesced within one physical transaction. With group commit, the requests of a batch
 * run one after another in one database transaction; when several read the same record, the
 * first SELECT answers them all (DataLoader-style, keyed by clinic, type and id). Any write of
 * that record in the transaction drops the entry, and a unit's rollback drops them all, so a
 * read never sees a state the database would not show it at that point. Each request still
 * writes its own audit event. Locking reads (FOR UPDATE) always go to the database.
 */
const coalescedReads = new WeakMap<object, Map<string, StoredRecord<unknown> | null>>();

/** Told of every record read: served from the transaction's earlier read (hit) or not. */
export type RecordReadObserver = (hit: boolean) => void;

class SqlClinicalTx implements ClinicalTx {
  private rollbackHooked = false;

  constructor(
    private readonly tx: SqlTx,
    private readonly ctx: RequestContext,
    private readonly auditWriter: AuditWriter,
    private readonly onRead?: RecordReadObserver,
  ) {}

  private readKey(type: ResourceType, id: string): string {
    return `${this.clinicId}|${type}|${id}`;
  }

  private reads(): Map<string, StoredRecord<unknown> | null> {
    let reads = coalescedReads.get(this.tx.txn);
    if (reads === undefined) coalescedReads.set(this.tx.txn, (reads = new Map()));
    if (!this.rollbackHooked) {
      this.rollbackHooked = true;
      this.tx.onRollback(() => coalescedReads.delete(this.tx.txn));
    }
    return reads;
  }

  private get clinicId(): string {
    return this.ctx.principal.clinicId;
  }

  async insertRecord(type: ResourceType, id: string, content: Record<string, unknown>, at: Date): Promise<StoredRecord<unknown>> {
    const spec = TABLES[type];
    const cols = spec.columns(content);
    const names = ['clinic_id', 'id', 'version', 'deleted', 'content', 'created_at', 'updated_at', ...Object.keys(cols)];
    const values = [this.clinicId, id, 1, false, JSON.stringify(content), at, at, ...Object.values(cols)];
    const [row] = await this.tx.query<RecordRow>(
      `INSERT INTO ${spec.table} (${names.join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING ${RECORD_COLUMNS}`,
      values,
    );
    this.reads().delete(this.readKey(type, id));
    await this.recordVersion(type, id, 1, false, content, at);
    return toRecord(row!);
  }

  async updateRecord(type: ResourceType, id: string, expectedVersion: number, content: Record<string, unknown>, deleted: boolean, at: Date): Promise<StoredRecord<unknown> | null> {
    const spec = TABLES[type];
    const cols = spec.columns(content);
    const sets = ['version = version + 1', 'deleted = $4', 'content = $5', 'updated_at = $6', ...Object.keys(cols).map((c, i) => `${c} = $${i + 7}`)];
    // The version predicate makes concurrent writers with the same If-Match race for one winner:
    // the loser re-reads the row after the winner commits and matches nothing.
    this.reads().delete(this.readKey(type, id));
    const [row] = await this.tx.query<RecordRow>(
      `UPDATE ${spec.table} SET ${sets.join(', ')} WHERE clinic_id = $1 AND id = $2 AND version = $3 RETURNING ${RECORD_COLUMNS}`,
      [this.clinicId, id, expectedVersion, deleted, JSON.stringify(content), at, ...Object.values(cols)],
    );
    // Again once the write has answered: a read of this record issued before it on the same
    // connection resolves first and must not leave its older row behind.
    this.reads().delete(this.readKey(type, id));
    if (row === undefined) return null;
    await this.recordVersion(type, id, row.version, deleted, content, at);
    return toRecord(row);
  }

  private async recordVersion(type: ResourceType, id: string, version: number, deleted: boolean, content: unknown, at: Date): Promise<void> {
    await this.tx.query(
      `INSERT INTO record_versions (clinic_id, resource_type, id, version, deleted, content, recorded_at, recorded_by, request_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [this.clinicId, type, id, version, deleted, JSON.stringify(content), at, this.ctx.principal.keyId, this.ctx.requestId],
    );
  }

  async getRecord(type: ResourceType, id: string, opts: { forUpdate?: boolean } = {}): Promise<StoredRecord<unknown> | null> {
    const reads = this.reads();
    const key = this.readKey(type, id);
    if (!opts.forUpdate) {
      const earlier = reads.get(key);
      this.onRead?.(earlier !== undefined);
      // A copy: the requests sharing the read must not see each other's changes to it.
      if (earlier !== undefined) return structuredClone(earlier);
    }
    const [row] = await this.tx.query<RecordRow>(
      `SELECT ${RECORD_COLUMNS} FROM ${TABLES[type].table} WHERE clinic_id = $1 AND id = $2${opts.forUpdate ? ' FOR UPDATE' : ''}`,
      [this.clinicId, id],
    );
    const rec = row === undefined ? null : toRecord(row);
    // A locking read precedes a write, which drops the entry again.
    if (!opts.forUpdate) reads.set(key, rec === null ? null : structuredClone(rec));
    return rec;
  }

  async history(type: ResourceType, id: string): Promise<StoredVersion<unknown>[]> {
    const rows = await this.tx.query<{ version: number; deleted: boolean; recorded_at: Date; recorded_by: string | null; content: unknown }>(
      `SELECT version, deleted, recorded_at, recorded_by, content FROM record_versions
       WHERE clinic_id = $1 AND resource_type = $2 AND id = $3 ORDER BY version DESC`,
      [this.clinicId, type, id],
    );
    return rows.map((r) => ({ version: r.version, deleted: r.deleted, recordedAt: r.recorded_at, recordedBy: r.recorded_by, content: r.content }));
  }

  async listPatients(filter: PatientFilter): Promise<Page<StoredRecord<unknown>>> {
    const where = ['clinic_id = $1', 'NOT deleted'];
    const params: unknown[] = [this.clinicId];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (filter.namePrefix !== undefined) add("lower(name) LIKE ? ESCAPE '\\'", likePrefix(filter.namePrefix));
    if (filter.species !== undefined) add('species = ?', filter.species);
    if (filter.ownerId !== undefined) add('owner_id = ?', filter.ownerId);
    if (filter.cursor !== undefined) add('id > ?', decodeCursor(filter.cursor, ['uuid'])[0]);
    params.push(filter.limit + 1);
    const rows = await this.tx.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM patients WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${params.length}`, params);
    return page(rows.map(toRecord), filter.limit, (last) => [last.id]);
  }

  async listChildren(type: 'encounter' | 'observation', parentId: string, limit: number, cursor?: string): Promise<Page<StoredRecord<unknown>>> {
    const spec = CHILDREN[type];
    const after = cursor === undefined ? null : decodeCursor(cursor, ['uuid'])[0];
    const rows = await this.tx.query<RecordRow>(
      `SELECT ${RECORD_COLUMNS} FROM ${spec.table}
       WHERE clinic_id = $1 AND ${spec.parent} = $2 AND NOT deleted AND ($3::uuid IS NULL OR id > $3::uuid)
       ORDER BY id LIMIT $4`,
      [this.clinicId, parentId, after, limit + 1],
    );
    return page(rows.map(toRecord), limit, (last) => [last.id]);
  }

  async addWeight(patientId: string, weightKg: number, at: Date): Promise<void> {
    await this.tx.query('INSERT INTO patient_weights (clinic_id, patient_id, id, weight_kg, recorded_at) VALUES ($1, $2, $3, $4, $5)', [
      this.clinicId,
      patientId,
      uuidv7(),
      weightKg,
      at,
    ]);
  }

  async weights(patientIds: string[]): Promise<Map<string, WeightEntry[]>> {
    const result = new Map<string, WeightEntry[]>(patientIds.map((id) => [id, []]));
    if (patientIds.length === 0) return result;
    const rows = await this.tx.query<{ patient_id: string; weight_kg: number; recorded_at: Date }>(
      'SELECT patient_id, weight_kg, recorded_at FROM patient_weights WHERE clinic_id = $1 AND patient_id = ANY($2::uuid[]) ORDER BY recorded_at, id',
      [this.clinicId, patientIds],
    );
    for (const r of rows) result.get(r.patient_id)?.push({ weightKg: Number(r.weight_kg), recordedAt: r.recorded_at });
    return result;
  }

  async insertApiKey(key: { id: string; name: string; role: Role; keyHash: Buffer; keyPrefix: string; createdBy: string | null }): Promise<StoredApiKey> {
    const [row] = await this.tx.query<ApiKeyRow>(
      `INSERT INTO api_keys (clinic_id, id, name, role, key_hash, key_prefix, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)
       RETURNING id, name, role, key_prefix, created_at, revoked_at`,
      [this.clinicId, key.id, key.name, key.role, key.keyHash, key.keyPrefix, key.createdBy],
    );
    return toApiKey(row!);
  }

  async revokeApiKey(id: string): Promise<StoredApiKey | null> {
    const [row] = await this.tx.query<ApiKeyRow>(
      `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE clinic_id = $1 AND id = $2
       RETURNING id, name, role, key_prefix, created_at, revoked_at`,
      [this.clinicId, id],
    );
    return row === undefined ? null : toApiKey(row);
  }

  audit(entry: AuditEntry): Promise<void> {
    return this.auditWriter.append(this.tx, this.ctx, entry);
  }

  async listAudit(filter: AuditFilter): Promise<Page<StoredAuditEvent>> {
    const where = ['clinic_id = $1'];
    const params: unknown[] = [this.clinicId];
    const add = (sql: string, ...values: unknown[]) => {
      let text = sql;
      for (const value of values) {
        params.push(value);
        text = text.replace('?', `$${params.length}`);
      }
      where.push(text);
    };
    if (filter.entityType !== undefined) add('entity_type = ?', filter.entityType);
    if (filter.entityId !== undefined) add('entity_id = ?', filter.entityId);
    if (filter.from !== undefined) add('occurred_at >= ?', filter.from);
    if (filter.to !== undefined) add('occurred_at < ?', filter.to);
    if (filter.cursor !== undefined) {
      const [at, id] = decodeCursor(filter.cursor, ['time', 'uuid']);
      add('(occurred_at, id) > (?::timestamptz, ?::uuid)', at, id);
    }
    params.push(filter.limit + 1);
    const rows = await this.tx.query<Record<string, unknown>>(
      `SELECT id, chain_id, seq, occurred_at, principal_id, role, action, entity_type, entity_id, outcome, request_id, source_ip
       FROM audit_events WHERE ${where.join(' AND ')} ORDER BY occurred_at, id LIMIT $${params.length}`,
      params,
    );
    const events = rows.map(
      (r): StoredAuditEvent => ({
        id: r.id as string,
        chainId: r.chain_id as string,
        seq: Number(r.seq),
        occurredAt: r.occurred_at as Date,
        principalId: r.principal_id as string | null,
        role: r.role as string | null,
        action: r.action as string,
        entityType: r.entity_type as string,
        entityId: r.entity_id as string | null,
        outcome: r.outcome as string,
        requestId: r.request_id as string | null,
        sourceIp: r.source_ip as string | null,
      }),
    );
    return page(events, filter.limit, (last) => [last.occurredAt.toISOString(), last.id]);
  }

  insertDiagnosis(d: DiagnosisRecord, evidence: EvidenceLink[], provenance: ProvenanceRecord, audit?: AuditEntry): Promise<void> {
    if (audit === undefined) return diagnosisSql.insertDiagnosis(this.tx, this.clinicId, d, evidence, provenance);
    return this.auditWriter.appendWith(this.tx, this.ctx, audit, diagnosisSql.diagnosisWrites(this.clinicId, d, evidence, provenance));
  }

  getDiagnosis(id: string): Promise<DiagnosisRecord | null> {
    return diagnosisSql.getDiagnosis(this.tx, this.clinicId, id);
  }

  listDiagnoses(patientId: string, limit: number, cursor?: string): Promise<Page<DiagnosisRecord>> {
    return diagnosisSql.listDiagnoses(this.tx, this.clinicId, patientId, limit, cursor);
  }

  diagnosisTrace(id: string): Promise<{ evidence: EvidenceLink[]; besideReport: boolean; provenance: ProvenanceRecord } | null> {
    return diagnosisSql.diagnosisTrace(this.tx, this.clinicId, id);
  }

  async findIdempotent(key: string): Promise<{ requestHash: string; response: StoredResponse } | null> {
    const [row] = await this.tx.query<{ request_hash: string; response: StoredResponse }>(
      'SELECT request_hash, response FROM idempotency_keys WHERE clinic_id = $1 AND key = $2',
      [this.clinicId, key],
    );
    return row === undefined ? null : { requestHash: row.request_hash, response: row.response };
  }

  async saveIdempotent(key: string, requestHash: string, response: StoredResponse): Promise<void> {
    // A body already serialised is stored as that text rather than serialised a second time.
    const { bodyJson, body, ...rest } = response;
    // "body" comes last, so its null can be cut off and the stored text put in its place.
    const text = bodyJson === undefined ? JSON.stringify({ ...rest, body }) : `${JSON.stringify({ ...rest, body: null }).slice(0, -'null}'.length)}${bodyJson}}`;
    await this.tx.query('INSERT INTO idempotency_keys (clinic_id, key, request_hash, status, response) VALUES ($1, $2, $3, $4, $5)', [this.clinicId, key, requestHash, response.status, text]);
  }
}

// Serialises bootstrap across instances that start together.
const BOOTSTRAP_LOCK_KEY = 7_240_611_902_312;

export class SqlClinicalStore implements ClinicalStore {
  private readonly auditWriter: AuditWriter;

  constructor(
    private readonly db: SqlExecutor,
    writerName: string,
    private readonly onRecordRead?: RecordReadObserver,
  ) {
    this.auditWriter = new AuditWriter(writerName);
  }

  get kind(): 'postgres' | 'pglite' {
    return this.db.kind;
  }

  inClinic<T>(ctx: RequestContext, fn: (tx: ClinicalTx) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => fn(new SqlClinicalTx(tx, ctx, this.auditWriter, this.onRecordRead)), { clinicId: ctx.principal.clinicId });
  }

  async findPrincipalByKeyHash(keyHash: Buffer): Promise<Principal | null> {
    const [row] = await this.db.query<{ id: string; clinic_id: string; role: Role }>(
      'SELECT id, clinic_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL',
      [keyHash],
    );
    return row === undefined ? null : { keyId: row.id, clinicId: row.clinic_id, role: row.role };
  }

  async findPrincipalsByKeyHashes(keyHashes: Buffer[]): Promise<Map<string, Principal>> {
    const rows = await this.db.query<{ id: string; clinic_id: string; role: Role; key_hash: Buffer }>(
      'SELECT id, clinic_id, role, key_hash FROM api_keys WHERE key_hash = ANY($1::bytea[]) AND revoked_at IS NULL',
      [keyHashes],
    );
    return new Map(rows.map((r) => [Buffer.from(r.key_hash).toString('hex'), { keyId: r.id, clinicId: r.clinic_id, role: r.role }]));
  }

  async createClinic(name: string, adminKey: { id: string; keyHash: Buffer; keyPrefix: string }, opts: { ifNoClinics?: boolean } = {}): Promise<{ clinicId: string } | null> {
    return this.db.transaction(async (tx) => {
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

  verifyAudit(): Promise<AuditVerification> {
    return verifyAuditChains(this.db);
  }

  ping(): Promise<void> {
    return this.db.ping();
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
