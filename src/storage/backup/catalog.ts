/** Listing the backups in a target, and retention: keep the newest N and/or those younger than an age. */
import { backupIdTime, BackupError, parseManifestShape, type Manifest } from './format.js';
import type { BackupTarget } from './targets.js';

export interface ListedBackup {
  id: string;
  startedAt: Date;
  /** null: no readable manifest (still being written, or abandoned by a crash). */
  manifest: Manifest | null;
  problem?: string;
}

/**
 * Every backup folder, oldest first. The manifest is read without the key (its HMAC is checked
 * by verify and restore), so a listing works anywhere the bucket can be read.
 */
export async function listBackups(target: BackupTarget): Promise<ListedBackup[]> {
  const out: ListedBackup[] = [];
  for (const id of await target.ids()) {
    try {
      out.push({ id, startedAt: backupIdTime(id), manifest: parseManifestShape((await target.get(id, 'manifest.json')).toString('utf8'), id) });
    } catch (err) {
      out.push({ id, startedAt: backupIdTime(id), manifest: null, problem: err instanceof Error ? err.message : String(err) });
    }
  }
  return out;
}

/** "30d", "12h", "90m": the age in milliseconds. */
export function parseAge(text: string): number {
  const m = /^(\d+)([dhm])$/.exec(text.trim());
  if (m === null || Number(m[1]) <= 0) throw new BackupError(`--older-than takes an age such as 30d, 12h or 90m, got "${text}"`);
  return Number(m[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'd' | 'h' | 'm'];
}

export interface PruneOptions {
  /** Keep at least the newest N complete backups. */
  keep?: number;
  /** Delete complete backups started longer ago than this, ms. */
  olderThanMs?: number;
  now?: Date;
}

/** A folder without a manifest this old is a backup that died, not one being written. */
const ABANDONED_MS = 24 * 3_600_000;

/**
 * With both limits a backup goes only when it is outside the newest N AND older than the age, so
 * retention never drops below N backups however long none has been taken.
 */
export async function pruneBackups(target: BackupTarget, opts: PruneOptions): Promise<{ deleted: string[]; kept: string[] }> {
  if (opts.keep === undefined && opts.olderThanMs === undefined) throw new BackupError('prune needs --keep N and/or --older-than AGE');
  const now = (opts.now ?? new Date()).getTime();
  const all = await listBackups(target);
  const complete = all.filter((b) => b.manifest !== null).reverse(); // newest first
  const doomed = new Set<string>();
  complete.forEach((b, i) => {
    const beyondKeep = opts.keep === undefined || i >= opts.keep;
    const tooOld = opts.olderThanMs === undefined || now - b.startedAt.getTime() > opts.olderThanMs;
    if (beyondKeep && tooOld) doomed.add(b.id);
  });
  for (const b of all) if (b.manifest === null && now - b.startedAt.getTime() > ABANDONED_MS) doomed.add(b.id);
  for (const id of doomed) await target.remove(id);
  return { deleted: [...doomed].sort(), kept: all.filter((b) => !doomed.has(b.id)).map((b) => b.id) };
}
