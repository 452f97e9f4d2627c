/**
 * Where backups are kept: a directory (file://DIR) or an S3 bucket under a prefix
 * (s3://bucket/prefix). A backup is a folder of its own named by its id: its parts, then
 * manifest.json, written last, so a backup without a manifest is one that never finished.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { parseCheckpointUrl } from '../checkpoints/stores.js';
import { BackupError, isBackupId } from './format.js';

export interface BackupTarget {
  /** Where it is, for messages (no credentials). */
  readonly url: string;
  put(id: string, name: string, body: Buffer | string): Promise<void>;
  /** BackupError when there is no such object. */
  get(id: string, name: string): Promise<Buffer>;
  /** The ids of every backup folder, complete or not, oldest first. */
  ids(): Promise<string[]>;
  /** Deletes a backup folder and everything in it. */
  remove(id: string): Promise<void>;
  close(): void;
}

export interface BackupTargetOptions {
  /** S3-compatible endpoint (path-style); unset: AWS S3 in AWS_REGION. */
  s3Endpoint?: string;
  requestTimeoutMs?: number;
  /** For tests: credentials and region instead of the SDK's default chain. */
  s3ClientConfig?: ConstructorParameters<typeof S3Client>[0];
}

const NAME = /^[A-Za-z0-9_.-]+$/;

function checked(id: string, name?: string): void {
  if (!isBackupId(id)) throw new BackupError(`"${id}" is not a backup id (as listed by \`agenticpet backup list\`)`);
  if (name !== undefined && (!NAME.test(name) || name.startsWith('.'))) throw new BackupError(`invalid part name ${name}`);
}

export function openBackupTarget(url: string, opts: BackupTargetOptions = {}): BackupTarget {
  let parsed;
  try {
    parsed = parseCheckpointUrl(url);
  } catch (err) {
    throw new BackupError(`backup target ${url} ${(err as Error).message}`);
  }
  return parsed.kind === 'file' ? new FsBackupTarget(parsed.dir) : new S3BackupTarget(parsed.bucket, parsed.prefix, opts);
}

/** Each object is written to a temporary file, flushed, then renamed: a crash leaves no half part under its name. */
export class FsBackupTarget implements BackupTarget {
  readonly url: string;

  constructor(private readonly dir: string) {
    this.url = `file://${dir}`;
  }

  async put(id: string, name: string, body: Buffer | string): Promise<void> {
    checked(id, name);
    const folder = path.join(this.dir, id);
    await fs.promises.mkdir(folder, { recursive: true, mode: 0o700 });
    const tmp = path.join(folder, `.tmp-${randomBytes(6).toString('hex')}`);
    const handle = await fs.promises.open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(tmp, path.join(folder, name));
  }

  async get(id: string, name: string): Promise<Buffer> {
    checked(id, name);
    try {
      return await fs.promises.readFile(path.join(this.dir, id, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BackupError(`${this.url}: backup ${id} has no ${name}`);
      throw err;
    }
  }

  async ids(): Promise<string[]> {
    if (!fs.existsSync(this.dir)) return [];
    return (await fs.promises.readdir(this.dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && isBackupId(e.name))
      .map((e) => e.name)
      .sort();
  }

  async remove(id: string): Promise<void> {
    checked(id);
    await fs.promises.rm(path.join(this.dir, id), { recursive: true, force: true });
  }

  close(): void {}
}

export class S3BackupTarget implements BackupTarget {
  readonly url: string;
  private readonly client: S3Client;

  constructor(
    private readonly bucket: string,
    private readonly prefix: string,
    opts: BackupTargetOptions = {},
  ) {
    this.url = `s3://${bucket}/${prefix}`;
    // Parts are up to a few MiB each: a longer timeout than the checkpoints' small objects.
    const timeout = opts.requestTimeoutMs ?? 60_000;
    this.client = new S3Client({
      ...(opts.s3Endpoint === undefined ? {} : { endpoint: opts.s3Endpoint, forcePathStyle: true }),
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: timeout },
      ...opts.s3ClientConfig,
    });
  }

  private key(id: string, name = ''): string {
    return `${this.prefix === '' ? '' : `${this.prefix}/`}${id}/${name}`;
  }

  async put(id: string, name: string, body: Buffer | string): Promise<void> {
    checked(id, name);
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(id, name), Body: body, ContentType: name.endsWith('.json') ? 'application/json' : 'application/octet-stream' }));
  }

  async get(id: string, name: string): Promise<Buffer> {
    checked(id, name);
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(id, name) }));
      return Buffer.from(await got.Body!.transformToByteArray());
    } catch (err) {
      if (err instanceof NoSuchKey || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) throw new BackupError(`${this.url}: backup ${id} has no ${name}`);
      throw err;
    }
  }

  private async keys(prefix: string, delimiter?: string): Promise<{ keys: string[]; folders: string[] }> {
    const keys: string[] = [];
    const folders: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix !== undefined) folders.push(p.Prefix);
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return { keys, folders };
  }

  async ids(): Promise<string[]> {
    const start = this.prefix === '' ? '' : `${this.prefix}/`;
    const { folders } = await this.keys(start, '/');
    return folders
      .map((f) => f.slice(start.length).replace(/\/$/, ''))
      .filter(isBackupId)
      .sort();
  }

  async remove(id: string): Promise<void> {
    checked(id);
    const { keys } = await this.keys(this.key(id));
    for (const key of keys) await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  close(): void {
    this.client.destroy();
  }
}
