/**
 * Append-only stores for the signed audit checkpoints: a local directory (file://DIR) or an S3
 * bucket (s3://bucket/prefix; in AWS under Object Lock in compliance mode, so not even the account
 * root can delete or overwrite a checkpoint before its retention ends). Both only ever create
 * new objects: a name that exists already is refused, never overwritten.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { StoredCheckpoint } from './checkpoint.js';

/** The name is taken already: a write that did land before (its reply was lost), or a replay. */
export class CheckpointExistsError extends Error {
  constructor(name: string) {
    super(`checkpoint ${name} exists already`);
    this.name = 'CheckpointExistsError';
  }
}

export interface CheckpointStore {
  /** Where it is, for logs and messages (no credentials). */
  readonly url: string;
  /** Creates `name` with `text`; CheckpointExistsError if the name is taken. */
  create(name: string, text: string): Promise<void>;
  read(name: string): Promise<string>;
  /** Every checkpoint in the store. */
  list(): Promise<StoredCheckpoint[]>;
  close?(): void;
}

export interface CheckpointStoreOptions {
  /** S3-compatible endpoint (path-style), as AGENTICPET_S3_ENDPOINT. */
  s3Endpoint?: string;
  requestTimeoutMs?: number;
  /** For tests: credentials and region instead of the SDK's default chain. */
  s3ClientConfig?: ConstructorParameters<typeof S3Client>[0];
}

/** file:///abs/dir, file://relative/dir or s3://bucket[/prefix]; anything else is refused. */
export function parseCheckpointUrl(url: string): { kind: 'file'; dir: string } | { kind: 's3'; bucket: string; prefix: string } {
  if (url.startsWith('file://')) {
    const dir = url.slice('file://'.length);
    if (dir === '') throw new Error('must name a directory after file://');
    return { kind: 'file', dir: path.resolve(dir) };
  }
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (m !== null) return { kind: 's3', bucket: m[1]!, prefix: (m[2] ?? '').replace(/^\/+|\/+$/g, '') };
  throw new Error('must be file://DIR or s3://bucket/prefix');
}

export function openCheckpointStore(url: string, opts: CheckpointStoreOptions = {}): CheckpointStore {
  const parsed = parseCheckpointUrl(url);
  return parsed.kind === 'file' ? new FsCheckpointStore(parsed.dir) : new S3CheckpointStore(parsed.bucket, parsed.prefix, opts);
}

const NAME = /^[A-Za-z0-9._-]+\/\d{12}\.json$/;

function checkName(name: string): void {
  if (!NAME.test(name)) throw new Error(`invalid checkpoint name ${name}`);
}

/**
 * A directory: each checkpoint is written in full to a temporary file, flushed, then hard-linked
 * to its name, which fails if the name exists (as O_EXCL does), so a crash never leaves a half
 * checkpoint under a real name and nothing is ever overwritten.
 */
export class FsCheckpointStore implements CheckpointStore {
  readonly url: string;

  constructor(private readonly dir: string) {
    this.url = `file://${dir}`;
  }

  async create(name: string, text: string): Promise<void> {
    checkName(name);
    const target = path.join(this.dir, name);
    await fs.promises.mkdir(path.dirname(target), { recursive: true });
    const tmp = path.join(path.dirname(target), `.tmp-${randomBytes(6).toString('hex')}`);
    const handle = await fs.promises.open(tmp, 'wx', 0o444);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.promises.link(tmp, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new CheckpointExistsError(name);
      throw err;
    } finally {
      await fs.promises.unlink(tmp).catch(() => undefined);
    }
  }

  read(name: string): Promise<string> {
    checkName(name);
    return fs.promises.readFile(path.join(this.dir, name), 'utf8');
  }

  async list(): Promise<StoredCheckpoint[]> {
    if (!fs.existsSync(this.dir)) return [];
    const out: StoredCheckpoint[] = [];
    for (const writer of (await fs.promises.readdir(this.dir, { withFileTypes: true })).filter((e) => e.isDirectory())) {
      for (const file of (await fs.promises.readdir(path.join(this.dir, writer.name))).filter((f) => f.endsWith('.json'))) {
        const name = `${writer.name}/${file}`;
        out.push({ name, text: await fs.promises.readFile(path.join(this.dir, name), 'utf8') });
      }
    }
    return out;
  }
}

/**
 * An S3 bucket under a prefix. A put is conditional (If-None-Match: *), so S3 refuses to replace
 * an existing checkpoint; with Object Lock a replacement could only add a version anyway, and the
 * retained versions stay readable.
 */
export class S3CheckpointStore implements CheckpointStore {
  readonly url: string;
  private readonly client: S3Client;

  constructor(
    private readonly bucket: string,
    private readonly prefix: string,
    opts: CheckpointStoreOptions = {},
  ) {
    this.url = `s3://${bucket}/${prefix}`;
    const timeout = opts.requestTimeoutMs ?? 5000;
    this.client = new S3Client({
      ...(opts.s3Endpoint === undefined ? {} : { endpoint: opts.s3Endpoint, forcePathStyle: true }),
      maxAttempts: 2,
      requestHandler: { connectionTimeout: timeout, requestTimeout: timeout },
      ...opts.s3ClientConfig,
    });
  }

  private key(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}/${name}`;
  }

  async create(name: string, text: string): Promise<void> {
    checkName(name);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(name), Body: text, ContentType: 'application/json', IfNoneMatch: '*' }));
    } catch (err) {
      if (err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 412 || err.name === 'PreconditionFailed')) throw new CheckpointExistsError(name);
      throw err;
    }
  }

  async read(name: string): Promise<string> {
    checkName(name);
    const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
    return got.Body!.transformToString('utf8');
  }

  async list(): Promise<StoredCheckpoint[]> {
    const names: string[] = [];
    const start = this.prefix === '' ? '' : `${this.prefix}/`;
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: start, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key !== undefined && NAME.test(o.Key.slice(start.length))) names.push(o.Key.slice(start.length));
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    // A few reads at a time: thousands of small objects per writer and day at the default interval.
    const out: StoredCheckpoint[] = [];
    for (let i = 0; i < names.length; i += 16) {
      out.push(...(await Promise.all(names.slice(i, i + 16).map(async (name) => ({ name, text: await this.read(name) })))));
    }
    return out;
  }

  close(): void {
    this.client.destroy();
  }
}
