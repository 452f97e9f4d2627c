/**
 * The model registry (issue 13 §3) and the model versions a diagnosis used.
 *
 * Models are global, not per clinic: one registry serves every clinic, so the table has no
 * clinic_id and no row-level-security policy. The app role may read it and insert and update
 * rows (a change runs in the changing admin's clinic transaction, beside its audit event); it may
 * never delete one, so every version a stored diagnosis names stays in the registry. Who may
 * change it is the service's rule (permission models:manage).
 *
 * At most one active and one canary version per name, enforced by partial unique indexes, so
 * two admins activating at once cannot leave two active versions.
 *
 * diagnosis_provenance.models: the exact versions (name, version, sha256) a diagnosis ran, as
 * JSON; NULL for every diagnosis that ran none (all those written before this migration).
 */
export default `
CREATE TABLE models (
  id uuid PRIMARY KEY,
  name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  version text NOT NULL CHECK (version ~ '^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$'),
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  input_spec jsonb NOT NULL,
  output_spec jsonb NOT NULL,
  labels jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('registered', 'active', 'canary', 'retired')),
  canary_share double precision NOT NULL DEFAULT 0 CHECK (canary_share >= 0 AND canary_share <= 1),
  activated_at timestamptz,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  UNIQUE (name, version)
);
CREATE UNIQUE INDEX models_one_active ON models (name) WHERE status = 'active';
CREATE UNIQUE INDEX models_one_canary ON models (name) WHERE status = 'canary';
GRANT SELECT, INSERT, UPDATE ON models TO agenticpet_app;

ALTER TABLE diagnosis_provenance ADD COLUMN models json;
`;
