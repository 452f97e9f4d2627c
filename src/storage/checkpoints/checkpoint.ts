/**
 * Signed audit checkpoints: what anchors the audit hash chains outside the database. Each
 * process (writer) signs, every interval and at shutdown, the heads of the chains it has itself
 * committed, with Ed25519, over a canonical body that also carries its writer id, a sequence
 * number with no gaps, the hash of its previous checkpoint and the time. An administrator who
 * rewrites the database cannot make a signature, so a chain rewritten with recomputed hashes, a
 * truncated chain and a deleted chain all disagree with the last checkpoint that names them.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from '../../clinical/canonical-json.js';
import type { AnchoredHead, ChainHead } from '../sql/audit-chain.js';

export const CHECKPOINT_FORMAT = 'agenticpet-audit-checkpoint/1';

export interface CheckpointBody {
  format: typeof CHECKPOINT_FORMAT;
  /** Unique per process run (a UUIDv7), so a restarted process never reuses a sequence. */
  writer: string;
  /** host:pid, for people reading the files. */
  host: string;
  /** 1, 2, 3, ... per writer, no gaps. */
  seq: number;
  /** sha256 of the previous checkpoint's canonical body; null for seq 1. */
  prev: string | null;
  time: string;
  /** The configured interval, seconds: how stale the last checkpoint of a live writer may be. */
  intervalSeconds: number;
  /** Written at graceful shutdown: no checkpoint of this writer follows. */
  final: boolean;
  /**
   * Every chain this writer committed to, sorted by chain id, until a checkpoint has signed it
   * `closed`: its connection moved on to a new chain and this is its last head, so the next
   * checkpoint may leave it out (and keeps it anchored here).
   */
  heads: { chain: string; seq: number; hash: string; closed?: true }[];
}

export interface SignedCheckpoint {
  body: CheckpointBody;
  /** Ed25519 over canonicalJson(body), base64. */
  signature: string;
}

/** The DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The signing key: a PEM PKCS#8 Ed25519 private key, or a secret of 32+ characters (as Secrets
 * Manager generates) whose SHA-256 is the key's seed. Throws a message a person can act on.
 */
export function parseSigningKey(text: string): KeyObject {
  const trimmed = text.trim();
  let key: KeyObject;
  if (trimmed.startsWith('-----BEGIN')) {
    try {
      key = createPrivateKey(trimmed);
    } catch (err) {
      throw new Error(`is not a readable PEM private key (${(err as Error).message})`);
    }
  } else {
    if (trimmed.length < 32) throw new Error('must be a PEM Ed25519 private key or a secret of at least 32 characters');
    const seed = createHash('sha256').update(trimmed).digest();
    key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`must be an Ed25519 key, got ${key.asymmetricKeyType}`);
  return key;
}

export function parsePublicKey(text: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(text.trim());
  } catch (err) {
    throw new Error(`is not a readable PEM public key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`must be an Ed25519 key, got ${key.asymmetricKeyType}`);
  return key;
}

/**
 * The public keys `audit verify` trusts: one PEM block, or several (during and after a rotation
 * of the signing key, the retired keys beside the current one, for as long as checkpoints they
 * signed are kept).
 */
export function parsePublicKeys(text: string): KeyObject[] {
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g);
  if (blocks === null) return [parsePublicKey(text)];
  return blocks.map((block, i) => {
    try {
      return parsePublicKey(block);
    } catch (err) {
      throw new Error(`key ${i + 1} of ${blocks.length} ${(err as Error).message}`);
    }
  });
}

/** A key's short fingerprint, for people: the first 16 hex digits of the SHA-256 of its SPKI DER. */
export function keyFingerprint(key: KeyObject): string {
  const spki = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return createHash('sha256').update(spki).digest('hex').slice(0, 16);
}

export function publicKeyPem(privateKey: KeyObject): string {
  return createPublicKey(privateKey).export({ format: 'pem', type: 'spki' }).toString();
}

export function bodyDigest(body: CheckpointBody): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

export function signCheckpoint(body: CheckpointBody, key: KeyObject): SignedCheckpoint {
  return { body, signature: sign(null, Buffer.from(canonicalJson(body)), key).toString('base64') };
}

export function sortedHeads(heads: ChainHead[]): CheckpointBody['heads'] {
  return heads.map((h) => (h.closed === true ? { chain: h.chainId, seq: h.seq, hash: h.hash, closed: true as const } : { chain: h.chainId, seq: h.seq, hash: h.hash })).sort((a, b) => (a.chain < b.chain ? -1 : a.chain > b.chain ? 1 : 0));
}

/** A checkpoint as read back from the store: its name there and its bytes. */
export interface StoredCheckpoint {
  name: string;
  text: string;
}

export interface CheckpointVerification {
  ok: boolean;
  checkpoints: number;
  writers: number;
  /** The first checkpoint that does not hold, and why. */
  failure?: { checkpoint: string; reason: string };
  /** Chain id -> the head signed by its writer's latest checkpoint. */
  anchors: Map<string, AnchoredHead>;
  /** What verification alone cannot decide (see the README): stated, not failed. */
  warnings: string[];
  /** Per trusted key (in the order given), how many checkpoints it signed. */
  signedBy: number[];
}

const HEX64 = /^[0-9a-f]{64}$/;

function wellFormed(value: unknown): value is SignedCheckpoint {
  const c = value as SignedCheckpoint;
  const b = c?.body;
  return (
    typeof c?.signature === 'string' &&
    b?.format === CHECKPOINT_FORMAT &&
    typeof b.writer === 'string' &&
    typeof b.host === 'string' &&
    Number.isSafeInteger(b.seq) &&
    b.seq >= 1 &&
    (b.prev === null || (typeof b.prev === 'string' && HEX64.test(b.prev))) &&
    typeof b.time === 'string' &&
    !Number.isNaN(Date.parse(b.time)) &&
    Number.isSafeInteger(b.intervalSeconds) &&
    typeof b.final === 'boolean' &&
    Array.isArray(b.heads) &&
    b.heads.every((h) => typeof h?.chain === 'string' && Number.isSafeInteger(h.seq) && typeof h.hash === 'string' && HEX64.test(h.hash) && (h.closed === undefined || h.closed === true))
  );
}

/** The name a checkpoint must be stored under: `<writer>/<seq, 12 digits>.json`. */
export function checkpointName(writer: string, seq: number): string {
  return `${writer}/${String(seq).padStart(12, '0')}.json`;
}

/**
 * Checks every stored checkpoint: its signature, that its name matches its body (an old
 * checkpoint copied under a newer name is a replay), and, per writer, that the sequence has no
 * gap, each links to the one before, and no chain head goes backwards or changes its hash. The
 * latest checkpoint of each writer then anchors its chains.
 */
export function verifyCheckpoints(stored: StoredCheckpoint[], publicKeys: KeyObject | readonly KeyObject[], now: Date = new Date()): CheckpointVerification {
  const keys: readonly KeyObject[] = Array.isArray(publicKeys) ? publicKeys : [publicKeys as KeyObject];
  const anchors = new Map<string, AnchoredHead>();
  const warnings: string[] = [];
  const signedBy = keys.map(() => 0);
  const byWriter = new Map<string, { name: string; c: SignedCheckpoint; key: number }[]>();
  const fail = (checkpoint: string, reason: string): CheckpointVerification => ({ ok: false, checkpoints: stored.length, writers: byWriter.size, failure: { checkpoint, reason }, anchors, warnings, signedBy });
  for (const { name, text } of stored) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return fail(name, 'is not JSON');
    }
    if (!wellFormed(parsed)) return fail(name, `is not a ${CHECKPOINT_FORMAT} checkpoint`);
    const signed = Buffer.from(canonicalJson(parsed.body));
    const signature = Buffer.from(parsed.signature, 'base64');
    const key = keys.findIndex((k) => verify(null, signed, k, signature));
    if (key < 0) return fail(name, `its signature does not verify with ${keys.length === 1 ? 'the public key' : `any of the ${keys.length} public keys`}: it was altered or signed by another key`);
    signedBy[key]!++;
    const expected = checkpointName(parsed.body.writer, parsed.body.seq);
    if (!name.endsWith(expected)) return fail(name, `is stored under a name that does not match its signed body (${expected}): an old checkpoint re-presented as a newer one`);
    const list = byWriter.get(parsed.body.writer) ?? [];
    // A writer is one process run, which signs with one key: a key is replaced by a restart,
    // so a sequence that changes key midway was not written by the service.
    if (list.length > 0 && list[0]!.key !== key) return fail(name, `is signed by another key than the earlier checkpoints of its writer ${parsed.body.writer}`);
    list.push({ name, c: parsed, key });
    byWriter.set(parsed.body.writer, list);
  }
  for (const [writer, list] of byWriter) {
    list.sort((a, b) => a.c.body.seq - b.c.body.seq);
    if (list[0]!.c.body.seq !== 1) warnings.push(`writer ${writer}: its checkpoints start at #${list[0]!.c.body.seq} (earlier ones expired or were removed; the later ones still anchor its chains)`);
    let previous: { name: string; c: SignedCheckpoint; key: number } | null = null;
    for (const entry of list) {
      const b = entry.c.body;
      if (previous !== null) {
        const p = previous.c.body;
        if (b.seq === p.seq) {
          if (entry.c.signature !== previous.c.signature) return fail(entry.name, `writer ${writer} has two different checkpoints #${b.seq}`);
          continue;
        }
        if (b.seq !== p.seq + 1) return fail(entry.name, `writer ${writer} jumps from checkpoint #${p.seq} to #${b.seq}: checkpoints between them were removed`);
        if (b.prev !== bodyDigest(p)) return fail(entry.name, `does not link to checkpoint #${p.seq} of its writer (prev hash differs): a checkpoint was replaced`);
        if (p.final) return fail(entry.name, `follows the final checkpoint #${p.seq} of its writer`);
        const current = new Map(b.heads.map((h) => [h.chain, h]));
        for (const h of p.heads) {
          const later = current.get(h.chain);
          if (later === undefined) {
            if (h.closed === true) continue;
            return fail(entry.name, `drops chain ${h.chain}, which checkpoint #${p.seq} of its writer signed`);
          }
          if (later.seq < h.seq || (later.seq === h.seq && later.hash !== h.hash)) return fail(entry.name, `chain ${h.chain} goes back from seq ${h.seq} to ${later.seq} (or changes its hash) since checkpoint #${p.seq}`);
          if (h.closed === true && (later.seq !== h.seq || later.closed !== true)) return fail(entry.name, `chain ${h.chain} grows or reopens after checkpoint #${p.seq} signed it closed at seq ${h.seq}`);
        }
      }
      // A chain is anchored by the last checkpoint that names it (a closed one drops out of later ones).
      for (const h of b.heads) anchors.set(h.chain, { seq: h.seq, hash: h.hash, checkpoint: `checkpoint ${entry.name}` });
      previous = entry;
    }
    const last = previous!;
    const b = last.c.body;
    const staleMs = now.getTime() - Date.parse(b.time) - 2 * b.intervalSeconds * 1000;
    if (!b.final && staleMs > 0) {
      warnings.push(
        `writer ${writer} (${b.host}): its latest checkpoint #${b.seq} of ${b.time} is not final and more than two intervals old: the process stopped without a shutdown, or later checkpoints were removed (only the store's retention lock rules that out); events after it are unanchored`,
      );
    }
  }
  return { ok: true, checkpoints: stored.length, writers: byWriter.size, anchors, warnings, signedBy };
}
