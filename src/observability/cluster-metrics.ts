/**
 * Metrics across the workers of `serve --workers N`. Each worker keeps its own registry; a
 * scrape of /metrics (or /ops) on any worker asks the primary, which collects every worker's
 * metrics as JSON and hands them back, and prom-client's AggregatorRegistry merges them
 * (counters and histograms summed, gauges by each metric's aggregator). A scrape therefore
 * sees the whole host whichever worker answered it.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>;

const REQUEST = 'agenticpet:metrics-request';
const COLLECT = 'agenticpet:metrics-collect';
const PART = 'agenticpet:metrics-part';
const RESULT = 'agenticpet:metrics-result';

interface Message {
  type: string;
  id: number;
  metrics?: MetricsJson;
  parts?: MetricsJson[];
}

const isMessage = (m: unknown): m is Message => typeof m === 'object' && m !== null && typeof (m as Message).type === 'string' && typeof (m as Message).id === 'number';

/**
 * In a worker: answers the primary's collection requests with this registry, and returns a
 * function giving the host-wide registry. Outside a cluster it returns the registry itself.
 */
export function clusterRegistry(registry: Registry, timeoutMs = 2_000): () => Promise<Registry> {
  if (!cluster.isWorker || process.send === undefined) return async () => registry;
  const send = process.send.bind(process);
  const pending = new Map<number, (parts: MetricsJson[]) => void>();
  let next = 0;
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return;
    if (m.type === COLLECT) {
      void registry.getMetricsAsJSON().then((metrics) => send({ type: PART, id: m.id, metrics } satisfies Message));
    } else if (m.type === RESULT) {
      pending.get(m.id)?.(m.parts ?? []);
      pending.delete(m.id);
    }
  });
  return () =>
    new Promise<Registry>((resolve) => {
      const id = next++;
      // Without an answer in time (primary busy or gone), this worker's own figures are served.
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve(registry);
      }, timeoutMs);
      pending.set(id, (parts) => {
        clearTimeout(timer);
        resolve(parts.length === 0 ? registry : AggregatorRegistry.aggregate(parts));
      });
      send({ type: REQUEST, id } satisfies Message);
    });
}

/** In the primary: gathers every worker's metrics for the worker that asked. */
export function relayClusterMetrics(timeoutMs = 1_500): void {
  let next = 0;
  const collecting = new Map<number, { parts: MetricsJson[]; expected: number; finish: () => void }>();
  cluster.on('message', (worker, m: unknown) => {
    if (!isMessage(m)) return;
    if (m.type === REQUEST) {
      const id = next++;
      const workers = Object.values(cluster.workers ?? {}).filter((w) => w?.isConnected());
      const entry = {
        parts: [] as MetricsJson[],
        expected: workers.length,
        finish: () => {
          clearTimeout(timer);
          collecting.delete(id);
          if (worker.isConnected()) worker.send({ type: RESULT, id: m.id, parts: entry.parts } satisfies Message);
        },
      };
      const timer = setTimeout(entry.finish, timeoutMs);
      collecting.set(id, entry);
      for (const w of workers) w!.send({ type: COLLECT, id } satisfies Message);
    } else if (m.type === PART && m.metrics !== undefined) {
      const entry = collecting.get(m.id);
      if (entry === undefined) return;
      entry.parts.push(m.metrics);
      if (entry.parts.length >= entry.expected) entry.finish();
    }
  });
}
