import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configs } from '../../lib/config.js';
import { stacksOf, template } from '../support/synth.js';

type Resource = { Type: string; Properties: Record<string, unknown> };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown };

// The signed audit checkpoints: their Object Lock bucket, the task role's access, the container's settings.
for (const env of ['dev', 'prod'] as const) {
  const config = configs[env];
  describe(`${env}: audit checkpoints`, () => {
    const main = template(stacksOf(env).main);
    const resources = main.toJSON().Resources as Record<string, Resource>;
    const [bucketId, bucket] = Object.entries(resources).find(([id, r]) => r.Type === 'AWS::S3::Bucket' && id.startsWith('BucketsCheckpoints'))!;
    const refersToBucket = (value: unknown) => JSON.stringify(value).includes(`"${bucketId}"`);

    it('the checkpoint bucket is its own bucket, under Object Lock in COMPLIANCE mode for the configured days', () => {
      assert.equal(config.checkpointRetentionDays, 365);
      assert.equal(bucket.Properties.ObjectLockEnabled, true);
      assert.deepEqual(bucket.Properties.ObjectLockConfiguration, {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: config.checkpointRetentionDays } },
      });
      assert.deepEqual(bucket.Properties.VersioningConfiguration, { Status: 'Enabled' });
      assert.deepEqual(bucket.Properties.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
      const sse = JSON.stringify(bucket.Properties.BucketEncryption);
      assert.match(sse, /aws:kms/);
      assert.match(JSON.stringify(bucket.Properties.LoggingConfiguration), /checkpoints\//);
      const policy = Object.values(resources).find((r) => r.Type === 'AWS::S3::BucketPolicy' && refersToBucket(r.Properties.Bucket))!;
      assert.match(JSON.stringify(policy.Properties.PolicyDocument), /"aws:SecureTransport":"false"/);
    });

    it('no lifecycle rule expires checkpoints or moves them where they cannot be read at once', () => {
      const rules = ((bucket.Properties.LifecycleConfiguration as { Rules?: Record<string, unknown>[] } | undefined)?.Rules ?? []);
      for (const rule of rules) {
        assert.equal(rule.ExpirationInDays, undefined);
        assert.equal(rule.NoncurrentVersionExpiration, undefined);
        const classes = JSON.stringify([rule.Transitions ?? [], rule.NoncurrentVersionTransitions ?? []]);
        assert.doesNotMatch(classes, /GLACIER"|DEEP_ARCHIVE/);
      }
    });

    it('the task role may put, get and list checkpoints, and nothing on the bucket deletes or changes retention', () => {
      const [task] = Object.values(main.findResources('AWS::ECS::TaskDefinition')) as { Properties: { TaskRoleArn: { 'Fn::GetAtt': [string, string] } } }[];
      const roleId = task!.Properties.TaskRoleArn['Fn::GetAtt'][0];
      const statements = Object.values(resources)
        .filter((r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.Roles).includes(`"${roleId}"`))
        .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
        .filter((s) => refersToBucket(s.Resource));
      const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
      for (const a of ['s3:PutObject', 's3:GetObject', 's3:ListBucket']) assert.ok(actions.includes(a), `${a} is granted`);
      for (const a of actions) {
        assert.doesNotMatch(a, /^s3:(Delete|PutObjectRetention|PutObjectLegalHold|BypassGovernanceRetention|PutBucketObjectLockConfiguration|PutLifecycle|\*)/, `${a} must not be granted on the checkpoint bucket`);
        assert.ok(!a.endsWith('*'), `${a}: no wildcard actions on the checkpoint bucket`);
      }
      assert.ok(statements.every((s) => s.Effect === 'Allow'));
    });

    it('the container writes checkpoints to s3://<bucket>/checkpoints every N seconds, with the signing key from Secrets Manager', () => {
      const [task] = Object.values(main.findResources('AWS::ECS::TaskDefinition')) as { Properties: { ContainerDefinitions: { Environment: { Name: string; Value: unknown }[]; Secrets: { Name: string; ValueFrom: unknown }[] }[] } }[];
      const container = task!.Properties.ContainerDefinitions[0]!;
      const envVars = Object.fromEntries(container.Environment.map((e) => [e.Name, e.Value]));
      assert.deepEqual(envVars.AGENTICPET_AUDIT_CHECKPOINT_URL, { 'Fn::Join': ['', ['s3://', { Ref: bucketId }, '/checkpoints']] });
      assert.equal(envVars.AGENTICPET_AUDIT_CHECKPOINT_SECONDS, String(config.auditCheckpointSeconds));
      assert.ok(!('AGENTICPET_AUDIT_SIGNING_KEY' in envVars), 'the signing key must not be a plain variable');
      const secret = container.Secrets.find((s) => s.Name === 'AGENTICPET_AUDIT_SIGNING_KEY');
      assert.ok(secret, 'AGENTICPET_AUDIT_SIGNING_KEY is an ECS secret');
      const secretId = (secret.ValueFrom as { Ref: string }).Ref;
      assert.equal(resources[secretId]?.Type, 'AWS::SecretsManager::Secret');
      assert.match(secretId, /^AuditSigningKey/);
      // A generated value of 32+ characters, which the service accepts as the seed of its key.
      const generated = (resources[secretId]!.Properties.GenerateSecretString as { PasswordLength: number; ExcludePunctuation: boolean });
      assert.ok(generated.PasswordLength >= 32);
      assert.equal(generated.ExcludePunctuation, true);
    });

    it('the AWS Backup plan selects the checkpoint bucket, so its recovery points are copied to the DR region', () => {
      const selection = Object.values(resources).find((r) => r.Type === 'AWS::Backup::BackupSelection')!;
      assert.ok(refersToBucket(selection.Properties.BackupSelection), 'checkpoint bucket is in the backup selection');
    });
  });
}
