/** Media (images, PDFs): metadata and hash in the record store, bytes in the blob store. */
import { createHash } from 'node:crypto';
import { uuidv7 } from '../ids.js';
import { DomainError, NotFoundError, UnprocessableError, ValidationError } from '../errors.js';
import { sniffMediaType } from './media-type.js';
import { Operations, type Idempotency, type Replayable } from '../operation.js';
import { requirePermission } from '../access/permissions.js';
import type { BlobStore, RequestContext, StoredRecord } from '../ports.js';
import { RecordsService } from './records.js';
import type { Media, MediaQuery, MediaType } from '../../contract/schemas.js';
import { etagOf, metaOf } from './versioning.js';

type MediaContent = Omit<Media, 'resourceType' | 'id' | 'version' | 'createdAt' | 'updatedAt' | 'deleted'>;

export function mediaView(rec: StoredRecord<unknown>): Media {
  return { resourceType: 'Media', ...metaOf(rec), ...(rec.content as MediaContent) };
}

export class MediaService {
  constructor(
    private readonly ops: Operations,
    private readonly blobs: BlobStore,
  ) {}

  async createMedia(ctx: RequestContext, declared: MediaType, bytes: Buffer, q: MediaQuery, idem?: Idempotency): Promise<Replayable> {
    requirePermission(ctx, 'records:write');
    if (bytes.length === 0) throw new ValidationError('The body is empty: send the file bytes as the request body');
    const detected = sniffMediaType(bytes);
    if (detected !== declared) {
      throw new DomainError(415, 'media-type-mismatch', 'Unsupported Media Type', `The body is not ${declared}${detected === null ? '' : ` (its bytes are ${detected})`}`);
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    // Bytes first, record second: a failed transaction leaves at most an unreferenced blob,
    // never a record pointing at missing bytes.
    await this.blobs.put(ctx.principal.clinicId, sha256, bytes);
    return this.ops.create(ctx, { action: 'create', entityType: 'media', entityId: null }, idem, async (tx, draft) => {
      if (q.patientId !== undefined) await RecordsService.live(tx, 'patient', q.patientId, 'Patient').catch(rethrowAsReference('patientId'));
      if (q.encounterId !== undefined) {
        const enc = await RecordsService.live(tx, 'encounter', q.encounterId, 'Encounter').catch(rethrowAsReference('encounterId'));
        const encPatient = (enc.content as { patientId: string }).patientId;
        if (q.patientId !== undefined && encPatient !== q.patientId) {
          throw new UnprocessableError('invalid-reference', 'encounterId belongs to another patient', { field: 'encounterId' });
        }
      }
      const id = uuidv7();
      draft.entityId = id;
      const content: MediaContent = {
        contentType: detected,
        sizeBytes: bytes.length,
        sha256,
        patientId: q.patientId ?? null,
        encounterId: q.encounterId ?? null,
        description: q.description ?? null,
      };
      const rec = await tx.insertRecord('media', id, content, new Date());
      return { status: 201, body: mediaView(rec), etag: etagOf(rec.version), location: `/v1/media/${id}` };
    });
  }

  getMedia(ctx: RequestContext, id: string): Promise<Media> {
    return this.ops.run(ctx, { action: 'read', entityType: 'media', entityId: id }, async (tx) => mediaView(await RecordsService.live(tx, 'media', id, 'Media')));
  }

  async getMediaContent(ctx: RequestContext, id: string): Promise<{ media: Media; bytes: Buffer }> {
    const media = await this.ops.run(ctx, { action: 'read', entityType: 'media', entityId: id, detail: { view: 'content' } }, async (tx) =>
      mediaView(await RecordsService.live(tx, 'media', id, 'Media')),
    );
    const bytes = await this.blobs.get(ctx.principal.clinicId, media.sha256);
    if (bytes === null) throw new NotFoundError('Media content', id);
    return { media, bytes };
  }
}

function rethrowAsReference(field: string) {
  return (err: unknown): never => {
    if (err instanceof NotFoundError) throw new UnprocessableError('invalid-reference', `${field} does not name a record of this clinic`, { field });
    throw err;
  };
}
