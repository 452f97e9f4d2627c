import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { StorageUnavailableError } from '../../clinical/errors.js';
import type { BlobStore } from '../../clinical/ports.js';

const SHA256 = /^[0-9a-f]{64}$/;
const UUID = /^[0-9a-f-]{36}$/;

export interface S3BlobStoreOptions {
  bucket: string;
  /** Customer-managed KMS key for SSE-KMS; unset: the bucket's default encryption applies. */
  kmsKeyId?: string;
  /** An S3-compatible endpoint (path-style addressing); unset: AWS S3 in the SDK's region. */
  endpoint?: string;
  /** Per-attempt time limit, ms: a hung S3 call becomes a 503, not a hung request. */
  requestTimeoutMs?: number;
  /** For tests: credentials and region instead of the SDK's default chain. */
  clientConfig?: ConstructorParameters<typeof S3Client>[0];
}

/**
 * Content-addressed media bytes in S3, under media/<clinic>/<aa>/<sha256>. A put sends the
 * SHA-256 with the object so S3 itself refuses bytes that do not match (x-amz-checksum-sha256),
 * and skips the upload when the object is already there (same bytes, same key), which keeps a
 * versioned bucket from growing a new version on every retry. Credentials and region come from
 * the SDK's default chain (the ECS task role on Fargate).
 */
export class S3BlobStore implements BlobStore {
  private readonly client: S3Client;

  constructor(private readonly opts: S3BlobStoreOptions) {
    const timeout = opts.requestTimeoutMs ?? 5000;
    this.client = new S3Client({
      ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint, forcePathStyle: true }),
      maxAttempts: 3,
      // Checksums only where S3 requires them; the put sends its own SHA-256 below.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: timeout, requestTimeout: timeout },
      ...opts.clientConfig,
    });
  }

  static keyOf(clinicId: string, sha256: string): string {
    if (!SHA256.test(sha256) || !UUID.test(clinicId)) throw new Error('invalid blob address');
    return `media/${clinicId}/${sha256.slice(0, 2)}/${sha256}`;
  }

  async put(clinicId: string, sha256: string, bytes: Buffer): Promise<void> {
    const Key = S3BlobStore.keyOf(clinicId, sha256);
    try {
      if (await this.exists(Key)) return;
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.opts.bucket,
          Key,
          Body: bytes,
          ContentLength: bytes.length,
          ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
          ...(this.opts.kmsKeyId === undefined ? {} : { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: this.opts.kmsKeyId }),
        }),
      );
    } catch (err) {
      throw new StorageUnavailableError('The media store could not be written', err);
    }
  }

  async get(clinicId: string, sha256: string): Promise<Buffer | null> {
    const Key = S3BlobStore.keyOf(clinicId, sha256);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key }));
      if (out.Body === undefined) return null;
      return Buffer.from(await out.Body.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return null;
      throw new StorageUnavailableError('The media store could not be read', err);
    }
  }

  close(): void {
    this.client.destroy();
  }

  private async exists(Key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata.httpStatusCode === 404);
}
