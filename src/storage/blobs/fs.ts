import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { StorageUnavailableError } from '../../clinical/errors.js';
import type { BlobStore } from '../../clinical/ports.js';

const SHA256 = /^[0-9a-f]{64}$/;
const UUID = /^[0-9a-f-]{36}$/;

/** Content-addressed files under <root>/<clinic>/<aa>/<sha256>; written to a temp file, then renamed. */
export class FsBlobStore implements BlobStore {
  constructor(private readonly root: string) {}

  private pathOf(clinicId: string, sha256: string): string {
    if (!SHA256.test(sha256) || !UUID.test(clinicId)) throw new Error('invalid blob address');
    return path.join(this.root, clinicId, sha256.slice(0, 2), sha256);
  }

  async put(clinicId: string, sha256: string, bytes: Buffer): Promise<void> {
    const target = this.pathOf(clinicId, sha256);
    try {
      await fs.access(target);
      return;
    } catch {
      /* not stored yet */
    }
    const tmp = `${target}.${randomUUID()}.tmp`;
    try {
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.writeFile(tmp, bytes, { mode: 0o600 });
      await fs.rename(tmp, target);
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw new StorageUnavailableError('The media store could not be written', err);
    }
  }

  async get(clinicId: string, sha256: string): Promise<Buffer | null> {
    try {
      return await fs.readFile(this.pathOf(clinicId, sha256));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StorageUnavailableError('The media store could not be read', err);
    }
  }
}
