import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { requestsPerTargetPerMinute, type EnvConfig } from './config.js';
import type { DataTier } from './data.js';
import { APP_EMF_SERIES, searchExpression, type AppEmfSeries } from './app-metrics.js';
import type { ApiService } from './service.js';

/** The dashboard and the alarms (to one SNS topic) an on-call engineer needs. */
export class Observability extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: { config: EnvConfig; api: ApiService; data: DataTier; key: kms.IKey }) {
    super(scope, id);
    const { config, api, data } = props;
    const lb = api.alb.metrics;
    const tg = api.targetGroup.metrics;
    const minute = Duration.minutes(1);

    this.topic = new sns.Topic(this, 'Alarms', { displayName: `AgenticPet ${config.name} alarms`, masterKey: props.key, enforceSSL: true });
    // CloudWatch alarms publish to an SSE-KMS topic only if the key lets CloudWatch use it (the
    // EventBridge rules that target the topic get the same through their target's grant).
    props.key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    if (config.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));

    const requests = lb.requestCount({ period: minute, statistic: 'Sum', label: 'requests/min' });
    const p50 = tg.targetResponseTime({ period: minute, statistic: 'p50', label: 'p50' });
    const p99 = tg.targetResponseTime({ period: minute, statistic: 'p99', label: 'p99' });
    const target5xx = tg.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { period: minute, statistic: 'Sum', label: 'target 5xx' });
    const elb5xx = lb.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { period: minute, statistic: 'Sum', label: 'ALB 5xx' });
    const healthy = tg.healthyHostCount({ period: minute, statistic: 'Minimum', label: 'healthy tasks' });
    const unhealthy = tg.unhealthyHostCount({ period: minute, statistic: 'Maximum', label: 'unhealthy tasks' });
    const cpu = api.service.metricCpuUtilization({ period: minute, label: 'CPU %' });
    const memory = api.service.metricMemoryUtilization({ period: minute, label: 'memory %' });
    const dbCpu = data.cluster.metricCPUUtilization({ period: minute, label: 'Aurora CPU %' });
    const dbConnections = data.cluster.metricDatabaseConnections({ period: minute, label: 'Aurora connections' });
    const cacheMetric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({ namespace: 'AWS/ElastiCache', metricName, dimensionsMap: { ReplicationGroupId: data.redis.ref }, period: minute, statistic, label: metricName });
    const evictions = cacheMetric('Evictions', 'Sum');
    // The app's EMF metrics: one SEARCH per series, so every label value (triage level, agent,
    // cache...) gets its own line without listing them here (lib/app-metrics.ts).
    const emf = (series: AppEmfSeries) =>
      new cloudwatch.MathExpression({ expression: searchExpression(series, minute.toSeconds()), usingMetrics: {}, label: series.label, period: minute });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: `agenticpet-${config.name}` });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Request rate', left: [requests], width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Latency p50 / p99 (s)', left: [p50, p99], width: 8 }),
      new cloudwatch.GraphWidget({ title: '5xx', left: [target5xx, elb5xx], width: 8 }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Healthy tasks', left: [healthy, unhealthy], width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Task CPU and memory', left: [cpu, memory], width: 8 }),
      new cloudwatch.GraphWidget({ title: 'Database', left: [dbCpu], right: [dbConnections], width: 8 }),
    );
    // Scaling decisions. Desired, running and pending tasks come from Container Insights (on
    // for the cluster, lib/service.ts); desired is what Application Auto Scaling sets, so its
    // step changes are the scaling activity, charted as DIFF (+n scale-out, -n scale-in). Beside
    // them, the two target-tracking inputs against their targets: what the decisions react to.
    const tasks = (metricName: string, label: string) =>
      new cloudwatch.Metric({
        namespace: 'ECS/ContainerInsights',
        metricName,
        dimensionsMap: { ClusterName: api.cluster.clusterName, ServiceName: api.service.serviceName },
        period: minute,
        statistic: 'Average',
        label,
      });
    const desired = tasks('DesiredTaskCount', 'desired tasks');
    const scalingActivity = new cloudwatch.MathExpression({
      expression: 'DIFF(desired)',
      usingMetrics: { desired },
      label: 'scaling activity (tasks added / removed)',
      period: minute,
    });
    const requestsPerTarget = tg.requestCountPerTarget({ period: minute, statistic: 'Sum', label: 'requests per task per minute' });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Scaling: desired, running and pending tasks',
        left: [desired, tasks('RunningTaskCount', 'running tasks'), tasks('PendingTaskCount', 'pending tasks')],
        leftAnnotations: [
          { value: config.scaling.minTasks, label: `min ${config.scaling.minTasks}` },
          { value: config.scaling.maxTasks, label: `max ${config.scaling.maxTasks}` },
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({ title: 'Scaling activity (change of desired tasks)', left: [scalingActivity], width: 8 }),
      new cloudwatch.GraphWidget({
        title: 'Scaling inputs against their targets',
        left: [api.service.metricCpuUtilization({ period: minute, label: 'task CPU % (target tracking)' })],
        leftAnnotations: [{ value: config.scaling.cpuTargetPercent, label: `CPU target ${config.scaling.cpuTargetPercent} %` }],
        right: [requestsPerTarget],
        rightAnnotations: [{ value: requestsPerTargetPerMinute(config.scaling), label: `requests target ${requestsPerTargetPerMinute(config.scaling)}` }],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Cache', left: [cacheMetric('EngineCPUUtilization', 'Average'), cacheMetric('DatabaseMemoryUsagePercentage', 'Average')], right: [evictions, cacheMetric('CurrConnections', 'Average')], width: 24 }),
    );
    // Application (EMF), two series per row.
    for (let i = 0; i < APP_EMF_SERIES.length; i += 2) {
      this.dashboard.addWidgets(
        ...APP_EMF_SERIES.slice(i, i + 2).map((series) => new cloudwatch.GraphWidget({ title: `App: ${series.label}`, left: [emf(series)], width: 12 })),
      );
    }

    const alarms = [
      new cloudwatch.Alarm(this, 'P99Latency', {
        alarmDescription: `p99 target response time above ${config.alarms.p99LatencyMs} ms`,
        metric: p99,
        threshold: config.alarms.p99LatencyMs / 1000,
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
      }),
      new cloudwatch.Alarm(this, 'Http5xx', {
        alarmDescription: `more than ${config.alarms.http5xxPerMinute} target 5xx per minute`,
        metric: target5xx,
        threshold: config.alarms.http5xxPerMinute,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'UnhealthyTasks', {
        alarmDescription: 'at least one task failing /readyz',
        metric: unhealthy,
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'DbCpu', { alarmDescription: 'Aurora CPU high', metric: dbCpu, threshold: config.alarms.dbCpuPercent, evaluationPeriods: 5 }),
      new cloudwatch.Alarm(this, 'DbConnections', { alarmDescription: 'Aurora connections high', metric: dbConnections, threshold: config.alarms.dbConnections, evaluationPeriods: 5 }),
      new cloudwatch.Alarm(this, 'CacheEvictions', {
        alarmDescription: 'Redis evicting keys: sessions are being lost before their TTL',
        metric: evictions,
        threshold: 0,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
    for (const alarm of [...alarms, ...api.rollbackAlarms]) {
      alarm.addAlarmAction(new actions.SnsAction(this.topic));
      alarm.addOkAction(new actions.SnsAction(this.topic));
    }
  }
}
