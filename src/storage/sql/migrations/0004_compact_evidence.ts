/**
 * A diagnosis no longer writes one diagnosis_evidence row per conclusion-evidence pair (~70 rows
 * and their index entries). Most links are already in the report it stores (each differential's
 * evidence, the triage reasons, the plan), and the trace derives them from it
 * (clinical/diagnoses/diagnosis-report.ts, reportEvidence); the few the report does not carry are kept in
 * the provenance row, as one compact JSON array (storage/sql/evidence-codec.ts). `json`, not
 * `jsonb`: kept exactly as written, read back whole. Diagnoses written before keep their rows,
 * and the trace reads them as before (a NULL here).
 *
 * The report becomes `json` too: it is only ever written and read whole, and PostgreSQL then
 * checks its text instead of building (and, on every read, printing back) a jsonb tree
 * (bench/profile-diagnoses.ts: PostgreSQL CPU 1.15 -> 0.82-1.01 ms per diagnosis). The ALTER
 * rewrites the table once.
 *
 * The large values of a diagnosis (report, evidence, chain) are compressed with lz4 where the
 * server has it: pglz cost PostgreSQL ~0.7 ms of CPU per diagnosis (bench/profile-diagnoses.ts,
 * 2.94 -> 2.20 ms). PGlite is built without lz4 and keeps pglz.
 */
export default `
ALTER TABLE diagnosis_provenance ADD COLUMN evidence json;
ALTER TABLE diagnoses ALTER COLUMN report TYPE json USING report::json;
DO $$ BEGIN
  ALTER TABLE diagnoses ALTER COLUMN report SET COMPRESSION lz4, ALTER COLUMN input SET COMPRESSION lz4;
  ALTER TABLE diagnosis_provenance ALTER COLUMN evidence SET COMPRESSION lz4, ALTER COLUMN chain SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
`;
