/**
 * The backup format: a manifest (manifest.json) and the parts it lists, each a run of rows of one
 * table as newline-delimited JSON (the database's own row_to_json text, never re-serialised, so
 * json, jsonb, bytea, timestamptz and float8 values come back exactly), gzip-compressed and,
 * with a key, sealed with AES-256-GCM. The manifest holds the SHA-256 of every part as stored,
 * so a backup is checked without its key; an encrypted backup's manifest also carries an HMAC,
 * so its counts and checksums cannot be edited to match a tampered part.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { canonicalJson } from '../../clinical/canonical-json.js';

export const FORMAT = 'agenticpet-backup';
export const FORMAT_VERSION = 1;

/** A backup that cannot be taken, read or restored as asked; the message says why. */
export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupError';
  }
}

export interface PartEntry {
  name: string;
  rows: number;
  /** Size as stored (compressed, encrypted). */
  bytes: number;
  sha256: string;
}

export interface TableEntry {
  name: string;
  rows: number;
  parts: PartEntry[];
}

export interface ChainHeadEntry {
  chainId: string;
  seq: number;
  hash: string;
}

export interface SequenceEntry {
  name: string;
  lastValue: string;
  isCalled: boolean;
}

export interface Manifest {
  format: typeof FORMAT;
  formatVersion: number;
  id: string;
  createdAt: string;
  agenticpetVersion: string;
  source: { kind: 'postgres' | 'pglite'; serverVersion: string };
  /** The last migration applied to the source (src/storage/sql/migrate.ts). */
  schemaVersion: number;
  encryption: { algorithm: 'AES-256-GCM'; keyFingerprint: string } | null;
  /** In restore order: a table comes after every table its foreign keys point to. */
  tables: TableEntry[];
  /** audit_chains as of the snapshot: restore checks every chain reaches exactly these heads. */
  auditChains: ChainHeadEntry[];
  sequences: SequenceEntry[];
  /** HMAC-SHA256 of the rest, with a key derived from the backup key; encrypted backups only. */
  mac?: string;
}

const ID = /^\d{8}T\d{9}Z-[0-9a-f]{6}$/;

/** Time-ordered, so a listing sorted by name is sorted by age: 20261207T012418123Z-3f9a0c. */
export function newBackupId(now: Date): string {
  return `${now.toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
}

export function isBackupId(id: string): boolean {
  return ID.test(id);
}

/** When the backup named `id` was started. */
export function backupIdTime(id: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(id)!;
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
}

function derived(key: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `${FORMAT} ${purpose}`, 32));
}

/** Names a key without revealing it, so a restore with the wrong key says so before reading a part. */
export function keyFingerprint(key: Buffer): string {
  return derived(key, 'fingerprint').toString('hex').slice(0, 16);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Compresses (on libuv's thread pool, off the event loop) and, with a key, encrypts one part. The
 * part's path is the GCM associated data, so a part moved to another name or backup does not open.
 */
export async function sealPart(text: string, key: Buffer | undefined, where: string): Promise<Buffer> {
  const packed = await gzip(text, { level: 6 });
  if (key === undefined) return packed;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(where));
  return Buffer.concat([iv, cipher.update(packed), cipher.final(), cipher.getAuthTag()]);
}

export async function openPart(data: Buffer, key: Buffer | undefined, where: string): Promise<string> {
  let packed = data;
  if (key !== undefined) {
    if (data.length < IV_BYTES + TAG_BYTES) throw new BackupError(`part ${where} is too short to be encrypted`);
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES)).setAAD(Buffer.from(where));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    try {
      packed = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new BackupError(`part ${where} does not decrypt with this key: it was altered, or encrypted with another key`);
    }
  }
  return (await gunzip(packed)).toString('utf8');
}

function macOf(manifest: Manifest, key: Buffer): string {
  const { mac: _mac, ...rest } = manifest;
  return createHmac('sha256', derived(key, 'manifest')).update(canonicalJson(rest)).digest('hex');
}

export function manifestText(manifest: Manifest, key: Buffer | undefined): string {
  const sealed = key === undefined ? manifest : { ...manifest, mac: macOf(manifest, key) };
  return `${JSON.stringify(sealed, null, 2)}\n`;
}

/** Parses a manifest and checks its format, not its HMAC (a listing needs no key). */
export function parseManifestShape(text: string, id: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new BackupError(`backup ${id}: manifest.json is not valid JSON (damaged or not a backup)`);
  }
  if (m === null || typeof m !== 'object' || m.format !== FORMAT || !Array.isArray(m.tables) || !Array.isArray(m.auditChains) || typeof m.schemaVersion !== 'number') {
    throw new BackupError(`backup ${id}: manifest.json is not an AgenticPet backup manifest`);
  }
  if (m.formatVersion > FORMAT_VERSION) throw new BackupError(`backup ${id} has format version ${m.formatVersion}; this build reads up to ${FORMAT_VERSION}: use a newer AgenticPet`);
  if (m.id !== id) throw new BackupError(`backup ${id}: its manifest names backup ${m.id} (moved or copied over another)`);
  return m;
}

/** Parses and checks a manifest: its format, and with encryption the key and the HMAC. */
export function parseManifest(text: string, id: string, key: Buffer | undefined): Manifest {
  const m = parseManifestShape(text, id);
  if (m.encryption !== null) {
    if (key === undefined) throw new BackupError(`backup ${id} is encrypted (key ${m.encryption.keyFingerprint}): set AGENTICPET_BACKUP_KEY`);
    if (keyFingerprint(key) !== m.encryption.keyFingerprint) {
      throw new BackupError(`backup ${id} was encrypted with key ${m.encryption.keyFingerprint}, but AGENTICPET_BACKUP_KEY is key ${keyFingerprint(key)}`);
    }
    const expected = Buffer.from(macOf(m, key), 'hex');
    const given = Buffer.from(typeof m.mac === 'string' ? m.mac : '', 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new BackupError(`backup ${id}: the manifest's HMAC does not match: manifest.json was altered`);
  }
  return m;
}
