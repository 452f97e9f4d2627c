/**
 * Diagnostic reports, the evidence behind each conclusion, and their provenance. Written in
 * one transaction with the audit event; append-only for the app role (a report is never edited).
 */
const tables = ['diagnoses', 'diagnosis_evidence', 'diagnosis_provenance'];

export default `
CREATE TABLE diagnoses (
  clinic_id uuid NOT NULL REFERENCES clinics (id),
  id uuid NOT NULL,
  patient_id uuid,
  encounter_id uuid,
  consultation_id text,
  species text NOT NULL,
  triage_level text NOT NULL,
  top_condition text,
  kb_version text NOT NULL,
  input jsonb NOT NULL,
  report jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (clinic_id, id),
  FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id),
  FOREIGN KEY (clinic_id, encounter_id) REFERENCES encounters (clinic_id, id)
);
CREATE INDEX diagnoses_by_patient ON diagnoses (clinic_id, patient_id, id) WHERE patient_id IS NOT NULL;

-- One row per (conclusion, evidence item): which input moved which conclusion, and by how much.
CREATE TABLE diagnosis_evidence (
  clinic_id uuid NOT NULL,
  diagnosis_id uuid NOT NULL,
  seq integer NOT NULL,
  conclusion_type text NOT NULL,
  conclusion_code text NOT NULL,
  evidence_kind text NOT NULL,
  evidence_ref text NOT NULL,
  finding text,
  detail jsonb NOT NULL,
  weight double precision,
  PRIMARY KEY (clinic_id, diagnosis_id, seq),
  FOREIGN KEY (clinic_id, diagnosis_id) REFERENCES diagnoses (clinic_id, id)
);

CREATE TABLE diagnosis_provenance (
  clinic_id uuid NOT NULL,
  diagnosis_id uuid NOT NULL,
  agents jsonb NOT NULL,
  kb_version text NOT NULL,
  chain_digest text NOT NULL,
  chain jsonb NOT NULL,
  request_id text NOT NULL,
  session_id text,
  recorded_at timestamptz NOT NULL,
  PRIMARY KEY (clinic_id, diagnosis_id),
  FOREIGN KEY (clinic_id, diagnosis_id) REFERENCES diagnoses (clinic_id, id)
);

${tables.map((t) => `ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY;\nCREATE POLICY ${t}_tenant ON ${t} USING (clinic_id = app_current_clinic()) WITH CHECK (clinic_id = app_current_clinic());`).join('\n')}

GRANT SELECT, INSERT ON ${tables.join(', ')} TO agenticpet_app;
`;
