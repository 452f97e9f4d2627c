/** The printed table and the JSON file. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Measured } from './jobs.js';

export interface Row {
  mode: string;
  scenario: string;
  /** "saturation" or "<rate>/s". */
  load: string;
  offeredRps: number | null;
  achievedRps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  errors: number;
  /** saturation: req/s ÷ healthz saturation req/s; constant rate: p99 ÷ healthz p99 at the same rate. */
  ratio: number | null;
}

export function rowOf(mode: string, m: Measured, baseline: Measured | undefined): Row {
  let ratio: number | null = null;
  if (baseline !== undefined) {
    if (m.load === 'saturation' && baseline.achievedRps > 0) ratio = m.achievedRps / baseline.achievedRps;
    if (m.load === 'constant' && baseline.latencyMs.p99 > 0 && m.latencyMs.count > 0) ratio = m.latencyMs.p99 / baseline.latencyMs.p99;
  }
  return {
    mode,
    scenario: m.scenario,
    load: m.load === 'saturation' ? 'saturation' : `${m.targetRps}/s`,
    offeredRps: m.offeredRps,
    achievedRps: m.achievedRps,
    p50: m.latencyMs.p50,
    p90: m.latencyMs.p90,
    p99: m.latencyMs.p99,
    max: m.latencyMs.max,
    errors: m.errors.total,
    ratio,
  };
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const ratioText = (r: Row) => {
  if (r.ratio === null) return '-';
  const v = r.ratio >= 100 ? r.ratio.toFixed(0) : r.ratio.toPrecision(3);
  return r.load === 'saturation' ? v : `${v}x`;
};

export function formatTable(rows: Row[]): string {
  const header = ['mode', 'scenario', 'load', 'offered req/s', 'achieved req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'vs healthz'];
  const right = new Set([3, 4, 5, 6, 7, 8, 9, 10]);
  const lines = rows.map((r) => [
    r.mode,
    r.scenario,
    r.load,
    r.offeredRps === null ? '-' : r.offeredRps.toFixed(0),
    r.achievedRps.toFixed(0),
    ms(r.p50),
    ms(r.p90),
    ms(r.p99),
    ms(r.max),
    String(r.errors),
    ratioText(r),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  return [fmt(header), `|${widths.map((w, i) => (right.has(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...lines.map(fmt)].join('\n');
}

/** One line per measurement that needs a remark: errors by kind, and the open loop's pacing. */
export function formatNotes(mode: string, results: Measured[]): string[] {
  const notes: string[] = [];
  for (const m of results) {
    const e = m.errors;
    const parts: string[] = [];
    if (e.total > 0) parts.push(`errors: ${e.non2xx} non-2xx, ${e.timeouts} timeouts/unfinished, ${e.socket} socket, ${e.skipped} flow steps skipped`);
    if (m.pacing !== undefined) {
      const p = m.pacing;
      parts.push(`pacing: dispatch lag p99 ${ms(p.dispatchLagMs.p99)} ms, max ${ms(p.dispatchLagMs.max)} ms, at most ${p.maxPerTick} per tick`);
      const offered = Math.round((m.offeredRps ?? 0) * p.windowSec);
      if (m.offeredRps !== null && m.achievedRps < m.offeredRps * 0.95) parts.push(`fell behind: ${m.completed2xx} of ${offered} answered with 2xx, the last ${(m.elapsedSec - p.windowSec).toFixed(1)} s after dispatching stopped`);
    }
    if (m.flowLatencyMs !== undefined && m.flowLatencyMs.count > 0) parts.push(`whole flow p50 ${ms(m.flowLatencyMs.p50)} ms, p99 ${ms(m.flowLatencyMs.p99)} ms`);
    if (parts.length > 0) notes.push(`${mode} ${m.scenario} ${m.load === 'saturation' ? 'saturation' : `${m.targetRps}/s`}: ${parts.join('; ')}`);
  }
  return notes;
}

export function gitCommit(root: string): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    totalMemoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export function writeJson(root: string, mode: string, startedAt: Date, report: unknown): string {
  const dir = path.join(root, 'bench/results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `bench-${mode}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}
