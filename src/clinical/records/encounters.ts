/** Encounters (visits) of a patient and the observations recorded in them. */
import { uuidv7 } from '../ids.js';
import { ValidationError } from '../errors.js';
import { Operations, type Idempotency, type Replayable } from '../operation.js';
import { requirePermission } from '../access/permissions.js';
import type { Page, RequestContext, StoredRecord } from '../ports.js';
import { RecordsService } from './records.js';
import type { Encounter, EncounterInput, Observation, ObservationInput, PageQuery } from '../../contract/schemas.js';
import { etagOf, metaOf } from './versioning.js';

interface EncounterContent {
  patientId: string;
  type: string;
  status: Encounter['status'];
  reason: string | null;
  startedAt: string;
  endedAt: string | null;
}

interface ObservationContent {
  encounterId: string;
  patientId: string;
  category: Observation['category'];
  code: string;
  display: string | null;
  value: number | boolean | string;
  unit: string | null;
  effectiveAt: string;
}

export function encounterView(rec: StoredRecord<unknown>): Encounter {
  return { resourceType: 'Encounter', ...metaOf(rec), ...(rec.content as EncounterContent) };
}

export function observationView(rec: StoredRecord<unknown>): Observation {
  return { resourceType: 'Observation', ...metaOf(rec), ...(rec.content as ObservationContent) };
}

function checkObservation(input: ObservationInput): void {
  const kind = typeof input.value;
  if (input.category === 'note' && kind !== 'string') throw new ValidationError('A note observation carries its text in value', { fields: ['value'] });
  if ((input.category === 'vital-sign' || input.category === 'laboratory') && kind === 'boolean') {
    throw new ValidationError(`A ${input.category} observation carries a number (or a text result), not a boolean`, { fields: ['value'] });
  }
  if (kind === 'number' && !Number.isFinite(input.value as number)) throw new ValidationError('value must be a finite number', { fields: ['value'] });
}

export class EncountersService {
  constructor(private readonly ops: Operations) {}

  createEncounter(ctx: RequestContext, patientId: string, input: EncounterInput, idem?: Idempotency): Promise<Replayable> {
    requirePermission(ctx, 'records:write');
    const now = new Date();
    const startedAt = input.startedAt ?? now.toISOString();
    const endedAt = input.endedAt ?? null;
    if (endedAt !== null && Date.parse(endedAt) < Date.parse(startedAt)) throw new ValidationError('endedAt is before startedAt', { fields: ['endedAt'] });
    const content: EncounterContent = {
      patientId,
      type: input.type ?? 'consultation',
      status: input.status ?? (endedAt === null ? 'in-progress' : 'finished'),
      reason: input.reason ?? null,
      startedAt: new Date(startedAt).toISOString(),
      endedAt: endedAt === null ? null : new Date(endedAt).toISOString(),
    };
    return this.ops.create(ctx, { action: 'create', entityType: 'encounter', entityId: null, detail: { patientId } }, idem, async (tx, draft) => {
      await RecordsService.live(tx, 'patient', patientId, 'Patient');
      const id = uuidv7();
      draft.entityId = id;
      const rec = await tx.insertRecord('encounter', id, content, now);
      return { status: 201, body: encounterView(rec), etag: etagOf(rec.version), location: `/v1/encounters/${id}` };
    });
  }

  getEncounter(ctx: RequestContext, id: string): Promise<Encounter> {
    return this.ops.run(ctx, { action: 'read', entityType: 'encounter', entityId: id }, async (tx) => encounterView(await RecordsService.live(tx, 'encounter', id, 'Encounter')));
  }

  getObservation(ctx: RequestContext, id: string): Promise<Observation> {
    return this.ops.run(ctx, { action: 'read', entityType: 'observation', entityId: id }, async (tx) =>
      observationView(await RecordsService.live(tx, 'observation', id, 'Observation')),
    );
  }

  listEncounters(ctx: RequestContext, patientId: string, q: PageQuery): Promise<Page<Encounter>> {
    return this.ops.run(ctx, { action: 'search', entityType: 'encounter', entityId: null, detail: { patientId } }, async (tx) => {
      await RecordsService.live(tx, 'patient', patientId, 'Patient');
      const found = await tx.listChildren('encounter', patientId, q.limit, q.cursor);
      return { items: found.items.map(encounterView), nextCursor: found.nextCursor };
    });
  }

  createObservation(ctx: RequestContext, encounterId: string, input: ObservationInput, idem?: Idempotency): Promise<Replayable> {
    requirePermission(ctx, 'records:write');
    checkObservation(input);
    const now = new Date();
    return this.ops.create(ctx, { action: 'create', entityType: 'observation', entityId: null, detail: { encounterId } }, idem, async (tx, draft) => {
      const encounter = encounterView(await RecordsService.live(tx, 'encounter', encounterId, 'Encounter'));
      const id = uuidv7();
      draft.entityId = id;
      const content: ObservationContent = {
        encounterId,
        patientId: encounter.patientId,
        category: input.category,
        code: input.code,
        display: input.display ?? null,
        value: input.value,
        unit: input.unit ?? null,
        effectiveAt: new Date(input.effectiveAt ?? now).toISOString(),
      };
      const rec = await tx.insertRecord('observation', id, content, now);
      return { status: 201, body: observationView(rec), etag: etagOf(rec.version), location: `/v1/observations/${id}` };
    });
  }

  listObservations(ctx: RequestContext, encounterId: string, q: PageQuery): Promise<Page<Observation>> {
    return this.ops.run(ctx, { action: 'search', entityType: 'observation', entityId: null, detail: { encounterId } }, async (tx) => {
      await RecordsService.live(tx, 'encounter', encounterId, 'Encounter');
      const found = await tx.listChildren('observation', encounterId, q.limit, q.cursor);
      return { items: found.items.map(observationView), nextCursor: found.nextCursor };
    });
  }
}
