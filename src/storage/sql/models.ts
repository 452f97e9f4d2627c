/**
 * SQL for the model registry (migration 5): one table, global (no clinic), read and changed inside
 * a clinic transaction (the change's audit event commits with it) or read without one (the serving
 * set every instance caches).
 */
import { ConflictError } from '../../clinical/errors.js';
import type { ImageInputSpec, ModelCatalog, ModelLabel, ModelOutputSpec, ModelRegistryTx, ModelStatus, NewModel, RegisteredModel } from '../../clinical/ports.js';
import type { SqlExecutor, SqlTx } from './executor.js';

interface ModelRow {
  id: string;
  name: string;
  version: string;
  sha256: string;
  input_spec: ImageInputSpec;
  output_spec: ModelOutputSpec;
  labels: ModelLabel[];
  status: ModelStatus;
  canary_share: number;
  activated_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, name, version, sha256, input_spec, output_spec, labels, status, canary_share, activated_at, created_at, updated_at';

const toModel = (r: ModelRow): RegisteredModel => ({
  id: r.id,
  name: r.name,
  version: r.version,
  sha256: r.sha256,
  input: r.input_spec,
  output: r.output_spec,
  labels: r.labels,
  status: r.status,
  canaryShare: Number(r.canary_share),
  activatedAt: r.activated_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** A second active (or canary) version of one name: a concurrent change won; the caller retries. */
function translate(err: unknown): never {
  const e = err as { code?: string; constraint?: string; message?: string };
  if (e.code === '23505' && /models_one_(active|canary)/.test(`${e.constraint ?? ''} ${e.message ?? ''}`)) {
    throw new ConflictError('model-status-conflict', 'Another change of this model name committed first; retry');
  }
  throw err;
}

export class SqlModelRegistryTx implements ModelRegistryTx {
  constructor(private readonly tx: SqlTx) {}

  async insertModel(m: NewModel, at: Date): Promise<RegisteredModel | null> {
    const [row] = await this.tx.query<ModelRow>(
      `INSERT INTO models (id, name, version, sha256, input_spec, output_spec, labels, status, canary_share, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'registered', 0, $8, $8)
       ON CONFLICT (name, version) DO NOTHING RETURNING ${COLUMNS}`,
      [m.id, m.name, m.version, m.sha256, JSON.stringify(m.input), JSON.stringify(m.output), JSON.stringify(m.labels), at],
    );
    return row === undefined ? null : toModel(row);
  }

  async getModel(name: string, version: string, opts: { forUpdate?: boolean } = {}): Promise<RegisteredModel | null> {
    const [row] = await this.tx.query<ModelRow>(`SELECT ${COLUMNS} FROM models WHERE name = $1 AND version = $2${opts.forUpdate ? ' FOR UPDATE' : ''}`, [name, version]);
    return row === undefined ? null : toModel(row);
  }

  async listModels(name?: string, opts: { forUpdate?: boolean } = {}): Promise<RegisteredModel[]> {
    const rows = await this.tx.query<ModelRow>(
      `SELECT ${COLUMNS} FROM models WHERE ($1::text IS NULL OR name = $1) ORDER BY name, created_at, id${opts.forUpdate ? ' FOR UPDATE' : ''}`,
      [name ?? null],
    );
    return rows.map(toModel);
  }

  async setStatus(id: string, status: ModelStatus, canaryShare: number, at: Date, opts: { activated?: boolean } = {}): Promise<RegisteredModel> {
    const rows = await this.tx
      .query<ModelRow>(
        `UPDATE models SET status = $2, canary_share = $3, updated_at = $4, activated_at = CASE WHEN $5 THEN $4 ELSE activated_at END
         WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, status, canaryShare, at, opts.activated === true],
      )
      .catch(translate);
    if (rows[0] === undefined) throw new Error(`model ${id} vanished inside its own transaction`);
    return toModel(rows[0]);
  }
}

/** The serving set (active and canary versions), read as the connecting role: no clinic involved. */
export class SqlModelCatalog implements ModelCatalog {
  constructor(private readonly db: Pick<SqlExecutor, 'query'>) {}

  async servingModels(): Promise<RegisteredModel[]> {
    const rows = await this.db.query<ModelRow>(`SELECT ${COLUMNS} FROM models WHERE status IN ('active', 'canary') ORDER BY name, status, id`);
    return rows.map(toModel);
  }
}
