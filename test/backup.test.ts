/**
 * The product's backup and restore (src/storage/backup/): real data written through the service,
 * backed up from embedded PGlite and from PostgreSQL, into a directory and into S3 (s3rver on
 * loopback), restored across engines and compared row by row; and the refusals: a tampered
 * part, a wrong key, a non-empty target, a manifest or audit trail that does not add up.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import S3rver from 's3rver';
import { ConfigError, loadConfig, parseBackupKey } from '../src/config.js';
import { listBackups, parseAge, pruneBackups } from '../src/storage/backup/catalog.js';
import { createBackup } from '../src/storage/backup/create.js';
import { BackupError, openPart, sealPart, sha256, type Manifest } from '../src/storage/backup/format.js';
import { restoreBackup, verifyBackup } from '../src/storage/backup/restore.js';
import { dataTables, schemaVersion } from '../src/storage/backup/schema.js';
import { FsBackupTarget, openBackupTarget, type BackupTarget } from '../src/storage/backup/targets.js';
import { verifyAuditChains } from '../src/storage/sql/audit-chain.js';
import type { SqlExecutor } from '../src/storage/sql/executor.js';
import { MIGRATIONS } from '../src/storage/sql/migrate.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { scenePng } from './support/images.js';
import { client, startRuntime, type TestRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason, type TestDatabase } from './support/services.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// A real image: uploads are decoded (the earlier 1 x 1 PNG would now be flagged too small).
const PNG = await scenePng({ mark: 3 });
const BUCKET = 'agenticpet-backup-test';
const VERSION = 'test';
const pgSkip = pgSkipReason();
const tmpDirs: string[] = [];

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-backup-'));
  tmpDirs.push(d);
  return d;
}

after(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Two clinics with every kind of record, through the real HTTP API. */
async function seed(rt: TestRuntime): Promise<string[]> {
  const keys: string[] = [];
  for (const name of ['Clinic Alpha', 'Clinic Bravo']) {
    const { key } = await rt.newClinic(name);
    keys.push(key);
    const call = client(rt, key);
    const created = async (method: string, url: string, opts: Parameters<typeof call>[2], headers: Record<string, string> = {}) => {
      const res = await call(method, url, { ...opts, headers });
      assert.equal(res.statusCode, 201, `${url}: ${res.body}`);
      return res.json().id as string;
    };
    const owner = await created('POST', '/v1/owners', { body: { name: `${name} owner`, email: 'o@example.org' } });
    const patient = await created('POST', '/v1/patients', { body: { name: 'Rex', species: 'dog', breed: 'Labrador', sex: 'male', neutered: true, ownerId: owner, weightKg: 31.7 } });
    const etag = String((await call('GET', `/v1/patients/${patient}`)).headers.etag);
    const patched = await call('PATCH', `/v1/patients/${patient}`, { body: { name: 'Rex II' }, headers: { 'if-match': etag } });
    assert.equal(patched.statusCode, 200, patched.body);
    const encounter = await created('POST', `/v1/patients/${patient}/encounters`, { body: { reason: 'vomiting' } });
    await created('POST', `/v1/encounters/${encounter}/observations`, { body: { category: 'note', code: 'note', value: 'quiet, alert' } });
    const media = await created('POST', `/v1/media?patientId=${patient}&encounterId=${encounter}`, { raw: PNG, contentType: 'image/png' });
    for (let i = 0; i < 3; i++) {
      await created('POST', '/v1/diagnoses', { body: { patientId: patient, encounterId: encounter, complaint: 'vomiting and lethargy for two days, not eating', mediaIds: [media] } }, { 'idempotency-key': `dx-${i}` });
    }
    assert.equal((await call('POST', '/v1/api-keys', { body: { name: 'front desk', role: 'staff' } })).statusCode, 201);
  }
  return keys;
}

/**
 * Every row of every table as PostgreSQL's own record text (a path independent of the backup's
 * row_to_json), in primary-key order, with the time zone pinned: equal texts are equal values.
 */
async function dump(db: SqlExecutor): Promise<Map<string, string[]>> {
  return db.transaction(async (tx) => {
    await tx.exec(`SET LOCAL TimeZone = 'UTC'`);
    const out = new Map<string, string[]>();
    for (const t of await dataTables(tx)) {
      out.set(t.name, (await tx.query<{ r: string }>(`SELECT t::text AS r FROM "${t.name}" t ORDER BY ${t.orderBy}`)).map((r) => r.r));
    }
    return out;
  });
}

async function assertSameRows(a: SqlExecutor, b: SqlExecutor): Promise<void> {
  const [x, y] = [await dump(a), await dump(b)];
  assert.deepEqual([...y.keys()], [...x.keys()]);
  for (const [table, rows] of x) {
    assert.equal(y.get(table)!.length, rows.length, `${table}: row count`);
    rows.forEach((row, i) => assert.equal(y.get(table)![i], row, `${table} row ${i}`));
  }
  // Types whose round trip is most fragile, checked by value as well.
  const probe = `SELECT (SELECT string_agg(encode(key_hash, 'hex'), ',' ORDER BY id) FROM api_keys) AS bytea,
                        (SELECT string_agg(to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), ',' ORDER BY id) FROM clinics) AS micros,
                        (SELECT string_agg(md5(report::text), ',' ORDER BY id) FROM diagnoses) AS json,
                        (SELECT string_agg(weight_kg::text, ',' ORDER BY id) FROM patient_weights) AS float8`;
  assert.deepEqual(await b.query(probe), await a.query(probe));
}

async function assertIntact(db: SqlExecutor, events: number): Promise<void> {
  const v = await verifyAuditChains(db);
  assert.equal(v.ok, true, JSON.stringify(v.failure));
  assert.equal(v.events, events);
}

async function auditEvents(db: SqlExecutor): Promise<number> {
  const [row] = await db.query<{ n: string }>('SELECT count(*) AS n FROM audit_events');
  return Number(row!.n);
}

/** A part rewritten in place, the manifest's checksum and size updated to match (as an attacker with write access could). */
async function rewritePart(dir: string, m: Manifest, table: string, edit: (lines: string[]) => string[]): Promise<void> {
  const part = m.tables.find((t) => t.name === table)!.parts[0]!;
  const file = path.join(dir, m.id, part.name);
  const lines = zlib.gunzipSync(fs.readFileSync(file)).toString('utf8').trimEnd().split('\n');
  const data = zlib.gzipSync(`${edit(lines).join('\n')}\n`);
  fs.writeFileSync(file, data);
  part.sha256 = sha256(data);
  part.bytes = data.length;
  fs.writeFileSync(path.join(dir, m.id, 'manifest.json'), JSON.stringify(m));
}

describe('backup settings', () => {
  it('AGENTICPET_BACKUP_KEY is 32 bytes as hex or base64, refused otherwise by name; AGENTICPET_BACKUP_URL is file:// or s3://', () => {
    const raw = randomBytes(32);
    assert.deepEqual(loadConfig({ AGENTICPET_BACKUP_KEY: raw.toString('hex') }).backup.key, raw);
    assert.deepEqual(loadConfig({ AGENTICPET_BACKUP_KEY: raw.toString('base64') }).backup.key, raw);
    assert.deepEqual(parseBackupKey(raw.toString('base64url')), raw);
    for (const bad of ['short', raw.subarray(0, 31).toString('hex'), randomBytes(33).toString('base64')]) {
      assert.throws(() => loadConfig({ AGENTICPET_BACKUP_KEY: bad }), (err: Error) => err instanceof ConfigError && err.variable === 'AGENTICPET_BACKUP_KEY' && !err.message.includes(bad));
    }
    assert.equal(loadConfig({}).backup.key, undefined);
    assert.throws(() => loadConfig({ AGENTICPET_BACKUP_URL: 'ftp://x/y' }), (err: Error) => err instanceof ConfigError && err.variable === 'AGENTICPET_BACKUP_URL');
    // The S3 endpoint serves a backup bucket without a media bucket.
    assert.equal(loadConfig({ AGENTICPET_BACKUP_URL: 's3://bucket/prefix', AGENTICPET_S3_ENDPOINT: 'http://127.0.0.1:9000' }).backup.s3Endpoint, 'http://127.0.0.1:9000');
    assert.throws(() => loadConfig({ AGENTICPET_BACKUP_URL: 'file:///tmp/b', AGENTICPET_S3_ENDPOINT: 'http://127.0.0.1:9000' }), ConfigError);
  });

  it('--older-than takes days, hours or minutes', () => {
    assert.equal(parseAge('30d'), 30 * 86_400_000);
    assert.equal(parseAge('12h'), 12 * 3_600_000);
    assert.equal(parseAge('90m'), 90 * 60_000);
    for (const bad of ['30', '0d', '-1d', '1w', 'd']) assert.throws(() => parseAge(bad), BackupError);
  });
});

describe('backup and restore, embedded source', () => {
  let source: PgliteExecutor;
  let rt: TestRuntime;
  let events: number;
  let keys: string[];
  /** Empty embedded databases for the restores (opening one takes seconds, so they open together). */
  let fresh: PgliteExecutor;
  let scratch: PgliteExecutor;

  before(async () => {
    [source, fresh, scratch] = await Promise.all([PgliteExecutor.open(), PgliteExecutor.open(), PgliteExecutor.open()]);
    rt = await startRuntime(source);
    keys = await seed(rt);
    events = await auditEvents(source);
    assert.ok(events >= 10);
  });
  after(async () => {
    await rt?.close();
    await scratch?.close();
  });

  it('embedded -> embedded through a directory: the same rows, byte for byte; audit chains verify', async () => {
    const dir = tmpDir();
    const target = new FsBackupTarget(dir);
    const m = await createBackup(source, target, { agenticpetVersion: VERSION, partBytes: 4096, fetchRows: 2 });
    assert.equal(m.schemaVersion, MIGRATIONS.at(-1)!.version);
    assert.equal(m.source.kind, 'pglite');
    assert.equal(m.tables.find((t) => t.name === 'diagnoses')!.rows, 6);
    assert.ok(m.tables.find((t) => t.name === 'diagnosis_provenance')!.parts.length > 1, 'a small partBytes splits a table into several parts');
    assert.equal(m.auditChains.length, (await source.query('SELECT 1 FROM audit_chains')).length);
    // Parents before children.
    const order = m.tables.map((t) => t.name);
    for (const [child, parent] of [['patients', 'owners'], ['owners', 'clinics'], ['diagnoses', 'patients'], ['audit_events', 'audit_chains'], ['diagnosis_evidence', 'diagnoses']] as const) {
      assert.ok(order.indexOf(child) > order.indexOf(parent), `${child} after ${parent}`);
    }
    assert.ok(!order.includes('schema_migrations'));
    assert.equal((await verifyBackup(target, m.id, undefined)).rows, m.tables.reduce((n, t) => n + t.rows, 0));

    const restored = fresh;
    const r = await restoreBackup(target, m.id, restored, undefined).catch(async (err: unknown) => {
      await restored.close();
      throw err;
    });
    assert.equal(r.auditEvents, events);
    assert.equal(r.schemaVersion, MIGRATIONS.at(-1)!.version);
    await assertSameRows(source, restored);
    await assertIntact(restored, events);
    // Not a second time: the target is no longer empty.
    await assert.rejects(restoreBackup(target, m.id, restored, undefined), (err: Error) => err instanceof BackupError && /not empty \(table \w+ has rows\)/.test(err.message));
    // The restored database serves: a clinic's API key from the backup authenticates, its records are there.
    const served = await startRuntime(restored);
    try {
      const res = await client(served, keys[1]!)('GET', '/v1/patients');
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json().items.map((p: { name: string }) => p.name), ['Rex II']);
    } finally {
      await served.close();
    }
  });

  it('a tampered part is refused before anything is written', async () => {
    const dir = tmpDir();
    const target = new FsBackupTarget(dir);
    const m = await createBackup(source, target, { agenticpetVersion: VERSION });
    const last = m.tables.filter((t) => t.parts.length > 0).at(-1)!.parts.at(-1)!;
    const file = path.join(dir, m.id, last.name);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 5]! ^= 0x01;
    fs.writeFileSync(file, bytes);
    await assert.rejects(verifyBackup(target, m.id, undefined), /does not match its SHA-256/);
    await assert.rejects(restoreBackup(target, m.id, scratch, undefined), (err: Error) => err instanceof BackupError && err.message.includes(last.name) && /SHA-256/.test(err.message));
    assert.equal(await schemaVersion(scratch), null, 'not even the schema was created');
  });

  it('an audit trail that does not verify, or counts that do not match, roll the whole restore back', async () => {
    // One event's action changed, its part's checksum recomputed: only the chain walk can tell.
    const dir = tmpDir();
    const m = await createBackup(source, new FsBackupTarget(dir), { agenticpetVersion: VERSION });
    await rewritePart(dir, m, 'audit_events', (lines) => lines.map((l, i) => (i === 2 ? l.replace(/"action":"[^"]+"/, '"action":"tampered.action"') : l)));
    await assert.rejects(restoreBackup(new FsBackupTarget(dir), m.id, scratch, undefined), /audit trail does not verify at chain .*content does not match its hash/);
    assert.equal(await schemaVersion(scratch), null, 'rolled back, schema included');

    // A row dropped from a part, its checksum and the part's count fixed, the table's count not.
    const dir2 = tmpDir();
    const m2 = await createBackup(source, new FsBackupTarget(dir2), { agenticpetVersion: VERSION });
    m2.tables.find((t) => t.name === 'patient_weights')!.parts[0]!.rows -= 1;
    await rewritePart(dir2, m2, 'patient_weights', (lines) => lines.slice(1));
    await assert.rejects(verifyBackup(new FsBackupTarget(dir2), m2.id, undefined), /table patient_weights has \d+ rows in its parts, the manifest says/);
    await assert.rejects(restoreBackup(new FsBackupTarget(dir2), m2.id, scratch, undefined), /table patient_weights has \d+ rows after loading, the manifest says/);
    assert.equal(await schemaVersion(scratch), null);
  });

  it('encrypted: parts are ciphertext, the manifest is authenticated, a missing or wrong key is refused', async () => {
    const dir = tmpDir();
    const target = new FsBackupTarget(dir);
    const key = randomBytes(32);
    const m = await createBackup(source, target, { agenticpetVersion: VERSION, key });
    assert.equal(m.encryption?.algorithm, 'AES-256-GCM');
    const part = m.tables.find((t) => t.name === 'owners')!.parts[0]!;
    const bytes = fs.readFileSync(path.join(dir, m.id, part.name));
    assert.notDeepEqual(bytes.subarray(0, 2), Buffer.from([0x1f, 0x8b]), 'not a plain gzip stream');
    assert.ok(!bytes.toString('latin1').includes('Clinic Alpha owner'));
    await assert.rejects(verifyBackup(target, m.id, undefined), /is encrypted .*set AGENTICPET_BACKUP_KEY/);
    await assert.rejects(verifyBackup(target, m.id, randomBytes(32)), /was encrypted with key [0-9a-f]{16}, but AGENTICPET_BACKUP_KEY is key/);
    await verifyBackup(target, m.id, key);

    // Counts edited in the manifest: its HMAC no longer matches.
    const manifestFile = path.join(dir, m.id, 'manifest.json');
    const original = fs.readFileSync(manifestFile, 'utf8');
    const edited = JSON.parse(original) as Manifest;
    edited.tables[0]!.rows += 1;
    fs.writeFileSync(manifestFile, JSON.stringify(edited));
    await assert.rejects(verifyBackup(target, m.id, key), /HMAC does not match/);
    fs.writeFileSync(manifestFile, original);

    // Into the scratch database, which the refused restores before left empty.
    const r = await restoreBackup(target, m.id, scratch, key);
    assert.equal(r.auditEvents, events);
    await assertSameRows(source, scratch);
    // A part is bound to its name (GCM associated data): moved to another name, it does not open.
    const sealed = await sealPart('{"a":1}\n', key, `${m.id}/owners.00001.ndjson.gz.enc`);
    assert.equal(await openPart(sealed, key, `${m.id}/owners.00001.ndjson.gz.enc`), '{"a":1}\n');
    await assert.rejects(openPart(sealed, key, `${m.id}/patients.00001.ndjson.gz.enc`), /does not decrypt with this key/);
  });

  it('retention: --keep N and --older-than, together never below N; an abandoned folder goes after a day', async () => {
    const dir = tmpDir();
    const target = new FsBackupTarget(dir);
    const day = 86_400_000;
    const base = Date.parse('2026-01-01T00:00:00Z');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await createBackup(source, target, { agenticpetVersion: VERSION, now: () => new Date(base + i * 10 * day) })).id);
    // A backup that died before its manifest: parts only.
    await target.put(`20251201T000000000Z-abcdef`, 'owners.00001.ndjson.gz', Buffer.from('x'));
    const now = new Date(base + 35 * day); // ages 35, 25, 15, 5 days
    assert.equal((await listBackups(target)).filter((b) => b.manifest === null).length, 1);

    let r = await pruneBackups(target, { keep: 3, olderThanMs: 40 * day, now });
    assert.deepEqual(r.deleted, ['20251201T000000000Z-abcdef'], 'nothing complete is both beyond 3 and older than 40 days');
    r = await pruneBackups(target, { olderThanMs: 20 * day, keep: 3, now });
    assert.deepEqual(r.deleted, [ids[0]]);
    r = await pruneBackups(target, { olderThanMs: 1 * day, now });
    assert.deepEqual(r.deleted, ids.slice(1));
    assert.deepEqual(await target.ids(), []);
    for (let i = 0; i < 3; i++) await createBackup(source, target, { agenticpetVersion: VERSION });
    r = await pruneBackups(target, { keep: 1 });
    assert.equal(r.deleted.length, 2);
    assert.equal((await listBackups(target)).length, 1);
    await assert.rejects(pruneBackups(target, {}), /needs --keep N and\/or --older-than/);
  });
});

describe('backup and restore across engines (PostgreSQL)', { skip: pgSkip }, () => {
  let s3: S3rver;
  let s3Endpoint: string;
  let pgSource: TestDatabase;
  let pgExec: PostgresExecutor;
  let rt: TestRuntime;
  let embedded: PgliteExecutor;
  let embeddedRt: TestRuntime;
  let pgKeys: string[];
  const s3Config = { region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } };
  const s3Target = (prefix: string): BackupTarget => openBackupTarget(`s3://${BUCKET}/${prefix}`, { s3Endpoint, s3ClientConfig: s3Config });
  const dbs: TestDatabase[] = [];

  before(async () => {
    s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: tmpDir(), configureBuckets: [{ name: BUCKET, configs: [] }] });
    const addr = await s3.run();
    s3Endpoint = `http://127.0.0.1:${addr.port}`;
    pgSource = await createTestDatabase();
    pgExec = new PostgresExecutor({ connectionString: pgSource.url, poolMax: 4 });
    rt = await startRuntime(pgExec);
    pgKeys = await seed(rt);
    embedded = await PgliteExecutor.open();
    embeddedRt = await startRuntime(embedded);
    await seed(embeddedRt);
  });
  after(async () => {
    await rt?.close();
    await embeddedRt?.close();
    await pgSource?.drop();
    for (const d of dbs) await d.drop();
    await s3?.close();
  });

  it('embedded -> PostgreSQL through S3', async () => {
    const target = s3Target('nightly');
    try {
      const m = await createBackup(embedded, target, { agenticpetVersion: VERSION });
      assert.deepEqual(await target.ids(), [m.id]);
      await verifyBackup(target, m.id, undefined);
      const db = await createTestDatabase();
      dbs.push(db);
      const into = new PostgresExecutor({ connectionString: db.url, poolMax: 2 });
      try {
        await restoreBackup(target, m.id, into, undefined);
        await assertSameRows(embedded, into);
        await assertIntact(into, await auditEvents(embedded));
      } finally {
        await into.close();
      }
      await pruneBackups(target, { keep: 0 });
      assert.deepEqual(await target.ids(), []);
    } finally {
      target.close();
    }
  });

  it('PostgreSQL -> embedded, encrypted, in a directory; the backup reads every clinic despite row-level security', async () => {
    const key = parseBackupKey(randomBytes(32).toString('base64'));
    const target = new FsBackupTarget(tmpDir());
    const m = await createBackup(pgExec, target, { agenticpetVersion: VERSION, key });
    assert.equal(m.source.kind, 'postgres');
    assert.equal(m.tables.find((t) => t.name === 'clinics')!.rows, 2);
    const into = await PgliteExecutor.open();
    try {
      await restoreBackup(target, m.id, into, key);
      await assertSameRows(pgExec, into);
      await assertIntact(into, await auditEvents(pgExec));
    } finally {
      await into.close();
    }
  });

  it('one snapshot while the service writes: what the backup holds is the database of one instant', async () => {
    const call = client(rt, pgKeys[0]!);
    let writing = true;
    let writes = 0;
    const writer = (async () => {
      while (writing) {
        const res = await call('POST', '/v1/owners', { body: { name: `Written during the backup ${writes}` } });
        assert.equal(res.statusCode, 201, res.body);
        writes++;
      }
    })();
    let m: Manifest;
    const target = new FsBackupTarget(tmpDir());
    // A slow store and small parts: the backup takes long enough for many writes to land while it reads.
    const slow: BackupTarget = Object.assign(Object.create(target) as FsBackupTarget, {
      put: async (id: string, name: string, body: Buffer | string) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return target.put(id, name, body);
      },
    });
    const before = writes;
    try {
      m = await createBackup(pgExec, slow, { agenticpetVersion: VERSION, fetchRows: 1, partBytes: 1024 });
    } finally {
      writing = false;
      await writer;
    }
    assert.ok(writes - before >= 5, `only ${writes - before} writes during the backup`);
    const [owners] = await pgExec.query<{ n: string }>('SELECT count(*) AS n FROM owners');
    assert.ok(m.tables.find((t) => t.name === 'owners')!.rows < Number(owners!.n), 'the later writes are not in it');
    // Chain heads are read first and audit_events late: outside one snapshot the events would run past their heads.
    const db = await createTestDatabase();
    dbs.push(db);
    const into = new PostgresExecutor({ connectionString: db.url, poolMax: 2 });
    try {
      const r = await restoreBackup(target, m.id, into, undefined);
      assert.equal(r.auditEvents, m.auditChains.reduce((n, h) => n + h.seq, 0));
    } finally {
      await into.close();
    }
  });

  it('a role that row-level security confines is refused rather than backing up nothing', async () => {
    const role = `backup_ro_${randomBytes(4).toString('hex')}`;
    await pgExec.query(`CREATE ROLE ${role} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
    const url = new URL(pgSource.url);
    url.username = role;
    const confined = new PostgresExecutor({ connectionString: url.toString(), poolMax: 1 });
    try {
      await assert.rejects(createBackup(confined, new FsBackupTarget(tmpDir()), { agenticpetVersion: VERSION }), /connects as backup_ro_\w+, which row-level security confines/);
    } finally {
      await confined.close();
      await pgExec.query(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role}; DROP ROLE ${role}`);
    }
  });

  it('the CLI: create, list, verify, restore --to-database into PostgreSQL, prune', async () => {
    const dir = tmpDir();
    const key = randomBytes(32).toString('hex');
    const env = { DATABASE_URL: pgSource.url, AGENTICPET_BACKUP_URL: `file://${dir}`, AGENTICPET_BACKUP_KEY: key, LOG_LEVEL: 'silent' };
    const created = await cli(['backup', 'create'], env);
    assert.equal(created.code, 0, created.stderr);
    const id = /Backup (\S+) written/.exec(created.stdout)![1]!;
    assert.match(created.stdout, /encrypted \(key [0-9a-f]{16}\)/);
    // It yields the CPU to a service beside it, and lowers the local server process reading the snapshot when it may.
    assert.match(created.stderr, /ran at niceness 19; its database server process \d+ (too|could not be lowered)/);
    const listed = await cli(['backup', 'list'], env);
    assert.match(listed.stdout, new RegExp(`${id} .* postgres  schema ${MIGRATIONS.at(-1)!.version} .*\\(6 diagnoses\\).*encrypted`));
    assert.match((await cli(['backup', 'verify', id], env)).stdout, /is intact: .*every part decrypts/);
    const db = await createTestDatabase();
    dbs.push(db);
    const restored = await cli(['backup', 'restore', id, '--to-database', db.url], env);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /counts match; audit trail intact/);
    const again = await cli(['backup', 'restore', id, '--to-database', db.url], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /backup restore: the target database is not empty/);
    assert.match((await cli(['backup', 'prune', '--keep', '0'], env)).stdout, new RegExp(`Deleted ${id}`));
    const badTarget = await cli(['backup', 'create', '--to', 'ftp://x'], env);
    assert.equal(badTarget.code, 1);
    assert.match(badTarget.stderr, /backup create: backup target ftp:\/\/x must be file:\/\/DIR or s3:\/\/bucket\/prefix/);
    const stray = await cli(['backup', 'create', '--from', dir], env);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /backup create does not take --from/);
    const badNice = await cli(['backup', 'create', '--nice', '25'], env);
    assert.equal(badNice.code, 2);
    assert.match(badNice.stderr, /--nice takes a whole number from 0 to 19, not 25/);
  });
});

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli.ts'), ...args], { cwd: root, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
