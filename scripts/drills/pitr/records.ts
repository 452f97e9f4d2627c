/**
 * What the drill checks per acknowledged diagnosis, one id at a time: the report row, its
 * evidence links, its provenance and its audit event. A restored diagnosis must match the
 * original on all four; a diagnosis after the target must have none of them (no partial rows).
 */
import pg from 'pg';

export interface DiagnosisRecord {
  /** The diagnoses row exists. */
  present: boolean;
  /** md5 of the stored report's text: the restored one must be the very same bytes. */
  reportMd5: string | null;
  /** Evidence links: the compact array in the provenance row plus any per-link rows (before migration 0004). */
  evidence: number;
  chainDigest: string | null;
  auditEvents: number;
}

const BY_ID = `
SELECT EXISTS (SELECT 1 FROM diagnoses WHERE id = $1) AS present,
       (SELECT md5(report::text) FROM diagnoses WHERE id = $1) AS report_md5,
       ((SELECT count(*) FROM diagnosis_evidence WHERE diagnosis_id = $1)
        + coalesce((SELECT json_array_length(evidence) FROM diagnosis_provenance WHERE diagnosis_id = $1), 0))::int AS evidence,
       (SELECT chain_digest FROM diagnosis_provenance WHERE diagnosis_id = $1) AS chain_digest,
       (SELECT count(*) FROM audit_events WHERE entity_type = 'diagnosis' AND entity_id = $1)::int AS audit_events`;

/**
 * The records of `ids` found at `url` (as the superuser, which row-level security does not
 * filter); an id with no trace at all is absent from the map.
 */
export async function recordsOf(url: string, ids: string[]): Promise<Map<string, DiagnosisRecord>> {
  const client = new pg.Client({ connectionString: url, statement_timeout: 30_000 });
  await client.connect();
  const found = new Map<string, DiagnosisRecord>();
  try {
    for (const id of ids) {
      const { rows } = await client.query<{ present: boolean; report_md5: string | null; evidence: number; chain_digest: string | null; audit_events: number }>({ name: 'by-id', text: BY_ID, values: [id] });
      const r = rows[0]!;
      if (r.present || r.evidence > 0 || r.chain_digest !== null || r.audit_events > 0) {
        found.set(id, { present: r.present, reportMd5: r.report_md5, evidence: r.evidence, chainDigest: r.chain_digest, auditEvents: r.audit_events });
      }
    }
  } finally {
    await client.end();
  }
  return found;
}

/** Set A after the restore: ids with no report row, and ids whose rows differ from the original. */
export function compareRecords(ids: string[], original: Map<string, DiagnosisRecord>, restored: Map<string, DiagnosisRecord>): { missing: string[]; incomplete: string[] } {
  const missing: string[] = [];
  const incomplete: string[] = [];
  for (const id of ids) {
    const before = original.get(id);
    const after = restored.get(id);
    if (after?.present !== true) missing.push(id);
    else if (before === undefined || after.reportMd5 !== before.reportMd5 || after.evidence !== before.evidence || after.chainDigest !== before.chainDigest || after.auditEvents !== before.auditEvents || after.chainDigest === null || after.auditEvents === 0) {
      incomplete.push(id);
    }
  }
  return { missing, incomplete };
}
