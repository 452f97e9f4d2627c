import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';

// No Docker engine here: parse the Dockerfile and check what the image must be.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const text = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
const dockerfile = DockerfileParser.parse(text);
const instructions = dockerfile.getInstructions();

/** Instructions grouped by stage (split at each FROM), keyed by the stage name. */
const stages = new Map<string, Instruction[]>();
let current: Instruction[] = [];
for (const ins of instructions) {
  if (ins.getKeyword() === 'FROM') {
    current = [ins];
    const name = /\bAS\s+(\S+)\s*$/i.exec(ins.getArgumentsContent() ?? '')?.[1] ?? `stage${stages.size}`;
    stages.set(name, current);
  } else current.push(ins);
}
const lines = text.split('\n');
/** The instruction as written, flags included (getArgumentsContent leaves flags out). */
const raw = (ins: Instruction) => {
  const { start, end } = ins.getRange();
  return lines.slice(start.line, end.line + 1).join('\n');
};
const args = (list: Instruction[], keyword: string) => list.filter((i) => i.getKeyword() === keyword).map((i) => i.getArgumentsContent() ?? '');
const jsonArgs = (ins: Instruction) => (ins as unknown as { getJSONStrings(): { getJSONValue(): string }[] }).getJSONStrings().map((s) => s.getJSONValue());

describe('Dockerfile', () => {
  const build = stages.get('build');
  const runtime = stages.get('runtime');

  it('has no syntax problems the parser reports and a build stage followed by the runtime stage', () => {
    assert.ok(build && runtime, 'stages build and runtime');
    assert.deepEqual([...stages.keys()], ['build', 'runtime'], 'runtime is the last (shipped) stage');
    for (const ins of instructions) assert.ok(/^[A-Z]+$/.test(ins.getKeyword()), `instruction ${ins.getKeyword()} upper case`);
  });

  // Node 20 left LTS on 2026-04-30; 24 is the LTS line with the longest support (to 2028-04-30).
  it('both stages start from the Node 24 LTS slim base', () => {
    const base = dockerfile.getInitialARGs().find((a) => a.getProperty()?.getName() === 'NODE_IMAGE')?.getProperty()?.getValue();
    assert.match(base ?? '', /^node:24(\.\d+)*-[a-z]+-slim$|^node:24-slim$/);
    for (const stage of [build!, runtime!]) assert.match(raw(stage[0]!), /\$\{NODE_IMAGE\}/);
  });

  it('builds on the build platform and leaves the target platform free (linux/arm64 and linux/amd64)', () => {
    assert.match(raw(build![0]!), /^FROM --platform=\$BUILDPLATFORM /);
    assert.doesNotMatch(raw(runtime![0]!), /--platform/, 'runtime stage follows --platform of the build');
    assert.doesNotMatch(text, /FROM\s+--platform=linux\//, 'no stage pinned to one architecture');
  });

  it('the build stage runs npm ci, then the build', () => {
    const runs = args(build!, 'RUN');
    const ci = runs.findIndex((r) => /\bnpm ci\b/.test(r));
    const compile = runs.findIndex((r) => /\bnpm run build\b/.test(r));
    assert.ok(ci >= 0 && compile > ci, 'npm ci before npm run build');
  });

  it('the runtime stage has only production dependencies, dist/ and data/knowledge/', () => {
    const runs = args(runtime!, 'RUN').join('\n');
    assert.match(runs, /npm ci --omit=dev --ignore-scripts/);
    assert.doesNotMatch(runs, /npm (run )?build/);
    const copies = runtime!.filter((i) => i.getKeyword() === 'COPY').map(raw);
    assert.ok(copies.includes('COPY --from=build /app/dist ./dist'), 'dist/ from the build stage');
    assert.ok(copies.includes('COPY data/knowledge ./data/knowledge'), 'the knowledge base');
    assert.ok(copies.includes('COPY src/http/ops ./src/http/ops'), 'the /ops dashboard page, read at start');
    assert.ok(copies.includes('COPY models ./models'), 'the image models, for MODELS_DIR\'s default (in process)');
    assert.ok(!copies.some((c) => /^COPY (\.|src|infra\/?) /.test(c)), 'no source tree or infra/ copied into the runtime image');
  });

  it('the CDK stays out of the runtime image: infra/ declares dev dependencies only', () => {
    const infra = JSON.parse(fs.readFileSync(path.join(root, 'infra/package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    assert.equal(infra.dependencies, undefined);
    assert.ok(infra.devDependencies?.['aws-cdk-lib'], 'aws-cdk-lib is a dev dependency');
    const rootPkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; workspaces: string[] };
    assert.deepEqual(rootPkg.workspaces, ['infra']);
    for (const name of Object.keys(rootPkg.dependencies)) assert.doesNotMatch(name, /cdk|constructs/);
  });

  it('runs as a non-root user', () => {
    const users = args(runtime!, 'USER');
    assert.equal(users.length, 1);
    assert.doesNotMatch(users[0]!, /^(root|0)(:|$)/);
    const userLine = runtime!.findIndex((i) => i.getKeyword() === 'USER');
    const cmdLine = runtime!.findIndex((i) => i.getKeyword() === 'CMD');
    assert.ok(userLine < cmdLine, 'USER before CMD');
  });

  it('HEALTHCHECK probes /healthz with node (the slim image has no curl)', () => {
    const [hc] = args(runtime!, 'HEALTHCHECK');
    assert.ok(hc, 'HEALTHCHECK present');
    assert.match(hc, /CMD \["node", "-e", .*\/healthz/);
  });

  it('CMD is the exec form ["node", <V8 flags>, "dist/cli.js","serve"] so SIGTERM reaches Node, with no shell ENTRYPOINT', () => {
    const cmds = runtime!.filter((i) => i.getKeyword() === 'CMD');
    assert.equal(cmds.length, 1);
    const cmd = jsonArgs(cmds[0]!);
    // Node's own flags may sit between node and the script (which ones: test/units.test.ts).
    assert.equal(cmd[0], 'node');
    assert.deepEqual(cmd.slice(-2), ['dist/cli.js', 'serve']);
    assert.ok(cmd.slice(1, -2).every((a) => a.startsWith('--')), `only node flags before the script: ${cmd.join(' ')}`);
    assert.equal(runtime!.filter((i) => i.getKeyword() === 'ENTRYPOINT').length, 0);
    assert.deepEqual(args(runtime!, 'STOPSIGNAL'), ['SIGTERM']);
  });

  it('.dockerignore keeps node_modules, local data and the CDK app out of the build context', () => {
    const ignore = fs.readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const entry of ['**/node_modules', 'dist', '.git', 'data/*', '!data/knowledge', 'infra/*', '!infra/package.json', '.env']) assert.ok(ignore.includes(entry), `.dockerignore has ${entry}`);
  });
});

// deploy/model-server.Dockerfile: one model version per image, for its own ECR repository and service.
describe('deploy/model-server.Dockerfile', () => {
  const text = fs.readFileSync(path.join(root, 'deploy/model-server.Dockerfile'), 'utf8');
  const file = DockerfileParser.parse(text);
  const all = file.getInstructions();
  const rawOf = (ins: Instruction) => {
    const { start, end } = ins.getRange();
    return text.split('\n').slice(start.line, end.line + 1).join('\n');
  };
  const froms = all.filter((i) => i.getKeyword() === 'FROM');
  const runtimeAt = all.indexOf(froms[1]!);
  const runtime = all.slice(runtimeAt);

  it('builds on the build platform, runtime on the target (linux/arm64 for Fargate), from the Node 24 slim base', () => {
    assert.equal(froms.length, 2);
    assert.match(rawOf(froms[0]!), /^FROM --platform=\$BUILDPLATFORM \$\{NODE_IMAGE\} AS build$/);
    assert.match(rawOf(froms[1]!), /^FROM \$\{NODE_IMAGE\} AS runtime$/);
    const base = file.getInitialARGs().find((a) => a.getProperty()?.getName() === 'NODE_IMAGE')?.getProperty()?.getValue();
    assert.match(base ?? '', /^node:24(\.\d+)*-[a-z]+-slim$/);
    assert.match(text, /--platform linux\/arm64/, 'the documented build targets the Fargate platform');
  });

  it('production dependencies without install scripts; the package ships onnxruntime-node binaries for linux/arm64', () => {
    const runs = args(runtime, 'RUN').join('\n');
    assert.match(runs, /npm ci --omit=dev --ignore-scripts/);
    assert.match(runs, /onnxruntime-node\/bin\/napi-v6\/linux\/\$\(node -p "process.arch"\)\/onnxruntime_binding\.node/);
    assert.match(runs, /find node_modules\/onnxruntime-node\/bin\/napi-v6 .*! -path "\*\/linux\/\$\(node -p "process.arch"\)" -exec rm -rf/, 'other platforms\' binaries pruned');
    for (const arch of ['arm64', 'x64']) {
      assert.ok(fs.existsSync(path.join(root, 'node_modules/onnxruntime-node/bin/napi-v6/linux', arch, 'onnxruntime_binding.node')), `onnxruntime-node has linux/${arch}`);
    }
    assert.ok(runtime.filter((i) => i.getKeyword() === 'COPY').map(rawOf).includes('COPY package.json package-lock.json .npmrc ./'), '.npmrc in the context (onnxruntime-node-install=skip)');
  });

  it('bakes exactly one model version in, checked against its card at build time', () => {
    const copies = runtime.filter((i) => i.getKeyword() === 'COPY').map(rawOf);
    assert.ok(copies.includes('COPY models/${MODEL}/${MODEL_VERSION} ./models/${MODEL}/${MODEL_VERSION}'));
    assert.ok(!copies.some((c) => /^COPY models \.\/models$/.test(c)), 'not every model');
    assert.match(args(runtime, 'RUN').join('\n'), /test -n "\$MODEL" && test -n "\$MODEL_VERSION"/);
    assert.match(args(runtime, 'RUN').join('\n'), /sha256.*card\.json/);
  });

  it('runs `model-server` as a non-root user in exec form, with a readiness HEALTHCHECK', () => {
    assert.deepEqual(args(runtime, 'USER'), ['node']);
    const cmds = runtime.filter((i) => i.getKeyword() === 'CMD');
    assert.equal(cmds.length, 1);
    assert.deepEqual(jsonArgs(cmds[0]!), ['node', 'dist/cli.js', 'model-server', '--port', '8080']);
    assert.match(args(runtime, 'HEALTHCHECK')[0] ?? '', /\/v2\/health\/ready/);
    assert.deepEqual(args(runtime, 'STOPSIGNAL'), ['SIGTERM']);
  });
});
