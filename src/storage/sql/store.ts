/**
 * The clinical store on SQL: one implementation for PostgreSQL and PGlite. Every clinical
 * transaction runs under row-level security for the caller's clinic, and every query also names
 * the clinic, so isolation holds even if one of the two were forgotten.
 */
import { uuidv7 } from '../../clinical/ids.js';
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
import type { Role } from '../../contract/schemas.js';
import * as accessSql from './access.js';
import { AuditWriter, verifyAuditChains, type ChainHead } from './audit-chain.js';
import { listAuditEvents } from './audit-events.js';
import { decodeCursor, page } from './cursor.js';
import * as diagnosisSql from './diagnoses.js';
import * as idempotencySql from './idempotency.js';
import { SqlModelRegistryTx } from './models.js';
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

function likePrefix(prefix: string): string {
  return `${prefix.toLowerCase().replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
}

/**
 * Reads coalesced within one physical transaction. With group commit, the requests of a batch
 * run one after another in one database transaction; when several read the same record, the
 * first SELECT answers them all (DataLoader-style, keyed by clinic, type and id). Any write of
 * that record in the transaction drops the entry, and a unit's rollback drops them all, so a
 * read never sees a state the database would not show it at that point. Each request still
 * writes its own audit event. Locking reads (FOR UPDATE) always go to the database.
 */
interface CoalescedReads {
  records: Map<string, StoredRecord<unknown> | null>;
  /**
   * Writes of records in the transaction so far. A read whose answer arrives after a write
   * finished (a read and a write sent together, answered in either order of continuations) is
   * returned but not kept: it may show the row from before the write.
   */
  writes: number;
}
const coalescedReads = new WeakMap<object, CoalescedReads>();

/** Told of every record read: served from the transaction's earlier read (hit) or not. */
export type RecordReadObserver = (hit: boolean) => void;

class SqlClinicalTx implements ClinicalTx {
  private rollbackHooked = false;
  private registry: SqlModelRegistryTx | undefined;

  constructor(
    private readonly tx: SqlTx,
    private readonly ctx: RequestContext,
    private readonly auditWriter: AuditWriter,
    private readonly onRead?: RecordReadObserver,
  ) {}

  private readKey(type: ResourceType, id: string): string {
    return `${this.clinicId}|${type}|${id}`;
  }

  private reads(): CoalescedReads {
    let reads = coalescedReads.get(this.tx.txn);
    if (reads === undefined) coalescedReads.set(this.tx.txn, (reads = { records: new Map(), writes: 0 }));
    if (!this.rollbackHooked) {
      this.rollbackHooked = true;
      this.tx.onRollback(() => coalescedReads.delete(this.tx.txn));
    }
    return reads;
  }

  /** A write of this record: its coalesced read is dropped, and reads in flight are not kept. */
  private forget(type: ResourceType, id: string): void {
    const reads = this.reads();
    reads.records.delete(this.readKey(type, id));
    reads.writes++;
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
    this.forget(type, id);
    await this.recordVersion(type, id, 1, false, content, at);
    return toRecord(row!);
  }

  async updateRecord(type: ResourceType, id: string, expectedVersion: number, content: Record<string, unknown>, deleted: boolean, at: Date): Promise<StoredRecord<unknown> | null> {
    const spec = TABLES[type];
    const cols = spec.columns(content);
    const sets = ['version = version + 1', 'deleted = $4', 'content = $5', 'updated_at = $6', ...Object.keys(cols).map((c, i) => `${c} = $${i + 7}`)];
    // The version predicate makes concurrent writers with the same If-Match race for one winner:
    // the loser re-reads the row after the winner commits and matches nothing. Forgotten before
    // the UPDATE is sent: a read already in flight then is not kept, and one issued later is
    // answered after the UPDATE.
    this.forget(type, id);
    const [row] = await this.tx.query<RecordRow>(
      `UPDATE ${spec.table} SET ${sets.join(', ')} WHERE clinic_id = $1 AND id = $2 AND version = $3 RETURNING ${RECORD_COLUMNS}`,
      [this.clinicId, id, expectedVersion, deleted, JSON.stringify(content), at, ...Object.values(cols)],
    );
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
      const earlier = reads.records.get(key);
      this.onRead?.(earlier !== undefined);
      // A copy: the requests sharing the read must not see each other's changes to it.
      if (earlier !== undefined) return structuredClone(earlier);
    }
    const writesBefore = reads.writes;
    const [row] = await this.tx.query<RecordRow>(
      `SELECT ${RECORD_COLUMNS} FROM ${TABLES[type].table} WHERE clinic_id = $1 AND id = $2${opts.forUpdate ? ' FOR UPDATE' : ''}`,
      [this.clinicId, id],
    );
    const rec = row === undefined ? null : toRecord(row);
    // A locking read precedes a write, which drops the entry again.
    if (!opts.forUpdate && reads.writes === writesBefore) reads.records.set(key, rec === null ? null : structuredClone(rec));
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

  insertApiKey(key: { id: string; name: string; role: Role; keyHash: Buffer; keyPrefix: string; createdBy: string | null }): Promise<StoredApiKey> {
    return accessSql.insertApiKey(this.tx, this.clinicId, key);
  }

  revokeApiKey(id: string): Promise<StoredApiKey | null> {
    return accessSql.revokeApiKey(this.tx, this.clinicId, id);
  }

  audit(entry: AuditEntry): Promise<void> {
    return this.auditWriter.append(this.tx, this.ctx, entry);
  }

  listAudit(filter: AuditFilter): Promise<Page<StoredAuditEvent>> {
    return listAuditEvents(this.tx, this.clinicId, filter);
  }

  insertDiagnosis(d: DiagnosisRecord, evidence: EvidenceLink[], provenance: ProvenanceRecord, audit?: AuditEntry): Promise<void> {
    if (audit === undefined) return diagnosisSql.insertDiagnosis(this.tx, this.clinicId, d, evidence, provenance);
    return this.tx.write(diagnosisSql.diagnosisWrite(this.clinicId, d, evidence, provenance, this.auditWriter.event(this.tx, this.ctx, audit)));
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

  get models(): SqlModelRegistryTx {
    return (this.registry ??= new SqlModelRegistryTx(this.tx));
  }

  findIdempotent(key: string): Promise<{ requestHash: string; response: StoredResponse } | null> {
    return idempotencySql.findIdempotent(this.tx, this.clinicId, key);
  }

  saveIdempotent(key: string, requestHash: string, response: StoredResponse): Promise<void> {
    return idempotencySql.saveIdempotent(this.tx, this.clinicId, key, requestHash, response);
  }
}

export class SqlClinicalStore implements ClinicalStore {
  private readonly auditWriter: AuditWriter;

  constructor(
    private readonly db: SqlExecutor,
    writerName: string,
    private readonly onRecordRead?: RecordReadObserver,
    /** Events per audit chain (AuditWriter; smaller in tests). */
    auditChainLength?: number,
  ) {
    this.auditWriter = new AuditWriter(writerName, auditChainLength);
  }

  get kind(): 'postgres' | 'pglite' {
    return this.db.kind;
  }

  inClinic<T>(ctx: RequestContext, fn: (tx: ClinicalTx) => Promise<T>, opts: { writesOnly?: boolean } = {}): Promise<T> {
    return this.db.transaction((tx) => fn(new SqlClinicalTx(tx, ctx, this.auditWriter, this.onRecordRead)), { clinicId: ctx.principal.clinicId, writesOnly: opts.writesOnly === true });
  }

  findPrincipalByKeyHash(keyHash: Buffer): Promise<Principal | null> {
    return accessSql.findPrincipalByKeyHash(this.db, keyHash);
  }

  findPrincipalsByKeyHashes(keyHashes: Buffer[]): Promise<Map<string, Principal>> {
    return accessSql.findPrincipalsByKeyHashes(this.db, keyHashes);
  }

  clinicExists(clinicId: string): Promise<boolean> {
    return accessSql.clinicExists(this.db, clinicId);
  }

  createClinic(name: string, adminKey: { id: string; keyHash: Buffer; keyPrefix: string }, opts: { ifNoClinics?: boolean } = {}): Promise<{ clinicId: string } | null> {
    return accessSql.createClinic(this.db, name, adminKey, opts);
  }

  verifyAudit(): Promise<AuditVerification> {
    return verifyAuditChains(this.db);
  }

  /** The heads of the audit chains this store has committed (what the checkpoints sign). */
  auditHeads(): ChainHead[] {
    return this.auditWriter.heads();
  }

  /** A checkpoint landed with these heads (lets finished chains leave the next ones). */
  auditAnchored(heads: readonly ChainHead[]): void {
    this.auditWriter.anchored(heads);
  }

  ping(): Promise<void> {
    return this.db.ping();
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
