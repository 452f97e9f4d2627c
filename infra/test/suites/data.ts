import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { configs } from '../../lib/config.js';
import { REDIS_PORT } from '../../lib/data.js';
import { stacksOf, template } from '../support/synth.js';

// Network, the two data tiers, the buckets, backups and the DR region.
type Resource = { Properties: Record<string, unknown>; DeletionPolicy?: string };
const one = (resources: Record<string, unknown>): Resource => {
  const all = Object.values(resources) as Resource[];
  assert.equal(all.length, 1);
  return all[0]!;
};

for (const env of ['dev', 'prod'] as const) {
  const config = configs[env];
  describe(`${env}: network and data`, () => {
    const stacks = stacksOf(env);
    const main = template(stacks.main);
    const dr = template(stacks.dr);
    const secret = (prefix: string) => one(Object.fromEntries(Object.entries(main.findResources('AWS::SecretsManager::Secret')).filter(([id]) => id.startsWith(prefix))));

    it('the VPC spans three AZs with public, private and isolated subnets and logs all flows', () => {
      main.resourceCountIs('AWS::EC2::VPC', 1);
      const subnets = Object.values(main.findResources('AWS::EC2::Subnet')) as Resource[];
      assert.equal(subnets.length, 9);
      assert.deepEqual(new Set(subnets.map((s) => s.Properties.AvailabilityZone)), new Set(config.availabilityZones));
      const kinds = subnets.map((s) => (s.Properties.Tags as { Key: string; Value: string }[]).find((t) => t.Key === 'aws-cdk:subnet-type')?.Value);
      for (const kind of ['Public', 'Private', 'Isolated']) assert.equal(kinds.filter((k) => k === kind).length, 3, `${kind} subnet in each AZ`);
      main.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'ALL', LogDestinationType: 'cloud-watch-logs' });
      main.resourceCountIs('AWS::EC2::NatGateway', config.natGateways);
      main.resourceCountIs('Custom::VpcRestrictDefaultSG', 1); // the default security group is emptied
    });

    it('Aurora PostgreSQL: KMS key, 35-day backups, deletion protection, generated secret, writer and reader in different AZs', () => {
      const cluster = one(main.findResources('AWS::RDS::DBCluster'));
      assert.equal(cluster.Properties.Engine, 'aurora-postgresql');
      assert.equal(cluster.Properties.StorageEncrypted, true);
      assert.match(JSON.stringify(cluster.Properties.KmsKeyId), /DataDbKey/);
      assert.equal(cluster.Properties.BackupRetentionPeriod, 35);
      assert.equal(cluster.Properties.DeletionProtection, true);
      assert.match(JSON.stringify(cluster.Properties.MasterUserPassword), /resolve:secretsmanager/);
      assert.equal(cluster.DeletionPolicy, 'Snapshot');
      main.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true, Description: Match.stringLikeRegexp('Aurora') });
      const instances = Object.values(main.findResources('AWS::RDS::DBInstance')) as Resource[];
      assert.equal(instances.length, 2);
      const azs = instances.map((i) => i.Properties.AvailabilityZone);
      assert.ok(azs.every((az) => config.availabilityZones.includes(az as string)), 'instances in the configured AZs');
      assert.notEqual(azs[0], azs[1], 'writer and reader in different AZs');
      for (const i of instances) assert.equal(i.Properties.PubliclyAccessible, false);
      main.hasResourceProperties('AWS::SecretsManager::Secret', { GenerateSecretString: Match.objectLike({ SecretStringTemplate: '{"username":"agenticpet"}', GenerateStringKey: 'password' }) });
    });

    it('an RDS Proxy that requires TLS fronts the cluster, and DATABASE_URL points at it', () => {
      main.hasResourceProperties('AWS::RDS::DBProxy', { EngineFamily: 'POSTGRESQL', RequireTLS: true });
      main.hasResourceProperties('AWS::RDS::DBProxyTargetGroup', { DBClusterIdentifiers: [Match.anyValue()] });
      const body = JSON.stringify(secret('DataDatabaseUrl').Properties.SecretString);
      assert.match(body, /postgres:\/\/agenticpet:/);
      assert.match(body, /resolve:secretsmanager:.*:SecretString:password::/);
      assert.match(body, /DataAuroraProxy[0-9A-F]+","Endpoint"/);
      assert.match(body, /:5432\/agenticpet\?sslmode=require/);
    });

    it('ElastiCache Redis: Multi-AZ with automatic failover, TLS in transit, at-rest KMS, auth token from Secrets Manager', () => {
      const rg = one(main.findResources('AWS::ElastiCache::ReplicationGroup'));
      const p = rg.Properties;
      assert.equal(p.Engine, 'redis');
      assert.equal(p.MultiAZEnabled, true);
      assert.equal(p.AutomaticFailoverEnabled, true);
      assert.equal(p.TransitEncryptionEnabled, true);
      assert.equal(p.AtRestEncryptionEnabled, true);
      assert.match(JSON.stringify(p.KmsKeyId), /DataCacheKey/);
      assert.match(JSON.stringify(p.AuthToken), /resolve:secretsmanager:.*DataRedisAuthToken/);
      assert.equal(p.NumCacheClusters, 3);
      assert.deepEqual(p.PreferredCacheClusterAZs, [...config.availabilityZones]);
      assert.equal(p.Port, REDIS_PORT);
      const body = JSON.stringify(secret('DataRedisUrl').Properties.SecretString);
      assert.match(body, /rediss:\/\/:/);
      assert.match(body, /PrimaryEndPoint\.Address/);
      assert.match(body, new RegExp(`:${REDIS_PORT}\\\\"}`));
    });

    it('the media bucket is versioned, KMS-encrypted, TLS-only and blocks public access', () => {
      const media = Object.entries(main.findResources('AWS::S3::Bucket')).find(([id]) => id.startsWith('BucketsMedia'))![1] as Resource;
      const p = media.Properties;
      assert.deepEqual(p.VersioningConfiguration, { Status: 'Enabled' });
      assert.equal((p.BucketEncryption as { ServerSideEncryptionConfiguration: { ServerSideEncryptionByDefault: { SSEAlgorithm: string } }[] }).ServerSideEncryptionConfiguration[0]!.ServerSideEncryptionByDefault.SSEAlgorithm, 'aws:kms');
      assert.deepEqual(p.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
      main.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: Match.stringLikeRegexp('^BucketsMedia') },
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
      });
    });

    it('the backups bucket is versioned, under Object Lock and moves to colder storage', () => {
      const backups = Object.entries(main.findResources('AWS::S3::Bucket')).find(([id]) => id.startsWith('BucketsBackups'))![1] as Resource;
      const p = backups.Properties;
      assert.deepEqual(p.VersioningConfiguration, { Status: 'Enabled' });
      assert.equal(p.ObjectLockEnabled, true);
      assert.deepEqual(p.ObjectLockConfiguration, { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 365 } } });
      const rules = (p.LifecycleConfiguration as { Rules: { Transitions: { StorageClass: string }[] }[] }).Rules;
      assert.deepEqual(rules[0]!.Transitions.map((t) => t.StorageClass), ['STANDARD_IA', 'GLACIER_IR', 'DEEP_ARCHIVE']);
      main.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: Match.stringLikeRegexp('^BucketsBackups') },
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
      });
    });

    it('AWS Backup backs up Aurora and both buckets daily and copies each recovery point to the DR region', () => {
      const plan = one(main.findResources('AWS::Backup::BackupPlan'));
      const rule = (plan.Properties.BackupPlan as { BackupPlanRule: Record<string, unknown>[] }).BackupPlanRule[0]!;
      assert.deepEqual(rule.Lifecycle, { DeleteAfterDays: config.backupRetentionDays });
      assert.equal(rule.EnableContinuousBackup, true);
      assert.match(String(rule.ScheduleExpression), /^cron\(0 5 /, 'daily, after the Aurora backup window');
      const copy = JSON.stringify(rule.CopyActions);
      assert.match(copy, new RegExp(`:backup:${config.drRegion}:`));
      assert.match(copy, new RegExp(`backup-vault:agenticpet-${env}-dr`));
      const selection = JSON.stringify(one(main.findResources('AWS::Backup::BackupSelection')).Properties);
      assert.match(selection, /:rds:.*:cluster:/);
      assert.match(selection, /BucketsMedia[0-9A-F]+","Arn"/);
      assert.match(selection, /BucketsBackups[0-9A-F]+","Arn"/);
      main.hasResourceProperties('AWS::Backup::BackupVault', { EncryptionKeyArn: Match.anyValue(), LockConfiguration: Match.anyValue() });
    });

    it(`the DR region (${config.drRegion}) holds the copy-target vault${config.pilotLight ? ' and the pilot-light network' : ''}, and runs no tasks`, () => {
      assert.equal(stacks.dr.region, config.drRegion);
      dr.hasResourceProperties('AWS::Backup::BackupVault', { BackupVaultName: `agenticpet-${env}-dr`, EncryptionKeyArn: Match.anyValue() });
      dr.resourceCountIs('AWS::EC2::VPC', config.pilotLight ? 1 : 0);
      dr.resourceCountIs('AWS::ECS::Service', 0);
      dr.resourceCountIs('AWS::RDS::DBInstance', 0);
    });

    if (!config.pilotLight) {
      it('without pilot light: no global database, no DR data stack', () => {
        assert.equal(stacks.drData, undefined);
        main.resourceCountIs('AWS::RDS::GlobalCluster', 0);
        assert.equal((Object.values(main.findResources('AWS::SecretsManager::Secret')) as Resource[]).filter((r) => r.Properties.ReplicaRegions).length, 0);
      });
    } else {
      it('pilot light: the primary Aurora cluster is the source of an Aurora Global Database', () => {
        const global = one(main.findResources('AWS::RDS::GlobalCluster'));
        assert.equal(global.Properties.GlobalClusterIdentifier, `agenticpet-${env}-global`);
        assert.equal(global.Properties.DeletionProtection, true);
        assert.match(JSON.stringify(global.Properties.SourceDBClusterIdentifier), /:rds:.*:cluster:.*DataAurora/);
        assert.equal(global.Properties.Engine, undefined, 'engine and version come from the source cluster');
      });

      it(`pilot light: the Aurora credentials secret is replicated to ${config.drRegion} under the DR secrets key`, () => {
        const replicated = (Object.values(main.findResources('AWS::SecretsManager::Secret')) as Resource[]).filter((r) => r.Properties.ReplicaRegions);
        assert.equal(replicated.length, 1, 'only the Aurora credentials');
        assert.equal(JSON.stringify(replicated[0]!.Properties.GenerateSecretString).includes('agenticpet'), true);
        const [replica] = replicated[0]!.Properties.ReplicaRegions as { Region: string; KmsKeyId: unknown }[];
        assert.equal(replica!.Region, config.drRegion);
        assert.match(JSON.stringify(replica!.KmsKeyId), new RegExp(`:kms:${config.drRegion}:.*:alias/agenticpet-${env}-dr-secrets`));
        dr.hasResourceProperties('AWS::KMS::Alias', { AliasName: `alias/agenticpet-${env}-dr-secrets` });
        dr.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true, Description: Match.stringLikeRegexp('DR secrets') });
      });

      it(`pilot light: ${config.drRegion} holds an encrypted Global Database secondary with one instance, and no ECS service or task`, () => {
        const drData = stacksOf(env).drData!;
        assert.ok(drData, 'DR data stack exists');
        assert.equal(drData.region, config.drRegion);
        assert.ok(drData.dependencies.includes(stacks.main), 'deploys after the main stack (the global cluster)');
        assert.ok(drData.dependencies.includes(stacks.dr), 'deploys after the DR network');
        const t = template(drData);
        const cluster = one(t.findResources('AWS::RDS::DBCluster'));
        const p = cluster.Properties;
        assert.equal(p.GlobalClusterIdentifier, `agenticpet-${env}-global`);
        assert.equal(p.DBClusterIdentifier, `agenticpet-${env}-dr`);
        assert.equal(p.Engine, 'aurora-postgresql');
        assert.equal(p.EngineVersion, '16.4', 'same engine version as the primary');
        assert.equal(p.StorageEncrypted, true);
        assert.match(JSON.stringify(p.KmsKeyId), /DbKey[0-9A-F]+","Arn"/, 'a key of the DR stack (region)');
        assert.equal(p.MasterUsername, undefined, 'credentials replicate from the primary');
        assert.equal(p.MasterUserPassword, undefined);
        assert.equal(p.DeletionProtection, true);
        assert.equal(p.BackupRetentionPeriod, 35);
        assert.equal(p.EnableIAMDatabaseAuthentication, true);
        assert.deepEqual(p.EnableCloudwatchLogsExports, ['postgresql']);
        assert.equal(cluster.DeletionPolicy, 'Snapshot');
        t.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true, Description: Match.stringLikeRegexp('DR secondary') });
        t.hasResourceProperties('AWS::RDS::DBClusterParameterGroup', { Family: 'aurora-postgresql16', Parameters: { 'rds.force_ssl': '1' } });
        const subnetIds = one(t.findResources('AWS::RDS::DBSubnetGroup')).Properties.SubnetIds as { 'Fn::ImportValue': string }[];
        assert.equal(subnetIds.length, 3, 'one isolated subnet per DR AZ');
        for (const s of subnetIds) assert.match(s['Fn::ImportValue'], new RegExp(`^AgenticPet-${env}-dr:.*NetworkVpcisolatedSubnet`));
        const instance = one(t.findResources('AWS::RDS::DBInstance'));
        assert.equal(instance.Properties.DBInstanceClass, `db.${config.dbInstanceClass}`);
        assert.equal(instance.Properties.PubliclyAccessible, false);
        assert.ok(config.drAvailabilityZones.includes(instance.Properties.AvailabilityZone as string));
        t.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: `/aws/rds/cluster/agenticpet-${env}-dr/postgresql`, KmsKeyId: Match.anyValue() });
        // Pilot light: data only. Nothing runs the service until failover.
        for (const type of ['AWS::ECS::Service', 'AWS::ECS::TaskDefinition', 'AWS::ECS::Cluster', 'AWS::RDS::DBProxy', 'AWS::ElasticLoadBalancingV2::LoadBalancer']) {
          t.resourceCountIs(type, 0);
          dr.resourceCountIs(type, 0);
        }
        // No ElastiCache secondary: the cache is ephemeral (docs/deploy.md).
        t.resourceCountIs('AWS::ElastiCache::ReplicationGroup', 0);
        main.resourceCountIs('AWS::ElastiCache::GlobalReplicationGroup', 0);
      });
    }
  });
}
