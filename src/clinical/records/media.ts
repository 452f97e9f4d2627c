/** Media (images, PDFs): metadata and hash in the record store, bytes in the blob store. */
import { createHash } from 'node:crypto';
import { uuidv7 } from '../ids.js';
import { DomainError, NotFoundError, UnprocessableError, ValidationError } from '../errors.js';
import { sniffMediaType } from './media-type.js';
import { Operations, type Idempotency, type Replayable } from '../operation.js';
import { requirePermission } from '../access/permissions.js';
import type { BlobStore, ImageDecoder, RequestContext, StoredRecord } from '../ports.js';
import { assessImage, DEFAULT_IMAGE_QUALITY, type ImageQualityThresholds } from './image-quality.js';
import { RecordsService } from './records.js';
import type { ImageInfo, Media, MediaQuery, MediaType } from '../../contract/schemas.js';
import { etagOf, metaOf } from './versioning.js';

type MediaContent = Omit<Media, 'resourceType' | 'id' | 'version' | 'createdAt' | 'updatedAt' | 'deleted'>;

/** A stored media record as the API shows it; one stored before images were decoded has image null. */
export function mediaView(rec: StoredRecord<unknown>): Media {
  const content = rec.content as MediaContent;
  return { resourceType: 'Media', ...metaOf(rec), ...content, image: content.image ?? null };
}

export class MediaService {
  constructor(
    private readonly ops: Operations,
    private readonly blobs: BlobStore,
    private readonly images: ImageDecoder,
    private readonly quality: ImageQualityThresholds = DEFAULT_IMAGE_QUALITY,
  ) {}

  async createMedia(ctx: RequestContext, declared: MediaType, bytes: Buffer, q: MediaQuery, idem?: Idempotency): Promise<Replayable> {
    requirePermission(ctx, 'records:write');
    if (bytes.length === 0) throw new ValidationError('The body is empty: send the file bytes as the request body');
    const detected = sniffMediaType(bytes);
    if (detected !== declared) {
      throw new DomainError(415, 'media-type-mismatch', 'Unsupported Media Type', `The body is not ${declared}${detected === null ? '' : ` (its bytes are ${detected})`}`);
    }
    // An image is decoded before anything is stored: bytes that do not decode are refused, and
    // one that decodes but is too small, blank or blurred is kept with its flag and reasons.
    let image: ImageInfo | null = null;
    if (detected === 'image/png' || detected === 'image/jpeg') {
      const decoded = await this.images.decode(bytes);
      if ('refused' in decoded) {
        throw decoded.refused === 'too-large'
          ? new UnprocessableError('image-too-large', `The body is an image too large to decode: ${decoded.detail}`, { field: 'body' })
          : new UnprocessableError('undecodable-image', `The body is not a decodable ${detected} image: ${decoded.detail}`, { field: 'body' });
      }
      image = assessImage(decoded, this.quality);
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
        image,
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
