/**
 * pgBackRest for one drill: a configuration file, repository, log, lock and spool directories
 * all inside the drill's temp dir (so parallel runs and the machine's own pgBackRest, if any,
 * never meet), and the commands the drill needs: stanza-create, backup, info, restore.
 */
import fs from 'node:fs';
import path from 'node:path';
import { postgresOwnedDir, runAsPostgres, type CommandResult, type LocalCluster } from './cluster.js';

export const STANZA = 'agenticpet';

export interface BackupInfo {
  label: string;
  type: string;
  /** Size of the database files the backup covers. */
  databaseBytes: number;
  /** Bytes the backup takes in the repository (compressed). */
  repoBytes: number;
  /** WAL range the backup needs to be consistent. */
  walStart: string;
  walStop: string;
}

interface InfoJson {
  backup?: Array<{ label: string; type: string; info: { size: number; repository: { size: number } }; archive: { start: string; stop: string } }>;
}

export class PgBackRest {
  readonly configFile: string;
  readonly repoDir: string;

  constructor(
    readonly workDir: string,
    private readonly cluster: LocalCluster,
  ) {
    this.configFile = path.join(workDir, 'pgbackrest.conf');
    this.repoDir = path.join(workDir, 'repo');
  }

  /** Writes the configuration; lz4 because on two shared cores it is several times cheaper than gz. */
  configure(): void {
    for (const d of ['repo', 'log', 'lock', 'spool']) postgresOwnedDir(path.join(this.workDir, d));
    const conf = [
      '[global]',
      `repo1-path=${this.repoDir}`,
      'repo1-retention-full=2',
      `log-path=${path.join(this.workDir, 'log')}`,
      `lock-path=${path.join(this.workDir, 'lock')}`,
      `spool-path=${path.join(this.workDir, 'spool')}`,
      'log-level-console=warn',
      'log-level-file=info',
      'compress-type=lz4',
      // An immediate checkpoint at backup start; the default waits for the next spread one (minutes).
      'start-fast=y',
      'process-max=2',
      '',
      `[${STANZA}]`,
      `pg1-path=${this.cluster.dataDir}`,
      `pg1-port=${this.cluster.port}`,
      `pg1-socket-path=${this.cluster.socketDir}`,
      'pg1-user=postgres',
      '',
    ].join('\n');
    fs.writeFileSync(this.configFile, conf, { mode: 0o644 });
  }

  /**
   * The archive_command PostgreSQL runs for every finished WAL segment. `%p` is relative to the
   * data directory, which pgBackRest takes from pg1-path: a cluster restored elsewhere names its own.
   */
  archiveCommand(dataDir?: string): string {
    return `pgbackrest --config=${this.configFile} --stanza=${STANZA}${dataDir === undefined ? '' : ` --pg1-path=${dataDir}`} archive-push %p`;
  }

  private run(args: string[], timeoutMs = 180_000): Promise<CommandResult> {
    return runAsPostgres('pgbackrest', [`--config=${this.configFile}`, `--stanza=${STANZA}`, ...args], { cwd: this.workDir, timeoutMs });
  }

  stanzaCreate(): Promise<CommandResult> {
    return this.run(['stanza-create']);
  }

  backupFull(): Promise<CommandResult> {
    return this.run(['backup', '--type=full']);
  }

  async latestBackup(): Promise<BackupInfo> {
    const { stdout } = await this.run(['info', '--output=json']);
    const stanzas = JSON.parse(stdout) as InfoJson[];
    const last = stanzas[0]?.backup?.at(-1);
    if (last === undefined) throw new Error(`pgbackrest info lists no backup:\n${stdout}`);
    return { label: last.label, type: last.type, databaseBytes: last.info.size, repoBytes: last.info.repository.size, walStart: last.archive.start, walStop: last.archive.stop };
  }

  /** Bytes under the repository's archive (the WAL pushed so far), compressed. */
  archiveBytes(): number {
    const walk = (dir: string): number =>
      fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }).reduce((sum, e) => sum + (e.isDirectory() ? walk(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size), 0) : 0;
    return walk(path.join(this.repoDir, 'archive', STANZA));
  }

  /**
   * Restores the latest backup into `targetDir` (a fresh, empty directory) with recovery to
   * `target` (a PostgreSQL timestamptz literal), promoting once it is reached. pgBackRest
   * writes recovery.signal and the restore_command / recovery_target_time settings itself.
   */
  restoreToTime(targetDir: string, target: string): Promise<CommandResult> {
    postgresOwnedDir(targetDir);
    return this.run([`--pg1-path=${targetDir}`, 'restore', '--type=time', `--target=${target}`, '--target-action=promote']);
  }
}
