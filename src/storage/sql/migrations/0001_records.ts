/**
 * Clinics, API keys, versioned clinical records, history, idempotency keys and the audit trail.
 *
 * Every clinical table is keyed (clinic_id, id) so that references between records can only
 * point inside one clinic (composite foreign keys), and carries a row-level-security policy
 * bound to app.clinic_id. The app role may insert and update but never delete clinical rows:
 * a delete is a tombstone version.
 */
const tenantTables = ['owners', 'patients', 'patient_weights', 'encounters', 'observations', 'media', 'record_versions', 'idempotency_keys', 'audit_events', 'api_keys'];

const policies = tenantTables
  .map(
    (t) => `
ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY;
CREATE POLICY ${t}_tenant ON ${t} USING (clinic_id = app_current_clinic()) WITH CHECK (clinic_id = app_current_clinic());`,
  )
  .join('\n');

export default `
DO $$ BEGIN
  CREATE ROLE agenticpet_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

CREATE FUNCTION app_current_clinic() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting('app.clinic_id', true), '')::uuid $$;

CREATE TABLE clinics (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE clinics ENABLE ROW LEVEL SECURITY;
CREATE POLICY clinics_tenant ON clinics USING (id = app_current_clinic());

CREATE TABLE api_keys (
  clinic_id uuid NOT NULL REFERENCES clinics (id),
  id uuid NOT NULL,
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'vet', 'staff', 'readonly')),
  key_hash bytea NOT NULL UNIQUE,
  key_prefix text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by uuid,
  revoked_at timestamptz,
  PRIMARY KEY (clinic_id, id)
);

CREATE TABLE owners (
  clinic_id uuid NOT NULL REFERENCES clinics (id),
  id uuid NOT NULL,
  version integer NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  name text NOT NULL,
  content jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (clinic_id, id)
);

CREATE TABLE patients (
  clinic_id uuid NOT NULL REFERENCES clinics (id),
  id uuid NOT NULL,
  version integer NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  owner_id uuid NOT NULL,
  name text NOT NULL,
  species text NOT NULL,
  content jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (clinic_id, id),
  FOREIGN KEY (clinic_id, owner_id) REFERENCES owners (clinic_id, id)
);
CREATE INDEX patients_by_name ON patients (clinic_id, lower(name) text_pattern_ops, id) WHERE NOT deleted;
CREATE INDEX patients_by_owner ON patients (clinic_id, owner_id, id) WHERE NOT deleted;
CREATE INDEX patients_by_species ON patients (clinic_id, species, id) WHERE NOT deleted;

CREATE TABLE patient_weights (
  clinic_id uuid NOT NULL,
  patient_id uuid NOT NULL,
  id uuid NOT NULL,
  weight_kg double precision NOT NULL CHECK (weight_kg > 0),
  recorded_at timestamptz NOT NULL,
  PRIMARY KEY (clinic_id, patient_id, id),
  FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id)
);

CREATE TABLE encounters (
  clinic_id uuid NOT NULL,
  id uuid NOT NULL,
  version integer NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  patient_id uuid NOT NULL,
  status text NOT NULL,
  content jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (clinic_id, id),
  FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id)
);
CREATE INDEX encounters_by_patient ON encounters (clinic_id, patient_id, id);

CREATE TABLE observations (
  clinic_id uuid NOT NULL,
  id uuid NOT NULL,
  version integer NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  encounter_id uuid NOT NULL,
  patient_id uuid NOT NULL,
  category text NOT NULL,
  code text NOT NULL,
  content jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (clinic_id, id),
  FOREIGN KEY (clinic_id, encounter_id) REFERENCES encounters (clinic_id, id),
  FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id)
);
CREATE INDEX observations_by_encounter ON observations (clinic_id, encounter_id, id);

CREATE TABLE media (
  clinic_id uuid NOT NULL,
  id uuid NOT NULL,
  version integer NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  patient_id uuid,
  encounter_id uuid,
  content_type text NOT NULL,
  size_bytes bigint NOT NULL,
  sha256 text NOT NULL,
  content jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (clinic_id, id),
  FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id),
  FOREIGN KEY (clinic_id, encounter_id) REFERENCES encounters (clinic_id, id)
);

-- Every version of every record, the current one included; append-only.
CREATE TABLE record_versions (
  clinic_id uuid NOT NULL,
  resource_type text NOT NULL,
  id uuid NOT NULL,
  version integer NOT NULL,
  deleted boolean NOT NULL,
  content jsonb NOT NULL,
  recorded_at timestamptz NOT NULL,
  recorded_by uuid,
  request_id text,
  PRIMARY KEY (clinic_id, resource_type, id, version)
);

CREATE TABLE idempotency_keys (
  clinic_id uuid NOT NULL,
  key text NOT NULL,
  request_hash text NOT NULL,
  status integer NOT NULL,
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (clinic_id, key)
);

-- One hash chain per writer connection, so writers never wait on a shared lock.
CREATE TABLE audit_chains (
  chain_id uuid PRIMARY KEY,
  writer text NOT NULL,
  started_at timestamptz NOT NULL,
  head_seq bigint NOT NULL,
  head_hash text NOT NULL
);

CREATE TABLE audit_events (
  chain_id uuid NOT NULL REFERENCES audit_chains (chain_id),
  seq bigint NOT NULL,
  id uuid NOT NULL UNIQUE,
  occurred_at timestamptz NOT NULL,
  clinic_id uuid NOT NULL,
  principal_id uuid,
  role text,
  action text NOT NULL,
  entity_type text NOT NULL,
  entity_id uuid,
  outcome text NOT NULL,
  request_id text,
  source_ip text,
  detail jsonb,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  PRIMARY KEY (chain_id, seq)
);
CREATE INDEX audit_by_entity ON audit_events (clinic_id, entity_type, entity_id, occurred_at);
CREATE INDEX audit_by_time ON audit_events (clinic_id, occurred_at);

${policies}

GRANT USAGE ON SCHEMA public TO agenticpet_app;
GRANT EXECUTE ON FUNCTION app_current_clinic() TO agenticpet_app;
GRANT SELECT ON clinics TO agenticpet_app;
GRANT SELECT, INSERT, UPDATE ON api_keys, owners, patients, encounters, observations, media TO agenticpet_app;
GRANT SELECT, INSERT ON patient_weights, record_versions, idempotency_keys, audit_events TO agenticpet_app;
GRANT SELECT, INSERT, UPDATE ON audit_chains TO agenticpet_app;
`;
