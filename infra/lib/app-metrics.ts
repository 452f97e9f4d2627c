/**
 * The application's own metrics on the CloudWatch dashboard. The service writes them as EMF
 * lines (METRICS_SINK=emf, src/observability/emf.ts): a Prometheus metric becomes a CloudWatch
 * metric of the same name in namespace `AgenticPet` (a histogram as `<name>_p50`, `_p99`,
 * `_count`, `_sum`), with its labels as the dimensions. A CloudWatch metric is its name plus its
 * exact set of dimensions, so each series names both; the root test
 * test/emf-dashboard.test.ts checks every series against the documents the service really emits.
 * No CDK imports here: that test loads this file without the CDK.
 */
export const APP_METRICS_NAMESPACE = 'AgenticPet';

export interface AppEmfSeries {
  readonly label: string;
  readonly metric: string;
  /** Every label of the metric, in any order: the document's dimension set. */
  readonly dimensions: readonly string[];
  readonly statistic: 'Sum' | 'Maximum' | 'Average';
  /** Dimension values to keep (the rest of the series are all shown, one line each). */
  readonly filter?: Readonly<Record<string, string>>;
}

export const APP_EMF_SERIES: readonly AppEmfSeries[] = [
  { label: 'diagnoses by triage level', metric: 'agenticpet_diagnoses_total', dimensions: ['triage_level'], statistic: 'Sum' },
  {
    label: 'POST /v1/diagnoses p99 (s)',
    metric: 'agenticpet_http_request_duration_seconds_p99',
    dimensions: ['method', 'route', 'status_code'],
    statistic: 'Maximum',
    filter: { method: 'POST', route: '/v1/diagnoses' },
  },
  { label: 'agent step p99 (s)', metric: 'agenticpet_agent_step_duration_seconds_p99', dimensions: ['agent', 'status'], statistic: 'Maximum' },
  { label: 'session tier fallbacks', metric: 'agenticpet_session_store_fallback_total', dimensions: ['operation'], statistic: 'Sum' },
  { label: 'requests shed (503 overloaded)', metric: 'agenticpet_overload_rejections_total', dimensions: ['reason'], statistic: 'Sum' },
  { label: 'L1 cache lookups', metric: 'agenticpet_cache_requests_total', dimensions: ['cache', 'result'], statistic: 'Sum' },
];

/** A CloudWatch SEARCH over one series: every combination of its dimensions' values, one line each. */
export function searchExpression(s: AppEmfSeries, periodSeconds: number): string {
  const schema = [APP_METRICS_NAMESPACE, ...s.dimensions].join(',');
  const filters = Object.entries(s.filter ?? {}).map(([k, v]) => ` ${k}="${v}"`).join('');
  return `SEARCH('{${schema}} MetricName="${s.metric}"${filters}', '${s.statistic}', ${periodSeconds})`;
}
