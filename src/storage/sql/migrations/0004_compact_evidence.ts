/**
 * The evidence of a diagnosis is stored in its provenance row, as one compact JSON array (one
 * entry per conclusion-evidence pair, positional: see storage/sql/evidence-codec.ts), instead of
 * one diagnosis_evidence row each: a diagnosis wrote ~70 rows and their index entries. `json`,
 * not `jsonb`: the text is kept exactly as written and only read back whole by the trace.
 * Diagnoses written before keep their rows, and the trace reads them as before.
 *
 * The large values of a diagnosis (report, evidence, chain) are compressed with lz4 where the
 * server has it: pglz cost PostgreSQL ~0.7 ms of CPU per diagnosis (bench/profile-diagnoses.ts,
 * 2.94 -> 2.20 ms). PGlite is built without lz4 and keeps pglz.
 */
export default `
ALTER TABLE diagnosis_provenance ADD COLUMN evidence json;
DO $$ BEGIN
  ALTER TABLE diagnoses ALTER COLUMN report SET COMPRESSION lz4, ALTER COLUMN input SET COMPRESSION lz4;
  ALTER TABLE diagnosis_provenance ALTER COLUMN evidence SET COMPRESSION lz4, ALTER COLUMN chain SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
`;
