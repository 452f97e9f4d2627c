/** HDR histograms in microseconds, summarized in milliseconds. */
import * as hdr from 'hdr-histogram-js';
import type { LatencySummary } from './jobs.js';

export type Histogram = hdr.Histogram;

export function microsecondHistogram(): Histogram {
  // 1 µs to 10 min at 3 significant digits; resizes itself beyond that.
  return hdr.build({ bitBucketSize: 32, autoResize: true, lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
}

export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)));
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

export function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0, count: 0 };
  return {
    p50: round(h.getValueAtPercentile(50) / 1000),
    p90: round(h.getValueAtPercentile(90) / 1000),
    p99: round(h.getValueAtPercentile(99) / 1000),
    max: round(h.maxValue / 1000),
    mean: round(h.mean / 1000),
    count: h.totalCount,
  };
}
