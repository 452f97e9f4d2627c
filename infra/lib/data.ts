import { Duration, RemovalPolicy, SecretValue, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { EnvConfig } from './config.js';
import { drSecretsKeyAlias } from './dr-stack.js';

/** Characters left out of generated credentials so they can sit in a URL without escaping. */
const URL_UNSAFE = ' %+~`#$&*()|[]{}:;<>?!\'/@"\\=,^';

export const DB_NAME = 'agenticpet';
export const DB_USER = 'agenticpet';
/** Not Redis's default 6379, so untargeted scans for open Redis ports miss it. */
export const REDIS_PORT = 6380;
/** Aurora engine version of the primary; a Global Database secondary must run the same one. */
export const AURORA_VERSION = rds.AuroraPostgresEngineVersion.VER_16_4;

/** Identifier of the Aurora Global Database (pilot light); deterministic so the DR stack can name it without a cross-region reference. */
export function globalClusterId(config: EnvConfig): string {
  return `agenticpet-${config.name}-global`;
}

/**
 * The persistent tier (Aurora PostgreSQL behind RDS Proxy) and the ephemeral tier (ElastiCache
 * Redis). Also composes the two connection-string secrets the service reads as DATABASE_URL and
 * REDIS_URL: CloudFormation resolves the generated password/token into them at deploy time.
 */
export class DataTier extends Construct {
  readonly cluster: rds.DatabaseCluster;
  readonly proxy: rds.DatabaseProxy;
  readonly dbKey: kms.Key;
  /** With `pilotLight`: the Aurora Global Database this cluster is the primary of. */
  readonly globalCluster?: rds.CfnGlobalCluster;
  readonly redis: elasticache.CfnReplicationGroup;
  readonly databaseUrl: secretsmanager.Secret;
  readonly redisUrl: secretsmanager.Secret;
  readonly dbClientSg: ec2.SecurityGroup;
  readonly cacheClientSg: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: { config: EnvConfig; vpc: ec2.IVpc; secretsKey: kms.IKey; logKey: kms.IKey }) {
    super(scope, id);
    const { config, vpc } = props;
    const isolated = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

    this.dbKey = new kms.Key(this, 'DbKey', { enableKeyRotation: true, description: `AgenticPet ${config.name} Aurora storage`, removalPolicy: RemovalPolicy.RETAIN });
    this.dbClientSg = new ec2.SecurityGroup(this, 'DbClients', { vpc, description: 'Tasks allowed to reach the RDS Proxy' });
    this.cacheClientSg = new ec2.SecurityGroup(this, 'CacheClients', { vpc, description: 'Tasks allowed to reach Redis' });
    const proxySg = new ec2.SecurityGroup(this, 'ProxySg', { vpc, description: 'RDS Proxy' });
    const dbSg = new ec2.SecurityGroup(this, 'DbSg', { vpc, description: 'Aurora cluster' });
    proxySg.addIngressRule(this.dbClientSg, ec2.Port.tcp(5432), 'service tasks to proxy');
    dbSg.addIngressRule(proxySg, ec2.Port.tcp(5432), 'proxy to Aurora');

    const instanceType = new ec2.InstanceType(config.dbInstanceClass);
    const [azWriter, azReader] = config.availabilityZones;
    // Created here (KMS, retention) rather than by RDS on first export, which would leave it unencrypted forever.
    const clusterIdentifier = `agenticpet-${config.name}`;
    const dbLogs = new logs.LogGroup(this, 'AuroraLogs', {
      logGroupName: `/aws/rds/cluster/${clusterIdentifier}/postgresql`,
      retention: config.logRetentionDays,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.cluster = new rds.DatabaseCluster(this, 'Aurora', {
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: AURORA_VERSION }),
      credentials: rds.Credentials.fromGeneratedSecret(DB_USER, {
        encryptionKey: props.secretsKey,
        excludeCharacters: URL_UNSAFE,
        // Pilot light: a replica in the DR region, so the promoted secondary's password is there too.
        ...(config.pilotLight
          ? {
              replicaRegions: [
                {
                  region: config.drRegion,
                  encryptionKey: kms.Key.fromKeyArn(this, 'DrSecretsKey', `arn:${Stack.of(this).partition}:kms:${config.drRegion}:${config.account}:${drSecretsKeyAlias(config)}`),
                },
              ],
            }
          : {}),
      }),
      defaultDatabaseName: DB_NAME,
      port: 5432,
      writer: rds.ClusterInstance.provisioned('writer', { instanceType, availabilityZone: azWriter, enablePerformanceInsights: true, performanceInsightEncryptionKey: this.dbKey }),
      readers: [rds.ClusterInstance.provisioned('reader', { instanceType, availabilityZone: azReader, promotionTier: 1, enablePerformanceInsights: true, performanceInsightEncryptionKey: this.dbKey })],
      vpc,
      vpcSubnets: isolated,
      securityGroups: [dbSg],
      storageEncrypted: true,
      storageEncryptionKey: this.dbKey,
      storageType: config.auroraStorageType === 'aurora-iopt1' ? rds.DBClusterStorageType.AURORA_IOPT1 : rds.DBClusterStorageType.AURORA,
      backup: { retention: Duration.days(35), preferredWindow: '02:00-03:00' },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.SNAPSHOT,
      iamAuthentication: true,
      clusterIdentifier,
      cloudwatchLogsExports: ['postgresql'],
      monitoringInterval: Duration.seconds(60),
      copyTagsToSnapshot: true,
      parameters: { 'rds.force_ssl': '1' },
    });

    this.cluster.node.addDependency(dbLogs);

    // Pilot light: the cluster becomes the primary of an Aurora Global Database, whose secondary
    // (a cross-region read replica, storage-level replication) lives in the DR region
    // (AgenticPet-<env>-dr-data, lib/dr-data-stack.ts). Promoting it is the region failover.
    if (config.pilotLight) {
      this.globalCluster = new rds.CfnGlobalCluster(this, 'GlobalCluster', {
        globalClusterIdentifier: globalClusterId(config),
        sourceDbClusterIdentifier: this.cluster.clusterArn,
        deletionProtection: true,
      });
      this.globalCluster.node.addDependency(this.cluster);
    }

    this.proxy = this.cluster.addProxy('Proxy', {
      secrets: [this.cluster.secret!],
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [proxySg],
      requireTLS: true,
      iamAuth: false,
      debugLogging: false,
    });

    // DATABASE_URL = postgres://USER:PASSWORD@PROXY:5432/agenticpet?sslmode=require
    const password = SecretValue.secretsManager(this.cluster.secret!.secretArn, { jsonField: 'password' });
    this.databaseUrl = new secretsmanager.Secret(this, 'DatabaseUrl', {
      description: `AgenticPet ${config.name} DATABASE_URL (RDS Proxy endpoint, TLS)`,
      encryptionKey: props.secretsKey,
      secretStringValue: SecretValue.unsafePlainText(
        Stack.of(this).toJsonString({ url: `postgres://${DB_USER}:${password.unsafeUnwrap()}@${this.proxy.endpoint}:5432/${DB_NAME}?sslmode=require` }),
      ),
    });

    // The ephemeral tier: Redis with TLS, at-rest encryption, an auth token, one replica per extra AZ.
    const cacheKey = new kms.Key(this, 'CacheKey', { enableKeyRotation: true, description: `AgenticPet ${config.name} ElastiCache`, removalPolicy: RemovalPolicy.RETAIN });
    const authToken = new secretsmanager.Secret(this, 'RedisAuthToken', {
      description: `AgenticPet ${config.name} ElastiCache auth token`,
      encryptionKey: props.secretsKey,
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });
    const cacheSg = new ec2.SecurityGroup(this, 'CacheSg', { vpc, description: 'ElastiCache Redis' });
    cacheSg.addIngressRule(this.cacheClientSg, ec2.Port.tcp(REDIS_PORT), 'service tasks to Redis');
    const subnets = new elasticache.CfnSubnetGroup(this, 'CacheSubnets', {
      description: 'AgenticPet Redis (isolated subnets)',
      subnetIds: vpc.selectSubnets(isolated).subnetIds,
    });
    const slowLog = new logs.LogGroup(this, 'CacheSlowLog', { retention: config.logRetentionDays, encryptionKey: props.logKey, removalPolicy: RemovalPolicy.RETAIN });
    this.redis = new elasticache.CfnReplicationGroup(this, 'Redis', {
      replicationGroupDescription: `AgenticPet ${config.name} sessions`,
      engine: 'redis',
      engineVersion: '7.1',
      cacheNodeType: config.cacheNodeType,
      numCacheClusters: 3,
      preferredCacheClusterAZs: [...config.availabilityZones],
      multiAzEnabled: true,
      automaticFailoverEnabled: true,
      transitEncryptionEnabled: true,
      atRestEncryptionEnabled: true,
      kmsKeyId: cacheKey.keyArn,
      authToken: authToken.secretValue.unsafeUnwrap(),
      port: REDIS_PORT,
      cacheSubnetGroupName: subnets.ref,
      securityGroupIds: [cacheSg.securityGroupId],
      snapshotRetentionLimit: 15,
      autoMinorVersionUpgrade: true,
      logDeliveryConfigurations: [
        { destinationType: 'cloudwatch-logs', logFormat: 'json', logType: 'slow-log', destinationDetails: { cloudWatchLogsDetails: { logGroup: slowLog.logGroupName } } },
      ],
    });

    // REDIS_URL = rediss://:TOKEN@PRIMARY:6379 (rediss: TLS, as the replication group requires)
    this.redisUrl = new secretsmanager.Secret(this, 'RedisUrl', {
      description: `AgenticPet ${config.name} REDIS_URL (primary endpoint, TLS)`,
      encryptionKey: props.secretsKey,
      secretStringValue: SecretValue.unsafePlainText(
        Stack.of(this).toJsonString({ url: `rediss://:${authToken.secretValue.unsafeUnwrap()}@${this.redis.attrPrimaryEndPointAddress}:${REDIS_PORT}` }),
      ),
    });
  }
}
