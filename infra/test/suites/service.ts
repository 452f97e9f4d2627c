import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { readFileSync } from 'node:fs';
import { APP_EMF_SERIES } from '../../lib/app-metrics.js';
import { BENCH_DERATE, BENCH_DIAGNOSES_RPS, configs, designRequestsPerSecondPerTask, requestsPerTargetPerMinute } from '../../lib/config.js';
import { imageFor } from '../../lib/service.js';
import { MANAGED_RULE_GROUPS } from '../../lib/waf.js';
import { stacksOf, template } from '../support/synth.js';

// The compute and edge side: ECR, ECS/Fargate, ALB, autoscaling, WAF, dashboard and alarms.
for (const env of ['dev', 'prod'] as const) {
  const config = configs[env];
  describe(`${env}: service`, () => {
    const stacks = stacksOf(env);
    const main = template(stacks.main);
    const registry = template(stacks.registry);

    it('ECR repository scans on push, has immutable tags and a lifecycle policy', () => {
      registry.hasResourceProperties('AWS::ECR::Repository', {
        RepositoryName: `agenticpet-${env}`,
        ImageScanningConfiguration: { ScanOnPush: true },
        ImageTagMutability: 'IMMUTABLE',
        LifecyclePolicy: { LifecyclePolicyText: Match.stringLikeRegexp('untagged.*imageCountMoreThan|imageCountMoreThan.*untagged') },
      });
    });

    it('the task runs on ARM64 Fargate with the configured size and deploys the configured image tag', () => {
      main.hasResourceProperties('AWS::ECS::TaskDefinition', {
        RequiresCompatibilities: ['FARGATE'],
        RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
        Cpu: String(config.taskCpu),
        Memory: String(config.taskMemoryMiB),
        ContainerDefinitions: [
          Match.objectLike({
            Image: { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp(`/agenticpet-${env}:${config.imageTagOrDigest}$`)])] },
            StopTimeout: config.stopTimeoutSeconds,
            User: 'node',
            PortMappings: [Match.objectLike({ ContainerPort: 3000 })],
            HealthCheck: Match.objectLike({ Command: Match.arrayWith([Match.stringLikeRegexp('/healthz')]) }),
          }),
        ],
      });
    });

    it('the container gets PORT and LOG_LEVEL as values and DATABASE_URL, REDIS_URL, the bootstrap key from Secrets Manager', () => {
      const [task] = Object.values(main.findResources('AWS::ECS::TaskDefinition')) as { Properties: { ContainerDefinitions: { Environment: { Name: string; Value: string }[]; Secrets: { Name: string; ValueFrom: unknown }[] }[] } }[];
      const container = task!.Properties.ContainerDefinitions[0]!;
      const envVars = Object.fromEntries(container.Environment.map((e) => [e.Name, e.Value]));
      assert.equal(envVars.PORT, '3000');
      assert.equal(envVars.LOG_LEVEL, config.logLevel);
      assert.equal(envVars.AGENTICPET_WORKERS, String(Math.max(1, Math.floor(config.taskCpu / 1024))));
      assert.equal(envVars.METRICS_SINK, 'emf');
      const secrets = Object.fromEntries(container.Secrets.map((s) => [s.Name, JSON.stringify(s.ValueFrom)]));
      assert.deepEqual(Object.keys(secrets).sort(), ['AGENTICPET_AUDIT_SIGNING_KEY', 'AGENTICPET_BOOTSTRAP_KEY', 'DATABASE_URL', 'REDIS_URL']);
      assert.match(secrets.DATABASE_URL!, /DataDatabaseUrl.*:url::/);
      assert.match(secrets.REDIS_URL!, /DataRedisUrl.*:url::/);
      assert.match(secrets.AGENTICPET_BOOTSTRAP_KEY!, /BootstrapKey/);
      for (const name of ['DATABASE_URL', 'REDIS_URL', 'AGENTICPET_BOOTSTRAP_KEY']) assert.ok(!(name in envVars), `${name} must not be a plain variable`);
    });

    it('media bytes go to the media bucket: AGENTICPET_MEDIA_BUCKET and AGENTICPET_MEDIA_KMS_KEY_ID name it and its key, and the task role may put, get and head objects and use the key', () => {
      const resources = main.toJSON().Resources as Record<string, { Type: string; Properties: Record<string, unknown> }>;
      const [mediaId, media] = Object.entries(resources).find(([id, r]) => r.Type === 'AWS::S3::Bucket' && id.startsWith('BucketsMedia'))!;
      // The key that encrypts the bucket by default (a customer-managed key of this stack).
      const sse = (media.Properties.BucketEncryption as { ServerSideEncryptionConfiguration: { ServerSideEncryptionByDefault: { SSEAlgorithm: string; KMSMasterKeyID: unknown } }[] }).ServerSideEncryptionConfiguration[0]!.ServerSideEncryptionByDefault;
      assert.equal(sse.SSEAlgorithm, 'aws:kms');
      const keyArn = sse.KMSMasterKeyID as { 'Fn::GetAtt': [string, string] };
      assert.equal(resources[keyArn['Fn::GetAtt'][0]]?.Type, 'AWS::KMS::Key', 'the media bucket uses a customer-managed key');

      const [task] = Object.values(main.findResources('AWS::ECS::TaskDefinition')) as { Properties: { TaskRoleArn: { 'Fn::GetAtt': [string, string] }; ContainerDefinitions: { Environment: { Name: string; Value: unknown }[] }[] } }[];
      const envVars = Object.fromEntries(task!.Properties.ContainerDefinitions[0]!.Environment.map((e) => [e.Name, e.Value]));
      assert.deepEqual(envVars.AGENTICPET_MEDIA_BUCKET, { Ref: mediaId }, 'the bucket name of the media bucket');
      assert.deepEqual(envVars.AGENTICPET_MEDIA_KMS_KEY_ID, keyArn, 'the ARN of the key that encrypts the media bucket');

      // Every statement of every policy attached to the task role.
      const taskRoleId = task!.Properties.TaskRoleArn['Fn::GetAtt'][0];
      type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
      const statements = (Object.values(main.findResources('AWS::IAM::Policy')) as { Properties: { Roles: unknown[]; PolicyDocument: { Statement: Statement[] } } }[])
        .filter((p) => p.Properties.Roles.some((r) => JSON.stringify(r) === JSON.stringify({ Ref: taskRoleId })))
        .flatMap((p) => p.Properties.PolicyDocument.Statement);
      const glob = (pattern: string) => new RegExp('^' + pattern.replace(/[.+?^$()|[\]\\{}]/g, '\\$&').replace(/\*/g, '.*') + '$');
      const allows = (action: string, resource: unknown) =>
        statements.some(
          (s) =>
            s.Effect === 'Allow' &&
            ([] as string[]).concat(s.Action).some((a) => glob(a).test(action)) &&
            ([] as unknown[]).concat(s.Resource).some((r) => JSON.stringify(r) === JSON.stringify(resource)),
        );
      const bucketArn = { 'Fn::GetAtt': [mediaId, 'Arn'] };
      const objects = { 'Fn::Join': ['', [bucketArn, '/*']] };
      assert.ok(allows('s3:PutObject', objects), 's3:PutObject on media/*');
      // HeadObject has no action of its own: S3 authorizes it as s3:GetObject.
      assert.ok(allows('s3:GetObject', objects), 's3:GetObject (and so HeadObject) on media/*');
      // Without s3:ListBucket, S3 answers a missing key with 403 instead of 404, and the service's
      // "already there?" HeadObject would fail instead of returning false.
      assert.ok(allows('s3:ListBucket', bucketArn), 's3:ListBucket on the media bucket');
      for (const action of ['kms:GenerateDataKey', 'kms:Decrypt', 'kms:Encrypt']) assert.ok(allows(action, keyArn), `${action} on the media bucket's key`);
      assert.ok(!allows('s3:PutObject', '*') && !allows('kms:Decrypt', '*'), 'no wildcard resource for S3 or KMS');
    });

    it('the service keeps 100% healthy during deploys, rolls back on circuit breaker and on alarms', () => {
      main.hasResourceProperties('AWS::ECS::Service', {
        LaunchType: 'FARGATE',
        DesiredCount: config.scaling.desiredTasks,
        DeploymentConfiguration: {
          MinimumHealthyPercent: 100,
          MaximumPercent: 200,
          DeploymentCircuitBreaker: { Enable: true, Rollback: true },
          Alarms: { Enable: true, Rollback: true, AlarmNames: [`agenticpet-${env}-deploy-target-5xx`, `agenticpet-${env}-deploy-unhealthy-targets`] },
        },
        NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }) },
      });
      main.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: `agenticpet-${env}-deploy-target-5xx` });
      main.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: `agenticpet-${env}-deploy-unhealthy-targets` });
    });

    it('scales between min and max on CPU and on ALB requests per target derived from the measured throughput', () => {
      main.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: config.scaling.minTasks, MaxCapacity: config.scaling.maxTasks, ScalableDimension: 'ecs:service:DesiredCount' });
      main.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
        PolicyType: 'TargetTrackingScaling',
        TargetTrackingScalingPolicyConfiguration: Match.objectLike({ PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' }, TargetValue: config.scaling.cpuTargetPercent }),
      });
      const perTarget = requestsPerTargetPerMinute(config.scaling);
      assert.equal(perTarget, Math.round(config.scaling.measuredRequestsPerSecondPerTask * 60 * config.scaling.headroom));
      // The measured figure comes from the bench (docs/capacity.md), not a placeholder: POST
      // /v1/diagnoses 160 req/s x 0.75 derate, pro rata below one vCPU.
      assert.equal(config.scaling.measuredRequestsPerSecondPerTask, designRequestsPerSecondPerTask(config.taskCpu));
      assert.equal(designRequestsPerSecondPerTask(1024), 122);
      assert.equal(designRequestsPerSecondPerTask(512), 61);
      main.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
        TargetTrackingScalingPolicyConfiguration: Match.objectLike({
          PredefinedMetricSpecification: Match.objectLike({ PredefinedMetricType: 'ALBRequestCountPerTarget' }),
          TargetValue: perTarget,
        }),
      });
    });

    it('the ALB listens on HTTPS with the configured certificate and redirects HTTP to HTTPS', () => {
      main.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
        Scheme: 'internet-facing',
        LoadBalancerAttributes: Match.arrayWith([
          { Key: 'deletion_protection.enabled', Value: 'true' },
          { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
          { Key: 'access_logs.s3.enabled', Value: 'true' },
        ]),
      });
      main.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
        Port: 443,
        Protocol: 'HTTPS',
        Certificates: [{ CertificateArn: config.certificateArn }],
        SslPolicy: Match.stringLikeRegexp('TLS'),
      });
      main.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
        Port: 80,
        Protocol: 'HTTP',
        DefaultActions: [{ Type: 'redirect', RedirectConfig: { Port: '443', Protocol: 'HTTPS', StatusCode: 'HTTP_301' } }],
      });
    });

    it('the target group health-checks /readyz and drains for the configured delay', () => {
      main.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
        Port: 3000,
        TargetType: 'ip',
        HealthCheckPath: '/readyz',
        Matcher: { HttpCode: '200' },
        TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: String(config.deregistrationDelaySeconds) }]),
      });
    });

    it('a WAFv2 web ACL on the ALB blocks with AWS managed rule groups and a per-IP rate rule, and logs', () => {
      const acl = Object.values(main.findResources('AWS::WAFv2::WebACL'))[0] as { Properties: { Scope: string; Rules: Record<string, unknown>[] } };
      assert.equal(acl.Properties.Scope, 'REGIONAL');
      const rules = acl.Properties.Rules;
      for (const name of MANAGED_RULE_GROUPS) {
        const rule = rules.find((r) => r.Name === name);
        assert.ok(rule, `${name} present`);
        assert.deepEqual(rule.OverrideAction, { None: {} }, `${name} in block mode (no count override)`);
        assert.deepEqual(rule.Statement, { ManagedRuleGroupStatement: { VendorName: 'AWS', Name: name } });
      }
      const rate = rules.find((r) => r.Name === 'rate-limit-per-ip');
      assert.deepEqual(rate?.Action, { Block: {} });
      assert.deepEqual(rate?.Statement, { RateBasedStatement: { Limit: config.wafRateLimitPer5Min, AggregateKeyType: 'IP', EvaluationWindowSec: 300 } });
      main.hasResourceProperties('AWS::WAFv2::WebACLAssociation', { ResourceArn: { Ref: Match.stringLikeRegexp('ApiAlb') } });
      main.resourceCountIs('AWS::WAFv2::LoggingConfiguration', 1);
    });

    it('logs go to a KMS-encrypted log group with the configured retention', () => {
      main.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: config.logRetentionDays, KmsKeyId: Match.anyValue() });
      for (const lg of Object.values(main.findResources('AWS::Logs::LogGroup')) as { Properties: Record<string, unknown> }[]) {
        assert.ok(lg.Properties.KmsKeyId, 'every log group is KMS-encrypted');
        assert.equal(lg.Properties.RetentionInDays, config.logRetentionDays);
      }
    });

    it('the dashboard shows request rate, p50/p99, 5xx, healthy tasks, CPU/memory, database and cache', () => {
      const [dash] = Object.values(main.findResources('AWS::CloudWatch::Dashboard')) as { Properties: { DashboardBody: unknown } }[];
      const body = JSON.stringify(dash!.Properties.DashboardBody);
      for (const needle of ['RequestCount', 'TargetResponseTime', 'p50', 'p99', 'HTTPCode_Target_5XX_Count', 'HealthyHostCount', 'CPUUtilization', 'MemoryUtilization', 'DatabaseConnections', 'AWS/RDS', 'AWS/ElastiCache', 'Evictions', 'AgenticPet']) {
        assert.ok(body.includes(needle), `dashboard shows ${needle}`);
      }
      // The app's EMF series (names checked against the service's own EMF in test/emf-dashboard.test.ts).
      for (const series of APP_EMF_SERIES) assert.ok(body.includes(series.metric), `dashboard charts ${series.metric}`);
      assert.equal(body.split('SEARCH(').length - 1, APP_EMF_SERIES.length);
      assert.ok(!body.includes('DiagnosisLatencyMs'), 'no chart of a metric the service does not write');
    });

    it('alarms on p99 latency, 5xx, unhealthy tasks, DB CPU and connections, cache evictions notify the SNS topic', () => {
      main.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
      const alarms = Object.values(main.findResources('AWS::CloudWatch::Alarm')) as { Properties: Record<string, unknown> }[];
      // An alarm on a labelled metric is rendered as Metrics[0].MetricStat; flatten both forms.
      type Stat = { MetricStat?: { Metric: { MetricName: string; Namespace: string }; Stat: string } };
      const flat = alarms.map((a) => {
        const p = a.Properties;
        const ms = (p.Metrics as Stat[] | undefined)?.[0]?.MetricStat;
        return { Threshold: p.Threshold, AlarmActions: p.AlarmActions, MetricName: ms?.Metric.MetricName ?? p.MetricName, Namespace: ms?.Metric.Namespace ?? p.Namespace, Stat: ms?.Stat ?? p.ExtendedStatistic ?? p.Statistic };
      });
      const by = (metric: string, extra: (p: (typeof flat)[number]) => boolean = () => true) => flat.filter((a) => a.MetricName === metric && extra(a));
      assert.equal(by('TargetResponseTime', (p) => p.Stat === 'p99' && p.Threshold === config.alarms.p99LatencyMs / 1000).length, 1);
      assert.ok(by('HTTPCode_Target_5XX_Count').length >= 1, '5xx alarm');
      assert.ok(by('UnHealthyHostCount').length >= 1, 'unhealthy tasks alarm');
      assert.equal(by('CPUUtilization', (p) => p.Namespace === 'AWS/RDS' && p.Threshold === config.alarms.dbCpuPercent).length, 1);
      assert.equal(by('DatabaseConnections', (p) => p.Threshold === config.alarms.dbConnections).length, 1);
      assert.equal(by('Evictions', (p) => p.Namespace === 'AWS/ElastiCache').length, 1);
      for (const alarm of alarms) assert.match(JSON.stringify(alarm.Properties.AlarmActions), /ObservabilityAlarms/, 'every alarm notifies the topic');
    });
  });
}

describe('image selection', () => {
  const imageOf = (tagOrDigest: string) => {
    const stack = new Stack(new App(), 'Image', { env: { account: '111111111111', region: 'eu-west-1' } });
    const task = new ecs.FargateTaskDefinition(stack, 'Task');
    task.addContainer('api', { image: imageFor(ecr.Repository.fromRepositoryName(stack, 'Repo', 'agenticpet-prod'), tagOrDigest) });
    const [def] = Object.values(Template.fromStack(stack).findResources('AWS::ECS::TaskDefinition')) as { Properties: { ContainerDefinitions: { Image: unknown }[] } }[];
    return JSON.stringify(def!.Properties.ContainerDefinitions[0]!.Image);
  };

  it('deploys a tag as repo:tag and a digest as repo@sha256:...', () => {
    assert.match(imageOf('1.4.2'), /\/agenticpet-prod:1\.4\.2"/);
    const digest = `sha256:${'a'.repeat(64)}`;
    assert.match(imageOf(digest), new RegExp(`/agenticpet-prod@${digest}"`));
  });

  it('refuses something that is neither', () => {
    assert.throws(() => imageOf('latest; rm -rf /'), /neither an image tag nor a sha256 digest/);
    assert.throws(() => imageOf('sha256:short'), /neither/);
  });
});

describe('the capacity model (docs/capacity.md)', () => {
  const root = new URL('../../../', import.meta.url);
  const doc = readFileSync(new URL('docs/capacity.md', root), 'utf8');

  it('takes its per-task figure from the bench result it cites, as config.ts does', () => {
    const cited = /bench\/results\/(bench-postgres-[^`]+\.json)/.exec(doc)?.[1];
    assert.ok(cited, 'docs/capacity.md cites a bench result file');
    const bench = JSON.parse(readFileSync(new URL(`bench/results/${cited}`, root), 'utf8')) as {
      flags: { workers: number | null };
      table: { mode: string; scenario: string; load: string; achievedRps: number }[];
    };
    assert.equal(bench.flags.workers, 1, 'measured with one worker, as a 1 vCPU task runs');
    const row = bench.table.find((r) => r.mode === 'postgres' && r.scenario === 'POST /v1/diagnoses' && r.load === 'saturation');
    assert.equal(Math.round(row!.achievedRps), BENCH_DIAGNOSES_RPS);
    assert.match(doc, new RegExp(`${BENCH_DIAGNOSES_RPS} × ${BENCH_DERATE} = \\*\\*${designRequestsPerSecondPerTask(1024)} req/s`));
    assert.match(doc, /npm run bench -- --mode postgres --workers 1/);
  });

  // The rows of the markdown table that follows `heading`, as cells.
  const table = (heading: string) => {
    const after = doc.slice(doc.indexOf(heading)).split('\n');
    const first = after.findIndex((l) => l.startsWith('|'));
    const rows: string[] = [];
    for (const l of after.slice(first)) {
      if (!l.startsWith('|')) break;
      rows.push(l);
    }
    // Header and separator rows dropped.
    return rows.slice(2).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
  };
  const dollars = (cell: string) => {
    const all = [...cell.matchAll(/\$([\d,]+(?:\.\d+)?)/g)];
    assert.ok(all.length > 0, `a $ amount in "${cell}"`);
    return Number(all.at(-1)![1]!.replace(/,/g, ''));
  };

  it('the monthly cost table adds up, and the bottom line repeats it', () => {
    const rows = table('## Monthly cost: the arithmetic');
    const total = rows.find((r) => r[0] === '**total**')!;
    const lines = rows.filter((r) => r !== total);
    assert.ok(lines.length >= 10, 'the cost lines');
    const sum = [2, 3].map((col) => lines.reduce((acc, r) => acc + dollars(r[col]!), 0));
    assert.deepEqual([dollars(total[2]!), dollars(total[3]!)], sum, 'total = sum of the lines');

    const line = (name: string) => lines.find((r) => r[0]!.startsWith(name))!;
    const bottom = table('## Bottom line');
    const stated = (label: string) => {
      const row = bottom.find((r) => r[0]!.startsWith(label));
      assert.ok(row, `bottom line: ${label}`);
      return [dollars(row[1]!), dollars(row[2]!)];
    };
    const near = (got: number[], want: number[], what: string) =>
      got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) <= 0.01 * want[i]!, `${what}: ${g} vs ${want[i]}`));
    near(stated('estimated monthly cost'), sum, 'estimated monthly cost');
    near(stated('of which Fargate'), [2, 3].map((c) => dollars(line('Fargate')[c]!)), 'Fargate');
    const edge = [2, 3].map((c) => ['WAF, requests', 'WAF logs', 'data transfer out'].reduce((acc, n) => acc + dollars(line(n)[c]!), 0));
    near(stated('of which per-request edge charges'), edge, 'edge charges');
    near(stated('with WAF logging filtered'), [2, 3].map((c, i) => sum[i]! - dollars(line('WAF logs')[c]!)), 'without WAF logs');
  });

  it('the task counts follow from the design throughput, and the Fargate line from the unit prices', () => {
    const perTask = designRequestsPerSecondPerTask(configs.prod.taskCpu) * configs.prod.scaling.headroom;
    const tasks = [100_000, 1_000_000].map((rpm) => Math.ceil(rpm / 60 / perTask / 3) * 3);
    const row = table('## Bottom line').find((r) => r[0]!.startsWith('tasks (1 vCPU'))!;
    assert.deepEqual([Number(row[1]!.replace(/\D/g, '')), Number(row[2]!.replace(/\D/g, ''))], tasks);
    const fargate = table('## Monthly cost: the arithmetic').find((r) => r[0] === 'Fargate')!;
    const perTaskMonth = (1 * 0.03238 + 2 * 0.00356) * 730;
    assert.match(fargate[1]!, new RegExp(`tasks × \\$${perTaskMonth.toFixed(2)}`));
    tasks.forEach((n, i) => {
      assert.match(fargate[2 + i]!, new RegExp(`^${n} → `));
      assert.ok(Math.abs(dollars(fargate[2 + i]!) - n * perTaskMonth) <= n * 0.005 + 1, `Fargate for ${n} tasks`);
    });
  });
});
