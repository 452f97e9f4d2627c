import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import {
  AURORA_PRICES,
  IOS_PER_DIAGNOSIS,
  STORAGE_DECISION_WORKLOADS,
  auroraMonthlyCost,
  breakEvenDiagnosesPerSecond,
  cheaperStorageType,
} from '../../lib/aurora-storage.js';
import { RESTORE_TEST, restoreTestingPlanName } from '../../lib/backup.js';
import { configs, requestsPerTargetPerMinute } from '../../lib/config.js';
import { stacksOf, template } from '../support/synth.js';

// Issue 11 §5 on the AWS side: the weekly Aurora restore test and where its outcome goes, the
// dashboard's scaling decisions, and the Aurora storage configuration with its arithmetic.
type Resource = { Type: string; Properties: Record<string, unknown>; DependsOn?: string[] };
type Statement = { Effect: string; Action: string | string[]; Principal?: { Service?: string | string[] }; Resource: unknown };
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const ofType = (resources: Record<string, Resource>, type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const only = <T>(list: T[], what: string): T => {
  assert.equal(list.length, 1, `exactly one ${what}`);
  return list[0]!;
};

for (const env of ['dev', 'prod'] as const) {
  const config = configs[env];
  describe(`${env}: AWS Backup restore testing of Aurora`, () => {
    const main = template(stacksOf(env).main);
    const resources = main.toJSON().Resources as Record<string, Resource>;
    const [planId, plan] = only(ofType(resources, 'AWS::Backup::RestoreTestingPlan'), 'restore testing plan');
    const [, selection] = only(ofType(resources, 'AWS::Backup::RestoreTestingSelection'), 'restore testing selection');
    const [clusterId, cluster] = only(ofType(resources, 'AWS::RDS::DBCluster'), 'Aurora cluster');
    const [vaultId] = only(ofType(resources, 'AWS::Backup::BackupVault'), 'backup vault');
    const overrides = selection.Properties.RestoreMetadataOverrides as Record<string, unknown>;

    it('a weekly plan restores the latest Aurora recovery point of the backup vault, within a start window', () => {
      const p = plan.Properties;
      assert.equal(p.RestoreTestingPlanName, restoreTestingPlanName(config));
      assert.match(String(p.RestoreTestingPlanName), /^[A-Za-z0-9_]{1,50}$/, 'letters, digits and underscores only');
      // cron(minutes hours day-of-month month day-of-week year): one named weekday, every week.
      assert.equal(p.ScheduleExpression, RESTORE_TEST.schedule);
      const fields = String(p.ScheduleExpression).replace(/^cron\((.*)\)$/, '$1').split(' ');
      assert.equal(fields.length, 6);
      assert.deepEqual([fields[2], fields[3], fields[5]], ['?', '*', '*']);
      assert.match(fields[4]!, /^(MON|TUE|WED|THU|FRI|SAT|SUN)$/, 'one day a week');
      assert.ok(Number(fields[1]) > 5, 'after the 05:00 UTC backup of the same day');
      assert.equal(p.StartWindowHours, RESTORE_TEST.startWindowHours);
      assert.ok(RESTORE_TEST.startWindowHours >= 1 && RESTORE_TEST.startWindowHours <= 168);
      const rp = p.RecoveryPointSelection as Record<string, unknown>;
      assert.equal(rp.Algorithm, 'LATEST_WITHIN_WINDOW');
      assert.deepEqual(rp.IncludeVaults, [{ 'Fn::GetAtt': [vaultId, 'BackupVaultArn'] }], 'the vault the backup plan writes to');
      assert.deepEqual([...(rp.RecoveryPointTypes as string[])].sort(), ['CONTINUOUS', 'SNAPSHOT']);
      assert.ok((rp.SelectionWindowDays as number) >= 7, 'the window covers a week of recovery points');
    });

    it('the selection is the Aurora cluster, with the overrides a restore needs outside a default VPC', () => {
      const p = selection.Properties;
      assert.equal(p.ProtectedResourceType, 'Aurora');
      assert.equal(p.RestoreTestingPlanName, plan.Properties.RestoreTestingPlanName);
      assert.ok(selection.DependsOn?.includes(planId), 'the plan is created before its selection');
      const arns = p.ProtectedResourceArns as unknown[];
      assert.equal(arns.length, 1);
      assert.match(JSON.stringify(arns[0]), new RegExp(`:rds:${config.region}:${config.account}:cluster:.*"Ref":"${clusterId}"`));
      assert.equal(p.ValidationWindowHours, RESTORE_TEST.validationWindowHours);
      // The restored copy goes to the cluster's own (isolated) subnet group, with its parameters (TLS only).
      assert.deepEqual(overrides.dbSubnetGroupName, cluster.Properties.DBSubnetGroupName);
      assert.deepEqual(overrides.dbClusterParameterGroupName, cluster.Properties.DBClusterParameterGroupName);
      const subnetGroup = resources[(cluster.Properties.DBSubnetGroupName as { Ref: string }).Ref]!;
      assert.equal(subnetGroup.Type, 'AWS::RDS::DBSubnetGroup');
      const params = resources[(cluster.Properties.DBClusterParameterGroupName as { Ref: string }).Ref]!;
      assert.equal((params.Properties.Parameters as Record<string, string>)['rds.force_ssl'], '1');
    });

    it('the restored copy sits behind its own security group, which admits nothing and sends nothing', () => {
      // vpcSecurityGroupIds is a JSON array inside a string: ["<group id>"].
      const join = overrides.vpcSecurityGroupIds as { 'Fn::Join': [string, unknown[]] };
      const [sep, parts] = join['Fn::Join'];
      assert.equal(sep, '');
      assert.equal(parts[0], '["');
      assert.equal(parts[2], '"]');
      const sgId = (parts[1] as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      const sg = resources[sgId]!;
      assert.equal(sg.Type, 'AWS::EC2::SecurityGroup');
      assert.equal(sg.Properties.SecurityGroupIngress, undefined);
      const egress = sg.Properties.SecurityGroupEgress as { CidrIp: string; Description: string }[];
      assert.equal(egress.length, 1);
      assert.equal(egress[0]!.CidrIp, '255.255.255.255/32', 'CDK\'s placeholder rule that matches no traffic');
      for (const [, rule] of [...ofType(resources, 'AWS::EC2::SecurityGroupIngress'), ...ofType(resources, 'AWS::EC2::SecurityGroupEgress')]) {
        assert.doesNotMatch(JSON.stringify(rule.Properties), new RegExp(`"${sgId}"`), 'no rule opens the restore-test group');
      }
      assert.ok(!JSON.stringify(cluster.Properties.VpcSecurityGroupIds).includes(sgId), 'not the production cluster\'s group');
    });

    it('AWS Backup restores as a role of its own: the AWS restore policy and a grant on the cluster key, nothing else', () => {
      const roleId = ((selection.Properties.IamRoleArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'])[0];
      const role = resources[roleId]!;
      assert.equal(role.Type, 'AWS::IAM::Role');
      const trust = (role.Properties.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement;
      assert.deepEqual(trust.map((s) => [s.Effect, actionsOf(s), s.Principal?.Service]), [['Allow', ['sts:AssumeRole'], 'backup.amazonaws.com']]);
      assert.match(JSON.stringify(role.Properties.ManagedPolicyArns), /:iam::aws:policy\/service-role\/AWSBackupServiceRolePolicyForRestores"/);
      assert.equal((role.Properties.ManagedPolicyArns as unknown[]).length, 1);
      const statements = ofType(resources, 'AWS::IAM::Policy')
        .filter(([, p]) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
        .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
      const [grant] = statements;
      assert.equal(statements.length, 1);
      assert.deepEqual([...actionsOf(grant!)].sort(), ['kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKey']);
      assert.deepEqual(grant!.Resource, { 'Fn::GetAtt': [(cluster.Properties.KmsKeyId as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0], 'Arn'] }, 'the Aurora storage key only');
    });

    it('a failed or aborted restore job reaches the alarm topic through EventBridge', () => {
      const rules = ofType(resources, 'AWS::Events::Rule').filter(([, r]) => JSON.stringify(r.Properties.EventPattern).includes('Restore Job State Change'));
      const [, rule] = only(rules, 'restore-job rule');
      assert.deepEqual(rule.Properties.EventPattern, { source: ['aws.backup'], 'detail-type': ['Restore Job State Change'], detail: { status: ['FAILED', 'ABORTED'] } });
      assert.equal(rule.Properties.State, 'ENABLED');
      const [topicId] = only(ofType(resources, 'AWS::SNS::Topic'), 'alarm topic');
      assert.match(topicId, /^ObservabilityAlarms/);
      assert.deepEqual((rule.Properties.Targets as { Arn: unknown }[]).map((t) => t.Arn), [{ Ref: topicId }]);
      // EventBridge may publish to the topic, and use its KMS key (the topic is SSE-KMS).
      const [, topicPolicy] = only(ofType(resources, 'AWS::SNS::TopicPolicy'), 'topic policy');
      const publish = (topicPolicy.Properties.PolicyDocument as { Statement: Statement[] }).Statement.filter((s) => s.Effect === 'Allow');
      assert.ok(publish.some((s) => s.Principal?.Service === 'events.amazonaws.com' && actionsOf(s).includes('sns:Publish')));
      const topic = resources[topicId]!;
      const keyId = (topic.Properties.KmsMasterKeyId as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      const keyStatements = ((resources[keyId]!.Properties.KeyPolicy as { Statement: Statement[] }).Statement);
      for (const service of ['events.amazonaws.com', 'cloudwatch.amazonaws.com']) {
        const s = keyStatements.find((k) => k.Principal?.Service === service);
        assert.ok(s, `${service} may use the alarm topic's key`);
        assert.ok(actionsOf(s).includes('kms:Decrypt'));
        assert.ok(actionsOf(s).some((a) => a.startsWith('kms:GenerateDataKey')));
      }
    });
  });

  describe(`${env}: the dashboard shows scaling decisions`, () => {
    const main = template(stacksOf(env).main);
    const resources = main.toJSON().Resources as Record<string, Resource>;
    const [, dash] = only(ofType(resources, 'AWS::CloudWatch::Dashboard'), 'dashboard');
    // The body is a Fn::Join of JSON fragments and tokens (inside JSON strings). `body` shows the
    // tokens as their JSON (to check what they refer to); `widgets` parses it with placeholders.
    const parts = (dash.Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const body = parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('');
    type Widget = { properties: { title: string; metrics: unknown[][]; annotations?: { horizontal: { value: number; label: string; yAxis?: string }[] } } };
    const widgets = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : '<token>')).join('')) as { widgets: Widget[] };
    const widget = (title: RegExp) => only(widgets.widgets.filter((w) => title.test(w.properties.title)), `widget ${title}`).properties;
    const [, service] = only(ofType(resources, 'AWS::ECS::Service'), 'service');
    const [clusterId] = only(ofType(resources, 'AWS::ECS::Cluster'), 'ECS cluster');

    it('Container Insights is on, so the task counts exist', () => {
      const [, ecsCluster] = only(ofType(resources, 'AWS::ECS::Cluster'), 'ECS cluster');
      assert.deepEqual(ecsCluster.Properties.ClusterSettings, [{ Name: 'containerInsights', Value: 'enhanced' }]);
      assert.deepEqual(service.Properties.Cluster, { Ref: clusterId });
    });

    it('desired, running and pending tasks of the service, between the scaling bounds', () => {
      const w = widget(/^Scaling: desired, running and pending tasks$/);
      const names = w.metrics.map((m) => m.slice(0, 2));
      for (const name of ['DesiredTaskCount', 'RunningTaskCount', 'PendingTaskCount']) assert.ok(names.some(([ns, n]) => ns === 'ECS/ContainerInsights' && n === name), `charts ${name}`);
      // Each series names the cluster and the service (the Container Insights dimensions).
      assert.match(body, /"ECS\/ContainerInsights","DesiredTaskCount","ClusterName","\{"Ref":"ApiCluster[0-9A-F]+"\}","ServiceName","\{"Fn::GetAtt":\["ApiService[0-9A-F]+","Name"\]\}"/);
      assert.deepEqual(w.annotations?.horizontal.map((a) => a.value), [config.scaling.minTasks, config.scaling.maxTasks]);
    });

    it('scaling activity: the change of desired tasks per minute (scale-out positive, scale-in negative)', () => {
      const w = widget(/^Scaling activity/);
      const expr = w.metrics.find((m) => JSON.stringify(m).includes('"expression"'));
      assert.ok(expr, 'a metric math series');
      assert.match(JSON.stringify(expr), /"expression":"DIFF\(desired\)"/);
      const input = w.metrics.find((m) => m.includes('DesiredTaskCount'));
      assert.ok(input && JSON.stringify(input).includes('"id":"desired"') && JSON.stringify(input).includes('"visible":false'), 'the desired count feeds the DIFF, hidden');
    });

    it('the two target-tracking inputs are charted against the targets the scaling policies use', () => {
      const w = widget(/^Scaling inputs against their targets$/);
      assert.ok(w.metrics.some((m) => m[0] === 'AWS/ECS' && m[1] === 'CPUUtilization'));
      assert.ok(w.metrics.some((m) => m[0] === 'AWS/ApplicationELB' && m[1] === 'RequestCountPerTarget'));
      const byAxis = Object.fromEntries((w.annotations?.horizontal ?? []).map((a) => [a.yAxis ?? 'left', a.value]));
      assert.deepEqual(byAxis, { left: config.scaling.cpuTargetPercent, right: requestsPerTargetPerMinute(config.scaling) });
      // The same targets as the policies themselves.
      const policies = ofType(resources, 'AWS::ApplicationAutoScaling::ScalingPolicy').map(([, p]) => (p.Properties.TargetTrackingScalingPolicyConfiguration as { TargetValue: number }).TargetValue);
      assert.deepEqual(policies.sort((a, b) => a - b), [config.scaling.cpuTargetPercent, requestsPerTargetPerMinute(config.scaling)].sort((a, b) => a - b));
    });
  });

  describe(`${env}: Aurora storage configuration`, () => {
    const stacks = stacksOf(env);
    const main = template(stacks.main);

    it(`the cluster's storage type is set explicitly: ${config.auroraStorageType}`, () => {
      main.hasResourceProperties('AWS::RDS::DBCluster', { StorageType: config.auroraStorageType });
      assert.equal(config.auroraStorageType, env === 'prod' ? 'aurora-iopt1' : 'aurora');
      if (stacks.drData) template(stacks.drData).hasResourceProperties('AWS::RDS::DBCluster', { StorageType: config.auroraStorageType, GlobalClusterIdentifier: Match.anyValue() });
    });

    it('the choice is the cheaper one for the environment\'s workload, at both bounds of I/O per diagnosis', () => {
      for (const bound of ['low', 'high'] as const) {
        assert.equal(cheaperStorageType({ ...STORAGE_DECISION_WORKLOADS[env], iosPerDiagnosis: IOS_PER_DIAGNOSIS[bound] }), config.auroraStorageType, `${bound} bound`);
      }
    });
  });
}

describe('Aurora storage arithmetic (docs/capacity.md)', () => {
  const doc = readFileSync(new URL('../../../docs/capacity.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Aurora storage configuration'));
  const usd = (n: number) => `$${Math.round(n).toLocaleString('en-US')}`;

  it('I/Os per diagnosis follow from the bytes written and the 4 KB write unit', () => {
    assert.equal(IOS_PER_DIAGNOSIS.low.toFixed(2), '3.02');
    assert.equal(IOS_PER_DIAGNOSIS.high, 5);
    assert.ok(section.includes('12,385 B') && section.includes('3.02') && section.includes('**5**'));
  });

  it('the document states the figures this arithmetic gives', () => {
    assert.ok(section.length > 1000, 'the section exists');
    for (const env of ['dev', 'prod'] as const) {
      for (const bound of ['low', 'high'] as const) {
        const w = { ...STORAGE_DECISION_WORKLOADS[env], iosPerDiagnosis: IOS_PER_DIAGNOSIS[bound] };
        const c = auroraMonthlyCost(w);
        for (const figure of [usd(c.standard.io), usd(c.standard.total), usd(c.ioOptimized.total), `${Math.round(c.ioShare * 100)} %`, `${Math.round(breakEvenDiagnosesPerSecond(w))}/s`]) {
          assert.ok(section.includes(figure), `${env} ${bound}: ${figure} in docs/capacity.md`);
        }
      }
    }
    // The 100k rpm line of the cost model is the I/O-Optimized total computed here.
    const prod = auroraMonthlyCost({ ...STORAGE_DECISION_WORKLOADS.prod, iosPerDiagnosis: IOS_PER_DIAGNOSIS.low });
    assert.equal(usd(prod.ioOptimized.total), '$2,373');
    assert.ok(section.includes(`$${AURORA_PRICES.ioPerMillion.toFixed(2)} per million`));
  });
});
