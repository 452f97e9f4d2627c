/**
 * The boundaries of ../shared/DESIGN.md §3, checked on every source file's imports: the domain
 * and the agents stay free of HTTP, storage, observability and drivers; the agents are pure;
 * only the composition roots know which adapters exist.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

interface Import {
  file: string;
  /** A path under src/ for a relative import, else the package name. */
  target: string;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): Import[] {
  const text = fs.readFileSync(file, 'utf8');
  const rel = path.relative(src, file);
  return [...text.matchAll(IMPORT)].map((m) => {
    const spec = (m[1] ?? m[2])!;
    const target = spec.startsWith('.') ? path.relative(src, path.resolve(path.dirname(file), spec)) : spec;
    return { file: rel, target };
  });
}

const all = sources(src).flatMap(importsOf);
const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
const DRIVERS = /^(pg|pg-protocol|ioredis|@electric-sql\/pglite|fastify|@fastify\/.*|@aws-sdk\/.*|prom-client|pino|@opentelemetry\/sdk-.*|sharp)$/;

function violations(from: string[], forbidden: (target: string) => boolean): string[] {
  return all.filter((i) => from.some((d) => under(i.file, d)) && forbidden(i.target)).map((i) => `${i.file} imports ${i.target}`);
}

describe('layout (DESIGN.md §3)', () => {
  it('reads the imports of every source file', () => {
    // A parser that found nothing would make every rule below pass.
    assert.ok(all.length > 200, `only ${all.length} imports found`);
    assert.ok(all.some((i) => i.file === 'app.ts' && i.target === 'storage/sql/store.js'));
  });

  it('clinical/, contract/ and agents/ never import http/, storage/, observability/ or a driver', () => {
    assert.deepEqual(
      violations(['clinical', 'contract', 'agents'], (t) => under(t, 'http') || under(t, 'storage') || under(t, 'observability') || DRIVERS.test(t)),
      [],
    );
  });

  it('agents/ import neither clinical/ nor contract/: the orchestrator is given its tracer', () => {
    assert.deepEqual(violations(['agents'], (t) => under(t, 'clinical') || under(t, 'contract')), []);
  });

  it('http/ never reaches storage: it calls services', () => {
    assert.deepEqual(violations(['http'], (t) => under(t, 'storage') || /^(pg|ioredis|@electric-sql\/pglite)$/.test(t)), []);
  });

  it('only imaging/ imports sharp, and only the composition roots import imaging/', () => {
    assert.deepEqual(all.filter((i) => i.target === 'sharp' && !under(i.file, 'imaging')).map((i) => `${i.file} imports sharp`), []);
    const roots = ['app.ts', 'cli.ts', 'cluster.ts'];
    assert.deepEqual(
      all.filter((i) => under(i.target, 'imaging') && !under(i.file, 'imaging') && !roots.includes(i.file)).map((i) => `${i.file} imports ${i.target}`),
      [],
    );
    assert.ok(all.some((i) => i.file === 'imaging/sharp-decoder.ts' && i.target === 'sharp'), 'the adapter is where sharp is');
  });

  it('only the composition roots (app.ts, cli.ts, cluster.ts) import a storage adapter', () => {
    const roots = ['app.ts', 'cli.ts', 'cluster.ts'];
    assert.deepEqual(
      all.filter((i) => under(i.target, 'storage') && !under(i.file, 'storage') && !roots.includes(i.file)).map((i) => `${i.file} imports ${i.target}`),
      [],
    );
  });
});
