/**
 * The checkpoints as the service writes them: configuration, the running service (a timer and a
 * final checkpoint at shutdown), an S3-compatible store (s3rver on loopback), a store that is
 * down, and `agenticpet audit verify --checkpoints` end to end on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import S3rver from 's3rver';
import { v7 as uuidv7 } from 'uuid';
import { issueKey } from '../src/clinical/access/access.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { bodyDigest, CHECKPOINT_FORMAT, checkpointName, parsePublicKeys, parseSigningKey, publicKeyPem, signCheckpoint, verifyCheckpoints, type CheckpointBody } from '../src/storage/checkpoints/checkpoint.js';
import { Checkpointer } from '../src/storage/checkpoints/checkpointer.js';
import { FsCheckpointStore, S3CheckpointStore, CheckpointExistsError, type CheckpointStore } from '../src/storage/checkpoints/stores.js';
import { eventHash, verifyAuditChains } from '../src/storage/sql/audit-chain.js';
import { migrate } from '../src/storage/sql/migrate.js';
import { PgliteExecutor } from '../src/storage/sql/pglite.js';
import { PostgresExecutor } from '../src/storage/sql/postgres.js';
import { SqlClinicalStore } from '../src/storage/sql/store.js';
import { client, startRuntime } from './support/runtime.js';
import { createTestDatabase, pgSkipReason } from './support/services.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), `agenticpet-${prefix}-`));
const SECRET = 'x'.repeat(16) + 'generated-by-secrets-manager-0123456789';

describe('audit checkpoint configuration', () => {
  const refused = (env: Record<string, string>, variable: string) =>
    assert.throws(
      () => loadConfig(env),
      (err: unknown) => err instanceof ConfigError && err.variable === variable,
    );

  it('refuses a bad URL, interval or key file, naming the variable', () => {
    refused({ AGENTICPET_AUDIT_CHECKPOINT_URL: 'ftp://x' }, 'AGENTICPET_AUDIT_CHECKPOINT_URL');
    refused({ AGENTICPET_AUDIT_CHECKPOINT_URL: 's3://Bad_Bucket' }, 'AGENTICPET_AUDIT_CHECKPOINT_URL');
    refused({ AGENTICPET_AUDIT_CHECKPOINT_URL: 'file:///tmp/x', AGENTICPET_AUDIT_CHECKPOINT_SECONDS: '0' }, 'AGENTICPET_AUDIT_CHECKPOINT_SECONDS');
    refused({ AGENTICPET_AUDIT_CHECKPOINT_URL: 'file:///tmp/x', AGENTICPET_AUDIT_SIGNING_KEY_FILE: '/nonexistent/key.pem' }, 'AGENTICPET_AUDIT_SIGNING_KEY_FILE');
    refused({ AGENTICPET_AUDIT_CHECKPOINT_URL: 'file:///tmp/x', AGENTICPET_AUDIT_SIGNING_KEY: SECRET, AGENTICPET_AUDIT_SIGNING_KEY_FILE: '/k' }, 'AGENTICPET_AUDIT_SIGNING_KEY_FILE');
    const config = loadConfig({ AGENTICPET_AUDIT_CHECKPOINT_URL: 's3://audit-bucket/checkpoints', AGENTICPET_S3_ENDPOINT: 'http://127.0.0.1:9000' });
    assert.equal(config.auditCheckpoints?.intervalSeconds, 60);
    assert.equal(config.auditCheckpoints?.s3Endpoint, 'http://127.0.0.1:9000');
  });

  it('the service refuses to start without a signing key, or with one that is not Ed25519', async () => {
    const db = await PgliteExecutor.open();
    try {
      await assert.rejects(startRuntime(db, { AGENTICPET_AUDIT_CHECKPOINT_URL: `file://${tmp('cp')}` }), (err: unknown) => err instanceof ConfigError && err.variable === 'AGENTICPET_AUDIT_SIGNING_KEY');
      const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      await assert.rejects(startRuntime(db, { AGENTICPET_AUDIT_CHECKPOINT_URL: `file://${tmp('cp')}`, AGENTICPET_AUDIT_SIGNING_KEY: rsa }), /AGENTICPET_AUDIT_SIGNING_KEY must be an Ed25519 key/);
      await assert.rejects(startRuntime(db, { AGENTICPET_AUDIT_CHECKPOINT_URL: `file://${tmp('cp')}`, AGENTICPET_AUDIT_SIGNING_KEY: 'short' }), /at least 32 characters/);
    } finally {
      await db.close();
    }
  });

  it('a PEM key and a generated secret both give a stable Ed25519 key', () => {
    const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    assert.equal(parseSigningKey(pem).asymmetricKeyType, 'ed25519');
    assert.equal(publicKeyPem(parseSigningKey(SECRET)), publicKeyPem(parseSigningKey(SECRET)));
  });
});

describe('closed chains in checkpoints', () => {
  const key = generateKeyPairSync('ed25519');
  const H = (c: string) => c.repeat(64);
  /** One writer's checkpoints with the given heads, in order. */
  const run = (heads: CheckpointBody['heads'][]) => {
    const writer = uuidv7();
    let prev: string | null = null;
    return heads.map((h, i) => {
      const body: CheckpointBody = { format: CHECKPOINT_FORMAT, writer, host: 'test:1', seq: i + 1, prev, time: new Date().toISOString(), intervalSeconds: 60, final: i === heads.length - 1, heads: h };
      prev = bodyDigest(body);
      return { name: checkpointName(writer, i + 1), text: JSON.stringify(signCheckpoint(body, key.privateKey)) };
    });
  };
  const [a, b] = [uuidv7(), uuidv7()];

  it('a chain signed closed may leave later checkpoints and stays anchored by the last one naming it', () => {
    const checked = verifyCheckpoints(run([[{ chain: a, seq: 5, hash: H('a'), closed: true }, { chain: b, seq: 1, hash: H('b') }], [{ chain: b, seq: 2, hash: H('c') }]]), key.publicKey);
    assert.equal(checked.ok, true, checked.failure?.reason);
    assert.deepEqual(checked.anchors.get(a), { seq: 5, hash: H('a'), checkpoint: checked.anchors.get(a)!.checkpoint });
    assert.match(checked.anchors.get(a)!.checkpoint, /000000000001\.json/);
    assert.equal(checked.anchors.get(b)!.seq, 2);
  });

  it('an open chain left out, or a closed one that grows or reopens, fails', () => {
    const dropped = verifyCheckpoints(run([[{ chain: a, seq: 5, hash: H('a') }], []]), key.publicKey);
    assert.match(dropped.failure!.reason, /drops chain/);
    const grown = verifyCheckpoints(run([[{ chain: a, seq: 5, hash: H('a'), closed: true }], [{ chain: a, seq: 6, hash: H('b'), closed: true }]]), key.publicKey);
    assert.match(grown.failure!.reason, /grows or reopens/);
    const reopened = verifyCheckpoints(run([[{ chain: a, seq: 5, hash: H('a'), closed: true }], [{ chain: a, seq: 5, hash: H('a') }]]), key.publicKey);
    assert.match(reopened.failure!.reason, /grows or reopens/);
  });
});

describe('rotating the audit signing key', () => {
  const oldKey = generateKeyPairSync('ed25519');
  const newKey = generateKeyPairSync('ed25519');
  const pem = (k: { publicKey: import('node:crypto').KeyObject }) => k.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  /** A writer's sequence of checkpoints, each signed with the key given for its position. */
  const writerRun = (keys: Array<import('node:crypto').KeyObject>) => {
    const writer = uuidv7();
    const chain = uuidv7();
    let prev: string | null = null;
    return keys.map((key, i) => {
      const body: CheckpointBody = { format: CHECKPOINT_FORMAT, writer, host: 'test:1', seq: i + 1, prev, time: new Date().toISOString(), intervalSeconds: 60, final: i === keys.length - 1, heads: [{ chain, seq: i + 1, hash: 'a'.repeat(64) }] };
      prev = bodyDigest(body);
      return { name: checkpointName(writer, i + 1), text: JSON.stringify(signCheckpoint(body, key)) };
    });
  };

  it('verifies checkpoints of writers before and after the rotation against a file holding both public keys', () => {
    const before = writerRun([oldKey.privateKey, oldKey.privateKey]);
    const afterRotation = writerRun([newKey.privateKey, newKey.privateKey, newKey.privateKey]);
    const keys = parsePublicKeys(`${pem(oldKey)}\n${pem(newKey)}`);
    assert.equal(keys.length, 2);
    const checked = verifyCheckpoints([...before, ...afterRotation], keys);
    assert.equal(checked.ok, true, checked.failure?.reason);
    assert.deepEqual(checked.signedBy, [2, 3]);
    assert.equal(checked.anchors.size, 2);
  });

  it('fails, naming the checkpoint, when the retired key is left out of the file', () => {
    const before = writerRun([oldKey.privateKey]);
    const checked = verifyCheckpoints([...writerRun([newKey.privateKey]), ...before], parsePublicKeys(pem(newKey)));
    assert.equal(checked.ok, false);
    assert.equal(checked.failure?.checkpoint, before[0]!.name);
    assert.match(checked.failure!.reason, /does not verify with the public key/);
  });

  it('refuses a writer whose sequence changes key midway, even when both keys are trusted', () => {
    const mixed = writerRun([oldKey.privateKey, newKey.privateKey]);
    const checked = verifyCheckpoints(mixed, parsePublicKeys(pem(oldKey) + pem(newKey)));
    assert.equal(checked.ok, false);
    assert.match(checked.failure!.reason, /signed by another key than the earlier checkpoints of its writer/);
  });

  it('names the unreadable key of a key file', () => {
    const broken = `${pem(oldKey)}-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n`;
    assert.throws(() => parsePublicKeys(broken), /key 2 of 2 is not a readable PEM public key/);
  });
});

describe('the running service checkpoints on a timer and at shutdown', () => {
  it('writes signed checkpoints of what it committed, the last one final, and counts them', async () => {
    const dir = tmp('cp');
    const db = await PgliteExecutor.open();
    const rt = await startRuntime(db, { AGENTICPET_AUDIT_CHECKPOINT_URL: `file://${dir}`, AGENTICPET_AUDIT_SIGNING_KEY: SECRET, AGENTICPET_AUDIT_CHECKPOINT_SECONDS: '1' });
    const clinic = await rt.newClinic();
    const api = client(rt, clinic.key);
    const owner = await api('POST', '/v1/owners', { body: { name: 'Jane Doe' } });
    assert.equal(owner.statusCode, 201);
    // At least one timed checkpoint (1 s interval).
    const writer = rt.runtime.checkpointer!.writer;
    for (let i = 0; i < 50 && !fs.existsSync(path.join(dir, writer)); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(fs.readdirSync(path.join(dir, writer)).length >= 1, 'a checkpoint within the interval');
    assert.equal((await api('GET', `/v1/owners/${owner.json().id}`)).statusCode, 200);
    const metrics = (await api('GET', '/metrics')).body;
    assert.match(metrics, /agenticpet_audit_checkpoints_total\{result="written"\} [1-9]/);
    const store = new FsCheckpointStore(dir);
    // Shutdown writes the final checkpoint after the last request.
    await rt.runtime.close();
    const stored = await store.list();
    const checked = verifyCheckpoints(stored, parseSigningKey(SECRET));
    assert.equal(checked.ok, true, JSON.stringify(checked.failure));
    const last = stored.map((s) => JSON.parse(s.text)).sort((a, b) => b.body.seq - a.body.seq)[0];
    assert.equal(last.body.final, true);
    // Every audited request (the create and the list) is under a signed head.
    assert.ok(last.body.heads.reduce((n: number, h: { seq: number }) => n + h.seq, 0) >= 2);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a store that is down fails no request and does not crash: logged, counted, retried with the same sequence number', async () => {
    const db = await PgliteExecutor.open();
    await migrate(db);
    const store = new SqlClinicalStore(db, 'down-test');
    const key = issueKey();
    const clinic = await store.createClinic('Down', key);
    const ctx = { principal: { clinicId: clinic!.clinicId, keyId: key.id, role: 'admin' as const }, requestId: 'r', sourceIp: null };
    const dir = tmp('cp');
    const real = new FsCheckpointStore(dir);
    let mode: 'down' | 'lost' | 'up' = 'down';
    const flaky: CheckpointStore = {
      url: 'test://flaky',
      create: async (name, text) => {
        if (mode === 'down') throw new Error('connect ECONNREFUSED');
        await real.create(name, text);
        // It landed, but the reply was lost.
        if (mode === 'lost') throw new Error('socket hang up');
      },
      read: (name) => real.read(name),
      list: () => real.list(),
    };
    const errors: string[] = [];
    const checkpointer = new Checkpointer({ store: flaky, signingKey: parseSigningKey(SECRET), heads: () => store.auditHeads(), intervalSeconds: 60, onError: (err, name) => errors.push(`${name}: ${(err as Error).message}`) });
    await store.inClinic(ctx, (tx) => tx.audit({ action: 'read', entityType: 'owner', entityId: uuidv7(), outcome: 'success' }));
    assert.equal(await checkpointer.checkpoint(), false);
    assert.equal(await checkpointer.checkpoint(), false);
    assert.equal(errors.length, 2);
    assert.match(errors[0]!, /000000000001\.json: connect ECONNREFUSED/);
    assert.match(errors[1]!, /000000000001\.json/, 'the same sequence number is retried');
    mode = 'lost';
    assert.equal(await checkpointer.checkpoint(), false);
    mode = 'up';
    // #1 exists (the lost reply): it is read back, and #2 links to it.
    assert.equal(await checkpointer.checkpoint(), true);
    const stored = await real.list();
    assert.deepEqual(stored.map((c) => JSON.parse(c.text).body.seq).sort(), [1, 2]);
    const checked = verifyCheckpoints(stored, parseSigningKey(SECRET));
    assert.equal(checked.ok, true, JSON.stringify(checked.failure));
    assert.equal((await verifyAuditChains(db, checked.anchors)).ok, true);
    await assert.rejects(real.create(stored[0]!.name, 'x'), CheckpointExistsError);
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a connection starts a new chain after the chain length (bounding the head row\'s versions under a long snapshot); a finished chain leaves the heads once a checkpoint signed its last head', async () => {
    const db = await PgliteExecutor.open();
    await migrate(db);
    const store = new SqlClinicalStore(db, 'rotate-test', undefined, 3);
    const key = issueKey();
    const clinic = await store.createClinic('Rotate', key);
    const ctx = { principal: { clinicId: clinic!.clinicId, keyId: key.id, role: 'admin' as const }, requestId: 'r', sourceIp: null };
    const event = () => ({ action: 'read' as const, entityType: 'owner' as const, entityId: uuidv7(), outcome: 'success' as const });
    for (let i = 0; i < 7; i++) await store.inClinic(ctx, (tx) => tx.audit(event()));
    const ours = async () => (await db.query<{ chain_id: string; head_seq: string | number }>('SELECT chain_id, head_seq FROM audit_chains WHERE writer = $1 ORDER BY chain_id', ['rotate-test'])).map((r) => Number(r.head_seq));
    assert.deepEqual(await ours(), [3, 3, 1], 'seven events in three chains of at most three');
    assert.deepEqual(store.auditHeads().map((h) => h.seq), [3, 3, 1], 'every chain is signed until a checkpoint has its last head');
    const dir = tmp('cp');
    const checkpointer = new Checkpointer({ store: new FsCheckpointStore(dir), signingKey: parseSigningKey(SECRET), heads: () => store.auditHeads(), onAnchored: (h) => store.auditAnchored(h), intervalSeconds: 60 });
    assert.equal(await checkpointer.checkpoint(), true);
    assert.deepEqual(store.auditHeads().map((h) => h.seq), [1], 'the two finished chains were signed at their last heads: only the live one is left');
    // A transaction stays on its chain past the length; the next one starts a new chain.
    await store.inClinic(ctx, async (tx) => {
      for (let i = 0; i < 4; i++) await tx.audit(event());
    });
    await store.inClinic(ctx, (tx) => tx.audit(event()));
    assert.deepEqual((await ours()).sort(), [1, 3, 3, 5]);
    assert.deepEqual(store.auditHeads().map((h) => h.seq), [5, 1]);
    assert.equal(await checkpointer.checkpoint(), true);
    assert.deepEqual(store.auditHeads().map((h) => h.seq), [1]);
    const checked = verifyCheckpoints(await new FsCheckpointStore(dir).list(), parseSigningKey(SECRET));
    assert.equal(checked.ok, true, JSON.stringify(checked.failure));
    const verified = await verifyAuditChains(db, checked.anchors);
    assert.equal(verified.ok, true, JSON.stringify(verified));
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('checkpoints in an S3-compatible bucket (s3rver)', () => {
  const BUCKET = 'agenticpet-checkpoints-test';
  let dir: string;
  let server: S3rver;
  let endpoint: string;
  const clientConfig = { region: 'eu-west-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } };

  before(async () => {
    dir = tmp('s3cp');
    server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: BUCKET, configs: [] }] });
    const addr = await server.run();
    endpoint = `http://127.0.0.1:${addr.port}`;
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes, lists and verifies checkpoints under a prefix', async () => {
    const store = new S3CheckpointStore(BUCKET, 'audit/checkpoints', { s3Endpoint: endpoint, s3ClientConfig: clientConfig });
    const heads = [{ chainId: uuidv7(), seq: 3, hash: 'a'.repeat(64) }];
    const checkpointer = new Checkpointer({ store, signingKey: parseSigningKey(SECRET), heads: () => heads, intervalSeconds: 60 });
    assert.equal(await checkpointer.checkpoint(), true);
    heads[0]!.seq = 4;
    heads[0]!.hash = 'b'.repeat(64);
    assert.equal(await checkpointer.checkpoint(), true);
    const stored = await store.list();
    assert.deepEqual(stored.map((s) => s.name).sort(), [`${checkpointer.writer}/000000000001.json`, `${checkpointer.writer}/000000000002.json`]);
    const checked = verifyCheckpoints(stored, parseSigningKey(SECRET));
    assert.equal(checked.ok, true, JSON.stringify(checked.failure));
    assert.deepEqual(checked.anchors.get(heads[0]!.chainId)?.seq, 4);
    store.close();
  });

  it('an unreachable bucket is an error for the caller, not a crash', async () => {
    const store = new S3CheckpointStore(BUCKET, 'x', { s3Endpoint: 'http://127.0.0.1:1', requestTimeoutMs: 500, s3ClientConfig: clientConfig });
    const errors: unknown[] = [];
    const checkpointer = new Checkpointer({ store, signingKey: parseSigningKey(SECRET), heads: () => [], intervalSeconds: 60, onError: (err) => errors.push(err) });
    assert.equal(await checkpointer.stop(), false);
    assert.equal(errors.length, 1);
  });
});

describe('agenticpet audit verify --checkpoints, end to end on PostgreSQL', { skip: pgSkipReason() }, () => {
  const cli = (args: string[], env: Record<string, string>) =>
    new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli.ts'), ...args], { cwd: root, env: { ...process.env, LOG_LEVEL: 'silent', ...env } });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out }));
    });

  it('passes the intact trail and fails a chain rewritten with every hash recomputed', async () => {
    const database = await createTestDatabase();
    const db = new PostgresExecutor({ connectionString: database.url, poolMax: 2 });
    const dir = tmp('clicp');
    try {
      await migrate(db);
      const store = new SqlClinicalStore(db, 'cli-test');
      const key = issueKey();
      const clinic = await store.createClinic('CLI', key);
      const ctx = { principal: { clinicId: clinic!.clinicId, keyId: key.id, role: 'admin' as const }, requestId: 'r', sourceIp: null };
      for (let i = 0; i < 3; i++) await store.inClinic(ctx, (tx) => tx.audit({ action: 'read', entityType: 'owner', entityId: uuidv7(), outcome: 'success' }));
      const checkpointer = new Checkpointer({ store: new FsCheckpointStore(dir), signingKey: parseSigningKey(SECRET), heads: () => store.auditHeads(), intervalSeconds: 60 });
      assert.equal(await checkpointer.stop(), true);
      const pub = path.join(dir, 'audit.pub');
      fs.writeFileSync(pub, publicKeyPem(parseSigningKey(SECRET)));
      const env = { DATABASE_URL: database.url };
      const args = ['audit', 'verify', '--checkpoints', `file://${dir}`, '--public-key', pub];
      let run = await cli(args, env);
      assert.equal(run.code, 0, run.out);
      assert.match(run.out, /Checkpoints valid: 1 from 1 writers, anchoring 1 chains/);
      assert.match(run.out, /1 chains match their signed checkpoint; 0 events are past the last checkpoint/);
      // `audit public-key` prints the same public key from the signing secret.
      run = await cli(['audit', 'public-key'], { ...env, AGENTICPET_AUDIT_CHECKPOINT_URL: `file://${dir}`, AGENTICPET_AUDIT_SIGNING_KEY: SECRET });
      assert.equal(run.out, fs.readFileSync(pub, 'utf8'));
      // The last event rewritten, its hash recomputed and the head with it: only the checkpoint knows.
      const [last] = await db.query<{ id: string; chain_id: string; prev_hash: string }>('SELECT id, chain_id, prev_hash FROM audit_events ORDER BY seq DESC LIMIT 1');
      await db.query("UPDATE audit_events SET outcome = 'denied' WHERE id = $1", [last!.id]);
      const [row] = await db.query<Record<string, unknown>>('SELECT * FROM audit_events WHERE id = $1', [last!.id]);
      const r = row as { chain_id: string; seq: string; id: string; occurred_at: Date; clinic_id: string; principal_id: string | null; role: string | null; action: string; entity_type: string; entity_id: string | null; outcome: string; request_id: string | null; source_ip: string | null; detail: Record<string, unknown> | null };
      const hash = eventHash(last!.prev_hash, { chainId: r.chain_id, seq: Number(r.seq), id: r.id, occurredAt: r.occurred_at, clinicId: r.clinic_id, principalId: r.principal_id, role: r.role, action: r.action, entityType: r.entity_type, entityId: r.entity_id, outcome: r.outcome, requestId: r.request_id, sourceIp: r.source_ip, detail: r.detail });
      await db.query('UPDATE audit_events SET hash = $2 WHERE id = $1', [last!.id, hash]);
      await db.query('UPDATE audit_chains SET head_hash = $2 WHERE chain_id = $1', [last!.chain_id, hash]);
      assert.equal((await cli(['audit', 'verify'], env)).code, 0, 'consistent in itself');
      run = await cli(args, env);
      assert.equal(run.code, 1, run.out);
      assert.match(run.out, /Audit trail BROKEN at chain .*the chain was rewritten/);
      // Asked for checkpoints without the key: a usage error.
      run = await cli(['audit', 'verify', '--checkpoints', `file://${dir}`], env);
      assert.equal(run.code, 2, run.out);
    } finally {
      await db.close();
      await database.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
