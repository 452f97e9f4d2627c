/** `agenticpet models ...` as a user runs it: real processes on an embedded database. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const e: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'silent', ...env };
    delete e.DATABASE_URL;
    delete e.REDIS_URL;
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli.ts'), ...args], { cwd: root, env: e });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('agenticpet models', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-models-cli-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('registers with the artefact hash, activates, canaries, rolls back and lists, as an admin key, audited', async () => {
    const env = { AGENTICPET_DATA_DIR: dir };
    const created = await run(['clinics', 'create', '--name', 'CLI clinic'], env);
    assert.equal(created.code, 0, created.stderr);
    const key = created.stdout.trim().split('\n').at(-1)!;
    const asAdmin = { ...env, AGENTICPET_API_KEY: key };
    assert.equal((await run(['models', 'list'], env)).code, 2, 'no key: a usage error');
    const spec = (version: string) => {
      const file = path.join(dir, `spec-${version}.json`);
      fs.writeFileSync(file, JSON.stringify({ name: 'image-kind', version, input: { name: 'image', width: 8, height: 8, channels: 1, layout: 'NCHW', mean: [0.5], std: [0.25] }, output: { activation: 'softmax' }, labels: [{ label: 'radiograph', finding: null, threshold: 0.5, weight: 0 }, { label: 'photograph', finding: null, threshold: 0.5, weight: 0 }] }));
      return file;
    };
    const artefact = path.join(dir, 'model.onnx');
    fs.writeFileSync(artefact, 'not really a model');
    const reg = await run(['models', 'register', '--file', spec('0.1.0'), '--artefact', artefact], asAdmin);
    assert.equal(reg.code, 0, reg.stderr);
    assert.match(reg.stdout, /Registered image-kind@0\.1\.0 {2}registered {2}sha256 29a6a9f1/);
    assert.equal((await run(['models', 'register', '--file', spec('0.2.0'), '--artefact', artefact], asAdmin)).code, 0);
    assert.equal((await run(['models', 'activate', 'image-kind', '0.1.0'], asAdmin)).code, 0);
    assert.equal((await run(['models', 'activate', 'image-kind', '0.2.0'], asAdmin)).code, 0);
    const canary = await run(['models', 'canary', 'image-kind', '0.2.0', '--share', '0.2'], asAdmin);
    assert.equal(canary.code, 1, 'the active version cannot be its own canary');
    assert.match(canary.stderr, /is the active version/);
    const back = await run(['models', 'rollback', 'image-kind'], asAdmin);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /active: image-kind@0\.1\.0 {2}active/);
    const list = await run(['models', 'list'], asAdmin);
    assert.deepEqual(list.stdout.trim().split('\n').map((l) => l.split('  ').slice(0, 2).join(' ')), ['image-kind@0.1.0 active', 'image-kind@0.2.0 retired']);
    const verify = await run(['audit', 'verify'], env);
    assert.equal(verify.code, 0, verify.stderr);
  });
});
