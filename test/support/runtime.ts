/** Builds the real service on a given executor, for HTTP tests through Fastify's inject(). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { buildRuntime, type Runtime, type RuntimeOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import type { SqlExecutor } from '../../src/storage/sql/executor.js';

export interface TestRuntime {
  runtime: Runtime;
  dataDir: string;
  /** Admin key of a fresh clinic. */
  newClinic(name?: string): Promise<{ clinicId: string; key: string }>;
  close(): Promise<void>;
}

export async function startRuntime(db: SqlExecutor, env: Record<string, string> = {}, opts: RuntimeOptions = {}): Promise<TestRuntime> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agenticpet-test-'));
  // The request budgets are off unless a test sets them (test/rate-limit.test.ts does): the
  // other suites send thousands of requests a minute with one key and test something else.
  const config = loadConfig({
    AGENTICPET_DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    AGENTICPET_KNOWLEDGE_DIR: process.env.AGENTICPET_KNOWLEDGE_DIR ?? '',
    AGENTICPET_RATE_LIMIT_KEY_PER_MIN: '0',
    AGENTICPET_RATE_LIMIT_CLINIC_PER_MIN: '0',
    ...env,
  });
  const runtime = await buildRuntime(config, db, createLogger('silent'), opts);
  return {
    runtime,
    dataDir,
    newClinic: (name = 'Test clinic') => runtime.access.createClinic(name),
    close: async () => {
      await runtime.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface CallOptions {
  headers?: Record<string, string>;
  body?: unknown;
  raw?: Buffer | string;
  contentType?: string;
}

export type Call = (method: string, url: string, opts?: CallOptions) => Promise<LightMyRequestResponse>;

/** A client bound to one API key. */
export function client(rt: TestRuntime, key: string | null): Call {
  return (method, url, opts = {}) => {
    const headers: Record<string, string> = { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...opts.headers };
    let payload: string | Buffer | undefined;
    if (opts.raw !== undefined) {
      payload = opts.raw;
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
    } else if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? 'application/json';
    }
    return rt.runtime.app.inject({ method: method as 'GET', url, headers, ...(payload === undefined ? {} : { payload }) });
  };
}

export type RoleName = 'admin' | 'vet' | 'staff' | 'readonly';

/** A client for each role in one clinic: its admin key, and a key issued by it for each other role. */
export async function callersByRole(rt: TestRuntime, adminKey: string): Promise<{ role: RoleName; call: Call }[]> {
  const admin = client(rt, adminKey);
  const callers: { role: RoleName; call: Call }[] = [{ role: 'admin', call: admin }];
  for (const role of ['vet', 'staff', 'readonly'] as const) {
    const res = await admin('POST', '/v1/api-keys', { body: { name: `key-${role}`, role } });
    if (res.statusCode !== 201) throw new Error(`issuing a ${role} key answered ${res.statusCode}: ${res.body}`);
    callers.push({ role, call: client(rt, (res.json() as { key: string }).key) });
  }
  return callers;
}
