/**
 * What a backup reads and a restore writes, taken from the database's catalog rather than a list
 * kept by hand, so a table a migration adds is backed up without anyone remembering to: every
 * table of the schema but schema_migrations (which the restore's own migrations write), ordered
 * so each comes after the tables its foreign keys point to.
 */
import type { SqlExecutor, SqlTx } from '../sql/executor.js';
import { BackupError } from './format.js';

type Queryable = Pick<SqlTx, 'query'> | Pick<SqlExecutor, 'query'>;

export interface TableInfo {
  name: string;
  /** Quoted primary-key columns, for a stable order. */
  orderBy: string;
}

export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

const SKIPPED = new Set(['schema_migrations']);

/** The data tables in restore order (parents first), ties broken by name. */
export async function dataTables(db: Queryable): Promise<TableInfo[]> {
  const tables = await db.query<{ name: string; pk: string | null }>(
    `SELECT c.relname AS name,
            (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
               FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
              WHERE i.indrelid = c.oid AND i.indisprimary) AS pk
       FROM pg_class c
      WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
      ORDER BY c.relname`,
  );
  const edges = await db.query<{ child: string; parent: string }>(
    `SELECT ch.relname AS child, pa.relname AS parent
       FROM pg_constraint k JOIN pg_class ch ON ch.oid = k.conrelid JOIN pg_class pa ON pa.oid = k.confrelid
      WHERE k.contype = 'f' AND ch.relnamespace = current_schema()::regnamespace AND ch.oid <> pa.oid`,
  );
  const wanted = tables.filter((t) => !SKIPPED.has(t.name));
  const parents = new Map(wanted.map((t) => [t.name, new Set<string>()]));
  for (const e of edges) parents.get(e.child)?.add(e.parent);
  const ordered: TableInfo[] = [];
  const placed = new Set<string>();
  while (ordered.length < wanted.length) {
    const next = wanted.filter((t) => !placed.has(t.name) && [...parents.get(t.name)!].every((p) => placed.has(p) || !parents.has(p)));
    if (next.length === 0) throw new BackupError('the tables\' foreign keys form a cycle, so no insert order satisfies them');
    for (const t of next) {
      placed.add(t.name);
      // Without a primary key, every column: still a stable order.
      ordered.push({ name: t.name, orderBy: t.pk ?? 'ROW(t.*)::text' });
    }
  }
  return ordered;
}

/**
 * Refuses a role that row-level security would confine: unscoped, the clinic policies match no
 * row at all, so a backup would be silently empty and a restore's emptiness check meaningless.
 * The tables' owner (the role that ran the migrations), a superuser or a BYPASSRLS role sees all.
 */
export async function assertSeesEveryClinic(db: Queryable, what: string): Promise<void> {
  const hidden = await db.query<{ name: string; who: string }>(
    `SELECT c.relname AS name, current_user::text AS who
       FROM pg_class c, pg_roles r
      WHERE r.rolname = current_user AND c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
        AND c.relrowsecurity AND NOT (r.rolsuper OR r.rolbypassrls)
        AND (c.relforcerowsecurity OR NOT pg_has_role(current_user, c.relowner, 'USAGE'))
      ORDER BY 1 LIMIT 1`,
  );
  if (hidden.length > 0) {
    throw new BackupError(
      `${what} connects as ${hidden[0]!.who}, which row-level security confines to one clinic (table ${hidden[0]!.name}): ` +
        'connect as the role that owns the tables (the one `agenticpet migrate` runs as), a superuser or a BYPASSRLS role',
    );
  }
}

/** The last migration applied, or null when the database has never been migrated. */
export async function schemaVersion(db: Queryable): Promise<number | null> {
  const [exists] = await db.query<{ t: string | null }>(`SELECT to_regclass('schema_migrations')::text AS t`);
  if (exists?.t == null) return null;
  const [row] = await db.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
  return row?.v ?? null;
}

export async function sequences(db: Queryable): Promise<string[]> {
  const rows = await db.query<{ name: string }>(`SELECT relname AS name FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'S' ORDER BY 1`);
  return rows.map((r) => r.name);
}
