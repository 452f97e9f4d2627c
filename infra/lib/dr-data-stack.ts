import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import type { Construct } from 'constructs';
import type { EnvConfig } from './config.js';
import { AURORA_VERSION, globalClusterId } from './data.js';

/** Identifier of the DR secondary cluster (the one to promote on failover). */
export function drClusterId(config: EnvConfig): string {
  return `agenticpet-${config.name}-dr`;
}

/**
 * Pilot light, DR region: the secondary of the Aurora Global Database (a cross-region read
 * replica of the primary cluster, replicated at the storage layer, typically under a second
 * behind), encrypted with a DR-region KMS key, with one instance so promotion is a detach rather
 * than a restore. No RDS Proxy, no ECS service and no task: those are deployed on failover
 * (docs/deploy.md, "Region failover").
 *
 * ElastiCache has no secondary here (see docs/deploy.md): the cache only holds sessions and
 * rate-limit counters, which are ephemeral; losing them never loses clinical data.
 */
export class DrDataStack extends Stack {
  readonly cluster: rds.CfnDBCluster;
  readonly instance: rds.CfnDBInstance;
  readonly dbKey: kms.Key;
  readonly dbClientSg: ec2.SecurityGroup;
  private readonly azs: readonly string[];

  constructor(scope: Construct, id: string, props: StackProps & { config: EnvConfig; vpc: ec2.IVpc; logKey: kms.IKey }) {
    super(scope, id, props);
    const { config, vpc } = props;
    this.azs = config.drAvailabilityZones;
    const clusterIdentifier = drClusterId(config);

    this.dbKey = new kms.Key(this, 'DbKey', { enableKeyRotation: true, description: `AgenticPet ${config.name} Aurora storage (DR secondary)`, removalPolicy: RemovalPolicy.RETAIN });
    this.dbClientSg = new ec2.SecurityGroup(this, 'DbClients', { vpc, description: 'DR: RDS Proxy / tasks allowed to reach the promoted cluster' });
    const dbSg = new ec2.SecurityGroup(this, 'DbSg', { vpc, description: 'DR: Aurora Global Database secondary' });
    dbSg.addIngressRule(this.dbClientSg, ec2.Port.tcp(5432), 'DR proxy/tasks to Aurora (after promotion)');

    const subnets = new rds.CfnDBSubnetGroup(this, 'DbSubnets', {
      dbSubnetGroupDescription: 'AgenticPet DR Aurora (isolated subnets)',
      subnetIds: vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }).subnetIds,
    });
    // Same parameters as the primary (TLS only), so the promoted cluster behaves the same.
    const params = new rds.CfnDBClusterParameterGroup(this, 'DbParams', {
      description: 'AgenticPet DR Aurora PostgreSQL (rds.force_ssl)',
      family: `aurora-postgresql${AURORA_VERSION.auroraPostgresMajorVersion}`,
      parameters: { 'rds.force_ssl': '1' },
    });
    const dbLogs = new logs.LogGroup(this, 'AuroraLogs', {
      logGroupName: `/aws/rds/cluster/${clusterIdentifier}/postgresql`,
      retention: config.logRetentionDays,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // A Global Database secondary: no master credentials (they replicate from the primary), the
    // engine version of the primary, and a key of this region (KMS keys are regional).
    this.cluster = new rds.CfnDBCluster(this, 'Aurora', {
      dbClusterIdentifier: clusterIdentifier,
      globalClusterIdentifier: globalClusterId(config),
      engine: 'aurora-postgresql',
      engineVersion: AURORA_VERSION.auroraPostgresFullVersion,
      port: 5432,
      dbSubnetGroupName: subnets.ref,
      vpcSecurityGroupIds: [dbSg.securityGroupId],
      dbClusterParameterGroupName: params.ref,
      storageEncrypted: true,
      kmsKeyId: this.dbKey.keyArn,
      // Set on this cluster too rather than left to the default: the secondary receives every
      // write of the primary and is the writer after a failover, so the same arithmetic applies.
      storageType: config.auroraStorageType,
      backupRetentionPeriod: 35,
      preferredBackupWindow: '02:00-03:00',
      deletionProtection: true,
      enableIamDatabaseAuthentication: true,
      enableCloudwatchLogsExports: ['postgresql'],
      copyTagsToSnapshot: true,
    });
    this.cluster.applyRemovalPolicy(RemovalPolicy.SNAPSHOT);
    this.cluster.node.addDependency(dbLogs);

    const monitoringRole = new iam.Role(this, 'MonitoringRole', {
      assumedBy: new iam.ServicePrincipal('monitoring.rds.amazonaws.com'),
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonRDSEnhancedMonitoringRole')],
    });
    this.instance = new rds.CfnDBInstance(this, 'Reader', {
      dbClusterIdentifier: this.cluster.ref,
      dbInstanceClass: `db.${config.dbInstanceClass}`,
      engine: 'aurora-postgresql',
      availabilityZone: config.drAvailabilityZones[0],
      publiclyAccessible: false,
      autoMinorVersionUpgrade: true,
      monitoringInterval: Duration.seconds(60).toSeconds(),
      monitoringRoleArn: monitoringRole.roleArn,
      enablePerformanceInsights: true,
      performanceInsightsKmsKeyId: this.dbKey.keyArn,
    });
  }

  /** The AZs come from the config, so synthesis never looks them up in an AWS account. */
  override get availabilityZones(): string[] {
    return [...this.azs];
  }
}
