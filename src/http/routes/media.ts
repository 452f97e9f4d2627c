import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { DomainError } from '../../clinical/errors.js';
import { IdParams, Media, MEDIA_TYPES, MediaQuery, type MediaType } from '../../contract/schemas.js';
import { idempotencyOf, sendStored, withEtag } from '../replies.js';
import type { App, Services } from '../server.js';

export async function registerMediaRoutes(app: App, { media }: Services, maxBytes: number): Promise<void> {
  const tags = ['media'];
  await app.register(async (plain) => {
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
    // Only this route takes binary bodies, and only up to the media size limit.
    scope.addContentTypeParser([...MEDIA_TYPES], { parseAs: 'buffer', bodyLimit: maxBytes }, (_req, body, done) => done(null, body));
    scope.post(
      '/media',
      {
        config: { permission: 'records:write' },
        bodyLimit: maxBytes,
        schema: {
          tags,
          summary: `Upload an image or PDF as the raw body (${MEDIA_TYPES.join(', ')}); the type is checked against the bytes, an image is decoded (422 when it does not decode) and its quality checked (image.quality)`,
          querystring: MediaQuery,
          response: { 201: Media },
        },
      },
      async (request, reply) => {
        const declared = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() as MediaType;
        const bytes = request.body;
        // A JSON or form body reaches this route parsed by the app's own parsers: refuse it
        // here as any other type that is not a media type, before anything is stored.
        if (!Buffer.isBuffer(bytes) || !(MEDIA_TYPES as readonly string[]).includes(declared)) {
          throw new DomainError(415, 'unsupported-media-type', 'Unsupported Media Type', `Send the file bytes as the body with Content-Type one of ${MEDIA_TYPES.join(', ')}`);
        }
        return sendStored(reply, await media.createMedia(request.ctx, declared, bytes, request.query, idempotencyOf(request, bytes)));
      },
    );
  });
  app.get(
    '/media/:id',
    { config: { permission: 'records:read' }, schema: { tags, summary: 'Media metadata (sha256, type, size, links)', params: IdParams, response: { 200: Media } } },
    async (request, reply) => withEtag(reply, await media.getMedia(request.ctx, request.params.id)),
  );
  app.get(
    '/media/:id/content',
    { config: { permission: 'records:read' }, schema: { tags, summary: 'The stored bytes', params: IdParams } },
    async (request, reply) => {
      const { media: meta, bytes } = await media.getMediaContent(request.ctx, request.params.id);
      reply.header('etag', `"${meta.sha256}"`).header('x-content-sha256', meta.sha256).header('x-content-type-options', 'nosniff');
      return reply.type(meta.contentType).send(bytes);
    },
  );
}
