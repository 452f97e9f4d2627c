/**
 * CloudWatch Embedded Metric Format: the Registry's metrics as JSON log lines that CloudWatch
 * Logs turns into metrics (for Fargate, where nothing scrapes /metrics).
 *
 * One document per label set: the labels are the document's dimensions (string members at the
 * root, named in `Dimensions`), the metric values are numeric members at the root, each named
 * in `Metrics` with its unit. At most 100 metrics per document, as the specification requires.
 * - Counters are cumulative in Prometheus but summed per period in CloudWatch, so a counter is
 *   emitted as its increase since the previous flush (the whole value on the first flush).
 * - Histograms are emitted as `<name>_count` and `<name>_sum` over the period, plus `<name>_p50`
 *   and `<name>_p99` estimated from the period's bucket counts the way Prometheus's
 *   histogram_quantile does: find the bucket holding the rank, interpolate linearly between its
 *   bounds (the lowest bucket starts at 0; a rank in the +Inf bucket reports the highest finite
 *   bound). No percentiles for a period without observations.
 * - Gauges are emitted as sampled; `_info` gauges (constant 1, metadata in labels) are left out.
 */
import type { Registry } from 'prom-client';

export const EMF_NAMESPACE = 'AgenticPet';
const MAX_METRICS_PER_DOCUMENT = 100;

export type EmfUnit = 'Seconds' | 'Bytes' | 'Count' | 'None';

export interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string; Unit: EmfUnit }> }>;
  };
  [member: string]: unknown;
}

/** Cumulative values seen at the previous flush, by series; lets counters be sent as increases. */
export type EmfSnapshot = Map<string, number>;

/**
 * One metric as Registry.getMetricsAsJSON() returns it. Declared here because prom-client's
 * typings give `type` as a numeric enum while the runtime value is 'counter', 'gauge'...
 */
export interface MetricFamily {
  name: string;
  type: string;
  values: ReadonlyArray<{ value: number; labels: Record<string, string | number | undefined>; metricName?: string }>;
}
type Family = MetricFamily;
type Labels = Record<string, string>;

interface Group {
  labels: Labels;
  metrics: Array<{ name: string; unit: EmfUnit; value: number }>;
}

function unitOf(name: string, fallback: EmfUnit): EmfUnit {
  if (/_seconds(_|$)/.test(name)) return 'Seconds';
  if (/_bytes(_|$)/.test(name)) return 'Bytes';
  return fallback;
}

function labelsOf(raw: Record<string, string | number | undefined>, omit?: string): Labels {
  const out: Labels = {};
  for (const k of Object.keys(raw).sort()) if (k !== omit && raw[k] !== undefined) out[k] = String(raw[k]);
  return out;
}

const keyOf = (labels: Labels) => JSON.stringify(labels);

/** Linear interpolation inside the bucket that holds the rank (Prometheus's histogram_quantile). */
export function quantileFromBuckets(q: number, buckets: ReadonlyArray<{ le: number; count: number }>): number | undefined {
  const total = buckets.length === 0 ? 0 : buckets[buckets.length - 1]!.count;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower;
      const inBucket = b.count - below;
      return inBucket <= 0 ? b.le : lower + (b.le - lower) * ((rank - below) / inBucket);
    }
    if (b.le !== Infinity) lower = b.le;
    below = b.count;
  }
  return lower;
}

/**
 * Turns a Registry's metrics (getMetricsAsJSON()) into EMF documents. Pure: `previous` is not
 * changed; the returned snapshot is the `previous` of the next call.
 */
export function toEmfDocuments(
  families: readonly Family[],
  opts: { namespace?: string; timestamp: number; previous?: EmfSnapshot },
): { documents: EmfDocument[]; snapshot: EmfSnapshot } {
  const previous = opts.previous ?? new Map<string, number>();
  const snapshot: EmfSnapshot = new Map();
  const groups = new Map<string, Group>();
  const add = (labels: Labels, name: string, unit: EmfUnit, value: number) => {
    const key = keyOf(labels);
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = { labels, metrics: [] }));
    g.metrics.push({ name, unit, value });
  };
  const increase = (series: string, value: number) => {
    snapshot.set(series, value);
    const before = previous.get(series);
    // A value below the last one means the process (or the metric) was reset.
    return before === undefined || value < before ? value : value - before;
  };

  for (const f of families) {
    if (f.type === 'counter') {
      for (const v of f.values) {
        const labels = labelsOf(v.labels);
        add(labels, f.name, unitOf(f.name, 'Count'), increase(`${f.name}${keyOf(labels)}`, v.value));
      }
    } else if (f.type === 'gauge') {
      if (f.name.endsWith('_info')) continue;
      for (const v of f.values) if (Number.isFinite(v.value)) add(labelsOf(v.labels), f.name, unitOf(f.name, 'Count'), v.value);
    } else if (f.type === 'histogram') {
      const series = new Map<string, { labels: Labels; buckets: Array<{ le: number; count: number }>; sum: number; count: number }>();
      const seriesOf = (labels: Labels) => {
        const key = keyOf(labels);
        let s = series.get(key);
        if (s === undefined) series.set(key, (s = { labels, buckets: [], sum: 0, count: 0 }));
        return s;
      };
      for (const v of f.values) {
        const labels = labelsOf(v.labels, 'le');
        const id = `${v.metricName ?? f.name}${keyOf(labelsOf(v.labels))}`;
        const delta = increase(id, v.value);
        if (v.metricName === `${f.name}_bucket`) {
          const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
          seriesOf(labels).buckets.push({ le, count: delta });
        } else if (v.metricName === `${f.name}_sum`) seriesOf(labels).sum = delta;
        else if (v.metricName === `${f.name}_count`) seriesOf(labels).count = delta;
      }
      const unit = unitOf(f.name, 'None');
      for (const s of series.values()) {
        add(s.labels, `${f.name}_count`, 'Count', s.count);
        add(s.labels, `${f.name}_sum`, unit, s.sum);
        s.buckets.sort((a, b) => a.le - b.le);
        for (const [q, suffix] of [[0.5, 'p50'], [0.99, 'p99']] as const) {
          const value = quantileFromBuckets(q, s.buckets);
          if (value !== undefined) add(s.labels, `${f.name}_${suffix}`, unit, value);
        }
      }
    }
    // Summaries: none are registered; they would need their own rules.
  }

  const namespace = opts.namespace ?? EMF_NAMESPACE;
  const documents: EmfDocument[] = [];
  for (const g of groups.values()) {
    const dimensions = Object.keys(g.labels);
    for (let i = 0; i < g.metrics.length; i += MAX_METRICS_PER_DOCUMENT) {
      const chunk = g.metrics.slice(i, i + MAX_METRICS_PER_DOCUMENT);
      const doc: EmfDocument = {
        _aws: {
          Timestamp: opts.timestamp,
          CloudWatchMetrics: [{ Namespace: namespace, Dimensions: [dimensions], Metrics: chunk.map((m) => ({ Name: m.name, Unit: m.unit })) }],
        },
        ...g.labels,
      };
      for (const m of chunk) doc[m.name] = m.value;
      documents.push(doc);
    }
  }
  return { documents, snapshot };
}

export interface EmfSinkOptions {
  intervalSeconds: number;
  namespace?: string;
  /** Receives one JSON document per call, without the newline; stdout by default. */
  write?: (line: string) => void;
  now?: () => number;
  /** Told when a flush fails (it never throws out of the timer). */
  onError?: (err: unknown) => void;
}

/** Writes the Registry's metrics as EMF lines every intervalSeconds until stop(). */
export class EmfSink {
  private previous: EmfSnapshot = new Map();
  private timer: NodeJS.Timeout | undefined;
  private readonly write: (line: string) => void;

  constructor(
    private readonly registry: Registry,
    private readonly opts: EmfSinkOptions,
  ) {
    this.write = opts.write ?? ((line) => process.stdout.write(`${line}\n`));
  }

  /** Writes one document per line for the period since the last flush; returns how many. */
  async flush(): Promise<number> {
    const families = (await this.registry.getMetricsAsJSON()) as unknown as Family[];
    const { documents, snapshot } = toEmfDocuments(families, { namespace: this.opts.namespace, timestamp: (this.opts.now ?? Date.now)(), previous: this.previous });
    this.previous = snapshot;
    for (const d of documents) this.write(JSON.stringify(d));
    return documents.length;
  }

  start(): this {
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        this.flush().catch((err: unknown) => this.opts.onError?.(err));
      }, this.opts.intervalSeconds * 1000);
      // The sink never keeps the process alive on its own.
      this.timer.unref();
    }
    return this;
  }

  /** Stops the timer and writes the last period, so a shutdown loses no counts. */
  async stop(): Promise<void> {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush().catch((err: unknown) => this.opts.onError?.(err));
  }
}
