/**
 * The CloudWatch dashboard charts the app's EMF metrics by name and dimension set
 * (infra/lib/app-metrics.ts). CloudWatch shows nothing for a name or a dimension set that no
 * document carries, so each charted series is checked here against the EMF documents the
 * service's own metrics produce once the events behind them have happened.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { APP_EMF_SERIES, APP_METRICS_NAMESPACE, searchExpression } from '../infra/lib/app-metrics.js';
import type { ChainStep } from '../src/clinical/sessions.js';
import { EMF_NAMESPACE, toEmfDocuments } from '../src/observability/emf.js';
import { createMetrics } from '../src/observability/metrics.js';
import { MemorySessionStore } from '../src/storage/sessions/memory.js';
import { RedisSessionStore } from '../src/storage/redis/sessions.js';
import { ResilientSessionStore } from '../src/storage/sessions/resilient.js';

describe('dashboard series vs the EMF the service writes', () => {
  it('every charted series is a metric name and dimension set the service emits', async () => {
    const registry = new Registry();
    const m = createMetrics(registry, { defaultMetrics: false });
    m.http.observeRequest('POST', '/v1/diagnoses', 201, 0.012);
    m.diagnoses.agentSteps([{ seq: 1, agent: 'triage', agentVersion: '1', inputDigest: 'x', status: 'ok', durationMs: 0.4, at: new Date().toISOString(), output: {} } satisfies ChainStep]);
    m.diagnoses.diagnosisRecorded('urgent');
    m.cache.cacheLookup('api_keys', true);
    m.overloaded('event_loop');
    // The session fallback counter is registered by the resilient store and counted on a fallback.
    const unreachable = new RedisSessionStore('redis://127.0.0.1:1', 'emfdash');
    const memory = new MemorySessionStore();
    const sessions = new ResilientSessionStore(unreachable, memory, { registry });
    await sessions.create({ id: 's1', clinicId: 'c1', patientId: null, createdAt: 'now', updatedAt: 'now' }, 60);
    await sessions.close();

    const { documents } = toEmfDocuments((await registry.getMetricsAsJSON()) as never, { timestamp: Date.now() });
    assert.equal(APP_METRICS_NAMESPACE, EMF_NAMESPACE);
    for (const series of APP_EMF_SERIES) {
      const match = documents.find((d) => {
        const directive = d._aws.CloudWatchMetrics[0]!;
        const dims = directive.Dimensions[0] ?? [];
        return (
          directive.Namespace === APP_METRICS_NAMESPACE &&
          directive.Metrics.some((x) => x.Name === series.metric) &&
          [...dims].sort().join() === [...series.dimensions].sort().join() &&
          Object.entries(series.filter ?? {}).every(([k, v]) => d[k] === v)
        );
      });
      assert.ok(match, `no EMF document carries ${series.metric} with dimensions [${series.dimensions.join(', ')}] (${series.label})`);
    }
  });

  it('builds a SEARCH on the exact dimension set, with the filters', () => {
    const p99 = APP_EMF_SERIES.find((s) => s.metric.endsWith('_p99') && s.filter !== undefined)!;
    assert.equal(
      searchExpression(p99, 60),
      `SEARCH('{AgenticPet,method,route,status_code} MetricName="agenticpet_http_request_duration_seconds_p99" method="POST" route="/v1/diagnoses"', 'Maximum', 60)`,
    );
  });
});
