/**
 * Media bytes in S3 (AGENTICPET_MEDIA_BUCKET), against s3rver, an S3-compatible server from npm
 * on loopback: the whole HTTP path through the real service, what lands in the bucket, and what
 * a client sees when S3 is down or an object has gone.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { ConfigError, loadConfig } from '../src/config.js';
import { S3BlobStore } from '../src/storage/blobs/s3.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { sceneJpeg, scenePng } from './support/images.js';
import { client, startRuntime, type Call, type TestRuntime } from './support/runtime.js';

const BUCKET = 'agenticpet-media-test';
// Real images (uploads are decoded); each test that needs bytes of its own gets another mark.
const PNG = await scenePng({ mark: 11 });
const JPEG = await sceneJpeg({ mark: 12 });

interface S3Server {
  endpoint: string;
  requests: string[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** s3rver on an ephemeral loopback port, keeping its port across stop/start, logging each request. */
async function s3server(dir: string): Promise<S3Server> {
  const requests: string[] = [];
  let port = 0;
  let server: S3rver | null = null;
  const start = async () => {
    server = new S3rver({ port, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: BUCKET, configs: [] }] });
    // First in the chain: every request, before s3rver routes it.
    (server as unknown as { middleware: unknown[] }).middleware.unshift(async (ctx: { method: string; path: string }, next: () => Promise<void>) => {
      requests.push(`${ctx.method} ${ctx.path}`);
      await next();
    });
    const addr = await server.run();
    port = addr.port;
  };
  await start();
  return {
    get endpoint() {
      return `http://127.0.0.1:${port}`;
    },
    requests,
    start,
    stop: async () => {
      await server?.close();
      server = null;
    },
  };
}

describe('media bytes in S3', () => {
  let dir: string;
  let s3: S3Server;
  let rt: TestRuntime;
  let api: Call;
  let clinicId: string;
  let raw: S3Client;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-s3-'));
    s3 = await s3server(dir);
    // s3rver accepts any signature made with its fixed credentials.
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    process.env.AWS_REGION = 'eu-west-1';
    rt = await startRuntime(await PgliteExecutor.open(), { AGENTICPET_MEDIA_BUCKET: BUCKET, AGENTICPET_S3_ENDPOINT: s3.endpoint, AGENTICPET_S3_TIMEOUT_MS: '2000' });
    const clinic = await rt.newClinic('S3 clinic');
    clinicId = clinic.clinicId;
    api = client(rt, clinic.key);
    raw = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'eu-west-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  });

  after(async () => {
    raw.destroy();
    await rt.close();
    await s3.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores the bytes in the bucket under the clinic and their sha256, and serves them back', async () => {
    const up = await api('POST', '/v1/media?description=s3', { raw: PNG, contentType: 'image/png' });
    assert.equal(up.statusCode, 201, up.body);
    const media = up.json();
    const sha = createHash('sha256').update(PNG).digest('hex');
    assert.equal(media.sha256, sha);
    // Read straight from the bucket, not through the service.
    const obj = await raw.send(new GetObjectCommand({ Bucket: BUCKET, Key: `media/${clinicId}/${sha.slice(0, 2)}/${sha}` }));
    assert.deepEqual(Buffer.from(await obj.Body!.transformToByteArray()), PNG);
    // Nothing went to the task's disk.
    assert.equal(fs.existsSync(path.join(rt.dataDir, 'blobs')), false);
    const content = await api('GET', `/v1/media/${media.id}/content`);
    assert.equal(content.statusCode, 200);
    assert.equal(content.headers['content-type'], 'image/png');
    assert.deepEqual(content.rawPayload, PNG);
  });

  it('uploading the same bytes again writes no second object version', async () => {
    const before = s3.requests.length;
    const up = await api('POST', '/v1/media', { raw: PNG, contentType: 'image/png' });
    assert.equal(up.statusCode, 201);
    const calls = s3.requests.slice(before);
    assert.deepEqual(
      calls.map((c) => c.split(' ')[0]),
      ['HEAD'],
      `expected one HEAD and no PUT, got ${calls.join(', ')}`,
    );
  });

  it('another clinic cannot reach the object through the service', async () => {
    const other = client(rt, (await rt.newClinic('Other')).key);
    const up = await api('POST', '/v1/media', { raw: JPEG, contentType: 'image/jpeg' });
    assert.equal(up.statusCode, 201);
    assert.equal((await other('GET', `/v1/media/${up.json().id}/content`)).statusCode, 404);
  });

  it('an object gone from the bucket answers 404, not 500', async () => {
    const bytes = await sceneJpeg({ mark: 13 });
    const up = await api('POST', '/v1/media', { raw: bytes, contentType: 'image/jpeg' });
    assert.equal(up.statusCode, 201);
    const sha = up.json().sha256 as string;
    await raw.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: S3BlobStore.keyOf(clinicId, sha) }));
    const res = await api('GET', `/v1/media/${up.json().id}/content`);
    assert.equal(res.statusCode, 404);
    assert.match(res.headers['content-type'] as string, /application\/problem\+json/);
  });

  it('with S3 down, an upload or a read answers 503 problem+json and writes no record; both work again once S3 is back', async () => {
    const mediaCreates = async () => {
      const res = await api('GET', '/v1/audit?entityType=media&limit=500');
      assert.equal(res.statusCode, 200);
      return (res.json().items as { action: string; entityId: string }[]).filter((e) => e.action === 'create');
    };
    const createdBefore = await mediaCreates();
    assert.ok(createdBefore.length > 0);
    const stored = createdBefore[0]!.entityId;
    const bytes = await sceneJpeg({ mark: 14 });
    await s3.stop();
    try {
      const res = await api('POST', '/v1/media', { raw: bytes, contentType: 'image/jpeg' });
      assert.equal(res.statusCode, 503, res.body);
      assert.match(res.headers['content-type'] as string, /application\/problem\+json/);
      assert.ok(res.headers['retry-after'] !== undefined);
      const read = await api('GET', `/v1/media/${stored}/content`);
      assert.equal(read.statusCode, 503, read.body);
      assert.equal((await mediaCreates()).length, createdBefore.length, 'no media record without its bytes');
    } finally {
      await s3.start();
    }
    const again = await api('POST', '/v1/media', { raw: bytes, contentType: 'image/jpeg' });
    assert.equal(again.statusCode, 201, again.body);
    assert.equal((await api('GET', `/v1/media/${stored}/content`)).statusCode, 200);
  });
});

describe('media store configuration', () => {
  it('uses the data directory unless a bucket is named', () => {
    assert.deepEqual(loadConfig({}).mediaStore, { kind: 'fs' });
    assert.deepEqual(loadConfig({ AGENTICPET_MEDIA_BUCKET: 'my-media', AGENTICPET_MEDIA_KMS_KEY_ID: 'arn:aws:kms:eu-west-1:1:key/x' }).mediaStore, {
      kind: 's3',
      bucket: 'my-media',
      kmsKeyId: 'arn:aws:kms:eu-west-1:1:key/x',
      endpoint: undefined,
      requestTimeoutMs: 5000,
    });
  });

  it('refuses a malformed bucket, a bad endpoint, and S3 settings without a bucket', () => {
    const refused = (env: Record<string, string>, variable: string) =>
      assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.variable === variable);
    refused({ AGENTICPET_MEDIA_BUCKET: 'Not_A_Bucket' }, 'AGENTICPET_MEDIA_BUCKET');
    refused({ AGENTICPET_MEDIA_BUCKET: 'ok-bucket', AGENTICPET_S3_ENDPOINT: 'ftp://x' }, 'AGENTICPET_S3_ENDPOINT');
    refused({ AGENTICPET_S3_ENDPOINT: 'http://127.0.0.1:9000' }, 'AGENTICPET_S3_ENDPOINT');
    refused({ AGENTICPET_MEDIA_KMS_KEY_ID: 'alias/x' }, 'AGENTICPET_MEDIA_KMS_KEY_ID');
  });
});
