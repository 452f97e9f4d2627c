/**
 * Aurora Standard against I/O-Optimized for this workload: the arithmetic behind
 * `auroraStorageType` in lib/config.ts, written out in docs/capacity.md ("Aurora storage
 * configuration"); a test re-derives the document's figures and each environment's choice from
 * here. No CDK imports: plain numbers.
 *
 * Standard bills instance hours, storage and every I/O request; I/O-Optimized bills no I/O but
 * about 30 % more per instance hour and 2.25 times as much storage. AWS's rule of thumb: it pays
 * off once I/O is more than about 25 % of the Aurora bill. Sources and which figures are
 * estimates: docs/capacity.md.
 */

/** Bytes the service sends to PostgreSQL per diagnosis (`bench/bytes-per-diagnosis.ts`, README). */
export const BYTES_TO_POSTGRES_PER_DIAGNOSIS = 12_385;
/** Aurora counts write I/Os in 4 KB units of log; small concurrent log records are batched into one. */
export const WRITE_IO_UNIT_BYTES = 4096;
/** Seconds in the 730-hour month of docs/capacity.md. */
export const SECONDS_PER_MONTH = 730 * 3600;
export const HOURS_PER_MONTH = 730;

/**
 * I/Os per diagnosis, two bounds. Assumption (not measured on Aurora): the write-ahead log a
 * diagnosis generates is about the bytes sent (lz4 on the large columns roughly offsets tuple
 * headers, the four audit indexes and the chain-head update). Low: the log packed into 4 KB units
 * by batching (group commit), no read I/O (the rows a diagnosis reads are hot in the buffer
 * cache). High: its log flushed alone (rounded up to whole units) plus one 8 KB page read from
 * storage.
 */
export const IOS_PER_DIAGNOSIS = {
  low: BYTES_TO_POSTGRES_PER_DIAGNOSIS / WRITE_IO_UNIT_BYTES,
  high: Math.ceil(BYTES_TO_POSTGRES_PER_DIAGNOSIS / WRITE_IO_UNIT_BYTES) + 1,
} as const;

/** Unit prices (USD, eu-west-1 estimates, see docs/capacity.md "Unit prices"). */
export const AURORA_PRICES = {
  ioPerMillion: 0.2,
  standardStorageGbMonth: 0.11,
  ioOptimizedStorageGbMonth: 0.248,
  ioOptimizedInstanceFactor: 1.3,
} as const;

/** Aurora PostgreSQL Standard on-demand instance hours (estimates, docs/capacity.md). */
export const INSTANCE_HOURLY: Readonly<Record<string, number>> = {
  'r7g.large': 0.306,
  'r7g.xlarge': 0.612,
  'r7g.2xlarge': 1.224,
};

export interface AuroraWorkload {
  readonly instanceClass: string;
  /** Writer plus readers. */
  readonly instances: number;
  readonly storageGb: number;
  /** Diagnoses per second averaged over the month (the bill follows the average, not the peak). */
  readonly diagnosesPerSecond: number;
  readonly iosPerDiagnosis: number;
}

export interface AuroraMonthlyCost {
  readonly standard: { readonly instances: number; readonly storage: number; readonly io: number; readonly total: number };
  readonly ioOptimized: { readonly instances: number; readonly storage: number; readonly total: number };
  /** I/O as a share of the Standard bill: the figure AWS's 25 % rule looks at. */
  readonly ioShare: number;
}

function hourly(instanceClass: string): number {
  const price = INSTANCE_HOURLY[instanceClass];
  if (price === undefined) throw new Error(`no instance price for ${instanceClass}`);
  return price;
}

export function auroraMonthlyCost(w: AuroraWorkload): AuroraMonthlyCost {
  const instances = w.instances * hourly(w.instanceClass) * HOURS_PER_MONTH;
  const ios = w.diagnosesPerSecond * w.iosPerDiagnosis * SECONDS_PER_MONTH;
  const io = (ios / 1e6) * AURORA_PRICES.ioPerMillion;
  const storage = w.storageGb * AURORA_PRICES.standardStorageGbMonth;
  const standard = { instances, storage, io, total: instances + storage + io };
  const opt = { instances: instances * AURORA_PRICES.ioOptimizedInstanceFactor, storage: w.storageGb * AURORA_PRICES.ioOptimizedStorageGbMonth };
  return { standard, ioOptimized: { ...opt, total: opt.instances + opt.storage }, ioShare: io / standard.total };
}

/** Monthly-average diagnoses per second above which I/O-Optimized costs less than Standard. */
export function breakEvenDiagnosesPerSecond(w: Omit<AuroraWorkload, 'diagnosesPerSecond'>): number {
  const idle = auroraMonthlyCost({ ...w, diagnosesPerSecond: 0 });
  const premium = idle.ioOptimized.total - idle.standard.total;
  const ioCostPerDiagnosisPerSecond = (w.iosPerDiagnosis * SECONDS_PER_MONTH * AURORA_PRICES.ioPerMillion) / 1e6;
  return premium / ioCostPerDiagnosisPerSecond;
}

export function cheaperStorageType(w: AuroraWorkload): 'aurora' | 'aurora-iopt1' {
  const c = auroraMonthlyCost(w);
  return c.ioOptimized.total < c.standard.total ? 'aurora-iopt1' : 'aurora';
}

/**
 * The workload each environment's choice is checked against (docs/capacity.md). prod: the design
 * load of 100,000 requests per minute (1,667 diagnoses/s, flat, as in the cost model) on the
 * writer + reader class the cost model sizes for it; dev: an assumed monthly average of 5
 * diagnoses/s (tests and demos) on its deployed class. Storage as in the cost model.
 */
export const STORAGE_DECISION_WORKLOADS = {
  dev: { instanceClass: 'r7g.large', instances: 2, storageGb: 20, diagnosesPerSecond: 5 },
  prod: { instanceClass: 'r7g.2xlarge', instances: 2, storageGb: 200, diagnosesPerSecond: 100_000 / 60 },
} as const satisfies Record<string, Omit<AuroraWorkload, 'iosPerDiagnosis'>>;
