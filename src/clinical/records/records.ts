/** Owners and patients: versioned, tenant-scoped, audited. */
import { uuidv7 } from '../ids.js';
import { NotFoundError, PreconditionFailedError, UnprocessableError, ValidationError } from '../errors.js';
import { Operations, type Idempotency, type Replayable } from '../operation.js';
import { requirePermission } from '../access/permissions.js';
import type { ClinicalTx, Page, RequestContext, ResourceType, StoredRecord, WeightEntry } from '../ports.js';
import type { Owner, OwnerInput, Patient, PatientInput, PatientPatch, PatientQuery, RecordVersion } from '../../contract/schemas.js';
import { SPECIES, type SpeciesCode } from '../species.js';
import { checkIfMatch, compact, etagOf, metaOf } from './versioning.js';

interface PatientContent {
  name: string;
  species: SpeciesCode;
  breed: string | null;
  sex: 'male' | 'female' | 'unknown';
  neutered: boolean;
  birthDate: string | null;
  birthDateEstimated: boolean;
  weightKg: number | null;
  ownerId: string;
}

const DAY_MS = 86_400_000;
const YEAR_DAYS = 365.25;

export function ownerView(rec: StoredRecord<unknown>): Owner {
  return { resourceType: 'Owner', ...metaOf(rec), ...(rec.content as OwnerInput) };
}

function ageYearsAt(birthDate: string, now: Date): number {
  return Math.max(0, Math.round(((now.getTime() - Date.parse(`${birthDate}T00:00:00Z`)) / DAY_MS / YEAR_DAYS) * 10) / 10);
}

export function patientView(rec: StoredRecord<unknown>, weights: WeightEntry[], now = new Date()): Patient {
  const c = rec.content as PatientContent;
  const species = SPECIES[c.species];
  return {
    resourceType: 'Patient',
    ...metaOf(rec),
    name: c.name,
    species: c.species,
    speciesCoding: species.snomed === null ? null : { system: 'http://snomed.info/sct', code: species.snomed, display: species.display },
    breed: c.breed,
    sex: c.sex,
    neutered: c.neutered,
    birthDate: c.birthDate,
    birthDateEstimated: c.birthDateEstimated,
    ageYears: c.birthDate === null ? null : ageYearsAt(c.birthDate, now),
    weightKg: c.weightKg,
    weightHistory: weights.map((w) => ({ weightKg: w.weightKg, recordedAt: w.recordedAt.toISOString() })),
    ownerId: c.ownerId,
  };
}

function birthFields(input: { birthDate?: string; ageYears?: number }, now: Date): Pick<PatientContent, 'birthDate' | 'birthDateEstimated'> | undefined {
  if (input.birthDate !== undefined && input.ageYears !== undefined) {
    throw new ValidationError('Give birthDate or ageYears, not both', { fields: ['birthDate', 'ageYears'] });
  }
  if (input.birthDate !== undefined) {
    if (Date.parse(`${input.birthDate}T00:00:00Z`) > now.getTime()) throw new ValidationError('birthDate is in the future', { fields: ['birthDate'] });
    return { birthDate: input.birthDate, birthDateEstimated: false };
  }
  if (input.ageYears !== undefined) {
    const estimated = new Date(now.getTime() - input.ageYears * YEAR_DAYS * DAY_MS);
    return { birthDate: estimated.toISOString().slice(0, 10), birthDateEstimated: true };
  }
  return undefined;
}

export class RecordsService {
  constructor(private readonly ops: Operations) {}

  /** The live record or 404; another clinic's record is invisible here, so it is a 404 too. */
  static async live(tx: ClinicalTx, type: ResourceType, id: string, label: string, forUpdate = false): Promise<StoredRecord<unknown>> {
    const rec = await tx.getRecord(type, id, { forUpdate });
    if (rec === null || rec.deleted) throw new NotFoundError(label, id);
    return rec;
  }

  private static async weightsOf(tx: ClinicalTx, patientId: string): Promise<WeightEntry[]> {
    return (await tx.weights([patientId])).get(patientId) ?? [];
  }

  private static async requireOwner(tx: ClinicalTx, ownerId: string): Promise<void> {
    const owner = await tx.getRecord('owner', ownerId);
    if (owner === null || owner.deleted) {
      throw new UnprocessableError('invalid-reference', `ownerId ${ownerId} does not name an owner of this clinic`, { field: 'ownerId' });
    }
  }

  createOwner(ctx: RequestContext, input: OwnerInput, idem?: Idempotency): Promise<Replayable> {
    requirePermission(ctx, 'records:write');
    return this.ops.create(ctx, { action: 'create', entityType: 'owner', entityId: null }, idem, async (tx, draft) => {
      const id = uuidv7();
      draft.entityId = id;
      const rec = await tx.insertRecord('owner', id, compact(input), new Date());
      return { status: 201, body: ownerView(rec), etag: etagOf(rec.version), location: `/v1/owners/${id}` };
    });
  }

  getOwner(ctx: RequestContext, id: string): Promise<Owner> {
    return this.ops.run(ctx, { action: 'read', entityType: 'owner', entityId: id }, async (tx) => ownerView(await RecordsService.live(tx, 'owner', id, 'Owner')));
  }

  createPatient(ctx: RequestContext, input: PatientInput, idem?: Idempotency): Promise<Replayable> {
    requirePermission(ctx, 'records:write');
    const now = new Date();
    const content: PatientContent = {
      name: input.name,
      species: input.species,
      breed: input.breed ?? null,
      sex: input.sex,
      neutered: input.neutered,
      ...(birthFields(input, now) ?? { birthDate: null, birthDateEstimated: false }),
      weightKg: input.weightKg ?? null,
      ownerId: input.ownerId,
    };
    return this.ops.create(ctx, { action: 'create', entityType: 'patient', entityId: null }, idem, async (tx, draft) => {
      await RecordsService.requireOwner(tx, input.ownerId);
      const id = uuidv7();
      draft.entityId = id;
      const rec = await tx.insertRecord('patient', id, content, now);
      const weights = content.weightKg === null ? [] : [{ weightKg: content.weightKg, recordedAt: now }];
      if (content.weightKg !== null) await tx.addWeight(id, content.weightKg, now);
      return { status: 201, body: patientView(rec, weights, now), etag: etagOf(rec.version), location: `/v1/patients/${id}` };
    });
  }

  getPatient(ctx: RequestContext, id: string): Promise<Patient> {
    return this.ops.run(ctx, { action: 'read', entityType: 'patient', entityId: id }, async (tx) => {
      const rec = await RecordsService.live(tx, 'patient', id, 'Patient');
      return patientView(rec, await RecordsService.weightsOf(tx, id));
    });
  }

  patchPatient(ctx: RequestContext, id: string, ifMatch: string | undefined, patch: PatientPatch): Promise<Patient> {
    requirePermission(ctx, 'records:write');
    return this.ops.run(ctx, { action: 'update', entityType: 'patient', entityId: id }, async (tx) => {
      const now = new Date();
      const rec = await RecordsService.live(tx, 'patient', id, 'Patient');
      checkIfMatch(ifMatch, rec.version);
      const current = rec.content as PatientContent;
      const { ageYears: _age, birthDate: _birth, ...plain } = patch;
      const next: PatientContent = { ...current, ...compact(plain), ...(birthFields(patch, now) ?? {}) };
      if (patch.ownerId !== undefined && patch.ownerId !== current.ownerId) await RecordsService.requireOwner(tx, patch.ownerId);
      const updated = await tx.updateRecord('patient', id, rec.version, next, false, now);
      // Another writer committed between our read and our update.
      if (updated === null) throw new PreconditionFailedError(ifMatch ?? '', rec.version + 1);
      if (patch.weightKg !== undefined && patch.weightKg !== current.weightKg) await tx.addWeight(id, patch.weightKg, now);
      return patientView(updated, await RecordsService.weightsOf(tx, id), now);
    });
  }

  deletePatient(ctx: RequestContext, id: string, ifMatch: string | undefined): Promise<Patient> {
    requirePermission(ctx, 'records:write');
    return this.ops.run(ctx, { action: 'delete', entityType: 'patient', entityId: id }, async (tx) => {
      const rec = await RecordsService.live(tx, 'patient', id, 'Patient');
      checkIfMatch(ifMatch, rec.version);
      const tombstone = await tx.updateRecord('patient', id, rec.version, rec.content as PatientContent, true, new Date());
      if (tombstone === null) throw new PreconditionFailedError(ifMatch ?? '', rec.version + 1);
      return patientView(tombstone, await RecordsService.weightsOf(tx, id));
    });
  }

  patientHistory(ctx: RequestContext, id: string): Promise<RecordVersion[]> {
    return this.ops.run(ctx, { action: 'read', entityType: 'patient', entityId: id, detail: { view: 'history' } }, async (tx) => {
      const versions = await tx.history('patient', id);
      if (versions.length === 0) throw new NotFoundError('Patient', id);
      return versions.map((v) => ({
        version: v.version,
        deleted: v.deleted,
        recordedAt: v.recordedAt.toISOString(),
        recordedBy: v.recordedBy,
        content: v.content as Record<string, unknown>,
      }));
    });
  }

  listPatients(ctx: RequestContext, q: PatientQuery): Promise<Page<Patient>> {
    return this.ops.run(ctx, { action: 'search', entityType: 'patient', entityId: null }, async (tx) => {
      const found = await tx.listPatients({ namePrefix: q.name, species: q.species, ownerId: q.ownerId, limit: q.limit, cursor: q.cursor });
      const now = new Date();
      const weights = await tx.weights(found.items.map((rec) => rec.id));
      const items = found.items.map((rec) => patientView(rec, weights.get(rec.id) ?? [], now));
      return { items, nextCursor: found.nextCursor };
    });
  }
}
