/** SQL for reading a clinic's audit trail (writing it is audit-chain.ts). */
import type { AuditFilter, Page, StoredAuditEvent } from '../../clinical/ports.js';
import { decodeCursor, page } from './cursor.js';
import type { SqlTx } from './executor.js';

export async function listAuditEvents(tx: SqlTx, clinicId: string, filter: AuditFilter): Promise<Page<StoredAuditEvent>> {
  const where = ['clinic_id = $1'];
  const params: unknown[] = [clinicId];
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
  const rows = await tx.query<Record<string, unknown>>(
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
