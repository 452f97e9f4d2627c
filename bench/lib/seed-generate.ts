/**
 * What happens in the seeded clinics, in time order, written as the service would have written
 * it: clinics with their keys; owners and patients registered as they first come in; a
 * diagnosis requested by patientId (the patient read, then the report with its evidence,
 * provenance and audit event in one go); the weight updated when it changed since the last
 * visit; and the reads that follow (the report, its trace, the patient's list of diagnoses).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { hashKey } from '../../src/clinical/access/access.js';
import type { AuditInput, AuditTrail } from './seed-audit.js';
import { esc, escJson, NULL, type TableSink } from './seed-copy.js';
import { EventHeap, exponential, gaussian, ownerContent, petName, pick, sessionId, uuidv7At, clinicName, type Rng } from './seed-data.js';
import { fillTemplate, type TemplateSet } from './seed-templates.js';

const DAY = 86_400_000;
const YEAR_MS = 365.25 * DAY;

export type Sinks = Record<
  'clinics' | 'api_keys' | 'owners' | 'patients' | 'patient_weights' | 'record_versions' | 'diagnoses' | 'diagnosis_evidence' | 'diagnosis_provenance' | 'audit_chains' | 'audit_events',
  TableSink
>;

interface PatientState {
  id: string;
  ownerId: string;
  family: number;
  name: string;
  species: 'dog' | 'cat';
  breed: string | null;
  sex: 'male' | 'female' | 'unknown';
  neutered: boolean;
  birthDate: string | null;
  birthDateEstimated: boolean;
  weightKg: number | null;
  version: number;
  createdMs: number;
  updatedMs: number;
}

interface ClinicState {
  index: number;
  id: string;
  adminKeyId: string;
  vetKeyId: string;
  ip: string;
  owners: string[];
  patients: PatientState[];
}

export interface ClinicKeys {
  clinic: number;
  clinicId: string;
  adminKey: string;
  vetKey: string;
}

type Pending = { t: number; audit: AuditInput };

const issue = () => {
  const key = `apk_${randomBytes(32).toString('base64url')}`;
  return { key, hashHex: hashKey(key).toString('hex'), prefix: key.slice(0, 12) };
};

export class World {
  readonly clinics: ClinicState[] = [];
  readonly keys: ClinicKeys[] = [];
  private readonly cumulative: number[] = [];
  private readonly pending = new EventHeap<Pending>();
  private ownerSerial = 0;
  diagnoses = 0;
  /** Evidence links of the diagnoses written (in their reports and provenance rows, as the service stores them). */
  evidenceLinks = 0;

  constructor(
    private readonly sinks: Sinks,
    private readonly audit: AuditTrail,
    private readonly templates: TemplateSet,
    private readonly rng: Rng,
    private readonly opts: { newPatientProbability: number; newOwnerProbability: number },
  ) {}

  /** Clinics opened one after another over `windowMs` before `startMs`, each with an admin and a vet key. */
  openClinics(count: number, startMs: number, windowMs: number): void {
    let total = 0;
    for (let i = 0; i < count; i++) {
      const t = startMs - windowMs + (i * windowMs) / count;
      const id = uuidv7At(t);
      const admin = issue();
      const vet = issue();
      const adminKeyId = uuidv7At(t);
      const vetKeyId = uuidv7At(t + 300_000);
      // A client address per clinic, from the shared address space (RFC 6598).
      const ip = `100.${64 + (((i + 1) >> 16) & 63)}.${((i + 1) >> 8) & 255}.${(i + 1) & 255}`;
      const created = new Date(t).toISOString();
      this.sinks.clinics.add(`${id}\t${esc(clinicName(this.rng, i))}\t${created}\n`);
      // createClinic: the first admin key, written without an audit event (no principal yet).
      this.sinks.api_keys.add(`${id}\t${adminKeyId}\tinitial admin key\tadmin\t\\\\x${admin.hashHex}\t${esc(admin.prefix)}\t${created}\t${NULL}\t${NULL}\n`);
      // POST /v1/api-keys by the admin: a vet key, audited.
      this.sinks.api_keys.add(`${id}\t${vetKeyId}\tconsulting room\tvet\t\\\\x${vet.hashHex}\t${esc(vet.prefix)}\t${new Date(t + 300_000).toISOString()}\t${adminKeyId}\t${NULL}\n`);
      const clinic: ClinicState = { index: i, id, adminKeyId, vetKeyId, ip, owners: [], patients: [] };
      this.clinics.push(clinic);
      this.emit({ t: t + 300_000, clinicId: id, principalId: adminKeyId, role: 'admin', action: 'create', entityType: 'api_key', entityId: vetKeyId, outcome: 'success', requestId: randomUUID(), sourceIp: ip, detail: null });
      this.keys.push({ clinic: i + 1, clinicId: id, adminKey: admin.key, vetKey: vet.key });
      // Clinics differ in size (log-normal weights).
      total += Math.exp(0.5 * gaussian(this.rng));
      this.cumulative.push(total);
    }
    for (let i = 0; i < this.cumulative.length; i++) this.cumulative[i]! /= total;
  }

  private pickClinic(): ClinicState {
    const u = this.rng();
    let lo = 0;
    let hi = this.cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cumulative[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return this.clinics[lo]!;
  }

  /** Emits an audit event after every scheduled one that comes before it. */
  private emit(a: AuditInput): void {
    for (let p = this.pending.popUntil(a.t); p !== undefined; p = this.pending.popUntil(a.t)) this.audit.emit(p.audit);
    this.audit.emit(a);
  }

  private schedule(a: AuditInput): void {
    a.t = Math.floor(a.t);
    this.pending.push({ t: a.t, audit: a });
  }

  /** At the end: emits the scheduled events up to `untilMs`; later ones have not happened yet. */
  drain(untilMs: number): void {
    for (let p = this.pending.popUntil(untilMs); p !== undefined; p = this.pending.popUntil(untilMs)) this.audit.emit(p.audit);
  }

  private vetAudit(c: ClinicState, t: number, action: string, entityType: string, entityId: string | null, requestId: string, detail: AuditInput['detail'] = null): AuditInput {
    return { t, clinicId: c.id, principalId: c.vetKeyId, role: 'vet', action, entityType, entityId, outcome: 'success', requestId, sourceIp: c.ip, detail };
  }

  private recordVersion(c: ClinicState, type: 'owner' | 'patient', id: string, version: number, content: unknown, t: number, requestId: string): void {
    this.sinks.record_versions.add(`${c.id}\t${type}\t${id}\t${version}\tf\t${escJson(content)}\t${new Date(t).toISOString()}\t${c.vetKeyId}\t${requestId}\n`);
  }

  private createOwner(c: ClinicState, t: number): string {
    const id = uuidv7At(t);
    const requestId = randomUUID();
    const content = ownerContent(this.rng, this.ownerSerial++);
    const at = new Date(t).toISOString();
    this.sinks.owners.add(`${c.id}\t${id}\t1\tf\t${esc(content.name)}\t${escJson(content)}\t${at}\t${at}\n`);
    this.recordVersion(c, 'owner', id, 1, content, t, requestId);
    this.emit(this.vetAudit(c, t, 'create', 'owner', id, requestId));
    c.owners.push(id);
    return id;
  }

  /** A new patient whose signalment is that of one variant of the family (returned with it). */
  private createPatient(c: ClinicState, family: number, t: number, ownerT: number): { patient: PatientState; tplIndex: number } {
    const tplIndex = pick(this.rng, this.templates.families[family]!);
    const tpl = this.templates.templates[tplIndex]!;
    const ownerId = c.owners.length === 0 || this.rng() < this.opts.newOwnerProbability ? this.createOwner(c, ownerT) : pick(this.rng, c.owners);
    const birthDate = tpl.ageYears === null ? null : new Date(t - tpl.ageYears * YEAR_MS).toISOString().slice(0, 10);
    const p: PatientState = {
      id: uuidv7At(t),
      ownerId,
      family,
      name: petName(this.rng, tpl.species),
      species: tpl.species,
      breed: tpl.breed,
      sex: tpl.sex,
      neutered: tpl.neutered ?? false,
      birthDate,
      birthDateEstimated: birthDate !== null && this.rng() < 0.6,
      weightKg: tpl.weightKg,
      version: 1,
      createdMs: t,
      updatedMs: t,
    };
    const requestId = randomUUID();
    this.recordVersion(c, 'patient', p.id, 1, patientContent(p), t, requestId);
    if (p.weightKg !== null) this.sinks.patient_weights.add(`${c.id}\t${p.id}\t${uuidv7At(t)}\t${p.weightKg}\t${new Date(t).toISOString()}\n`);
    this.emit(this.vetAudit(c, t, 'create', 'patient', p.id, requestId));
    c.patients.push(p);
    return { patient: p, tplIndex };
  }

  /** PATCH /v1/patients/:id {weightKg}: the next version, its history row and a weight entry. */
  private updateWeight(c: ClinicState, p: PatientState, weightKg: number, t: number): void {
    const requestId = randomUUID();
    p.version++;
    p.weightKg = weightKg;
    p.updatedMs = t;
    this.recordVersion(c, 'patient', p.id, p.version, patientContent(p), t, requestId);
    this.sinks.patient_weights.add(`${c.id}\t${p.id}\t${uuidv7At(t)}\t${weightKg}\t${new Date(t).toISOString()}\n`);
    this.emit(this.vetAudit(c, t, 'update', 'patient', p.id, requestId));
  }

  /** One diagnosis in the time slot [slotMs, slotMs + gapMs). */
  diagnose(slotMs: number, gapMs: number): void {
    const c = this.pickClinic();
    const rng = this.rng;
    let patient: PatientState;
    let tplIndex: number;
    if (c.patients.length === 0 || rng() < this.opts.newPatientProbability) {
      // A first visit: the diagnosis is of the very variant the patient was registered with.
      ({ patient, tplIndex } = this.createPatient(c, Math.floor(rng() * this.templates.vignettes), Math.floor(slotMs + 0.1 * gapMs), Math.floor(slotMs + 0.05 * gapMs)));
    } else {
      patient = pick(rng, c.patients);
      tplIndex = this.closestVariant(patient, slotMs);
      const w = this.templates.templates[tplIndex]!.weightKg;
      if (w !== null && w !== patient.weightKg) this.updateWeight(c, patient, w, Math.floor(slotMs + 0.2 * gapMs));
    }
    const tpl = this.templates.templates[tplIndex]!;
    const createdMs = Math.floor(slotMs + gapMs * (0.35 + 0.6 * rng()));
    const id = uuidv7At(createdMs);
    const requestId = randomUUID();
    const session = sessionId();
    // assemble(): the patient read, audited in its own transaction before the agents run.
    this.emit(this.vetAudit(c, createdMs - tpl.agentsMs - 2, 'read', 'patient', patient.id, requestId, { purpose: 'diagnosis' }));
    const f = fillTemplate(tpl, { clinicId: c.id, id, patientId: patient.id, sessionId: session, requestId, createdMs });
    this.sinks.diagnoses.add(f.diagnosis);
    this.sinks.diagnosis_provenance.add(f.provenance);
    this.emit(this.vetAudit(c, createdMs + 1, 'create', 'diagnosis', id, requestId, { patientId: patient.id }));
    this.diagnoses++;
    this.evidenceLinks += tpl.evidenceCount;
    // What usually follows: the report is opened, sometimes its trace, sometimes the patient's list.
    if (rng() < 0.6) this.schedule(this.vetAudit(c, createdMs + 1000 + exponential(rng, 180_000), 'read', 'diagnosis', id, randomUUID()));
    if (rng() < 0.15) this.schedule(this.vetAudit(c, createdMs + 5000 + exponential(rng, 1_800_000), 'read', 'diagnosis', id, randomUUID(), { view: 'trace' }));
    if (rng() < 0.1) this.schedule(this.vetAudit(c, createdMs + 5000 + exponential(rng, 86_400_000), 'search', 'diagnosis', null, randomUUID(), { patientId: patient.id }));
  }

  /** A variant of the patient's vignette whose age is nearest the patient's age at `t` (one of the two nearest). */
  private closestVariant(p: PatientState, t: number): number {
    const family = this.templates.families[p.family]!;
    if (p.birthDate === null) return pick(this.rng, family);
    const age = (t - Date.parse(`${p.birthDate}T00:00:00Z`)) / YEAR_MS;
    const ranked = [...family].sort((a, b) => Math.abs((this.templates.templates[a]!.ageYears ?? age) - age) - Math.abs((this.templates.templates[b]!.ageYears ?? age) - age));
    return ranked[this.rng() < 0.7 ? 0 : Math.min(1, ranked.length - 1)]!;
  }

  /** The patients table: the current version of each patient, written once all visits are known. */
  writePatients(): void {
    for (const c of this.clinics) {
      for (const p of c.patients) {
        this.sinks.patients.add(
          `${c.id}\t${p.id}\t${p.version}\tf\t${p.ownerId}\t${esc(p.name)}\t${p.species}\t${escJson(patientContent(p))}\t${new Date(p.createdMs).toISOString()}\t${new Date(p.updatedMs).toISOString()}\n`,
        );
      }
    }
  }

  get patientCount(): number {
    return this.clinics.reduce((n, c) => n + c.patients.length, 0);
  }

  get ownerCount(): number {
    return this.clinics.reduce((n, c) => n + c.owners.length, 0);
  }
}

/** The stored content of a patient, in the order RecordsService.createPatient builds it. */
function patientContent(p: PatientState) {
  return { name: p.name, species: p.species, breed: p.breed, sex: p.sex, neutered: p.neutered, birthDate: p.birthDate, birthDateEstimated: p.birthDateEstimated, weightKg: p.weightKg, ownerId: p.ownerId };
}
