import { CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { BackupPlan } from './backup.js';
import type { EnvConfig } from './config.js';
import { DataTier } from './data.js';
import { logsKey } from './keys.js';
import { Network } from './network.js';
import { Observability } from './observability.js';
import { modelServerUrl } from './model-service.js';
import { repositoryName } from './registry-stack.js';
import { ApiService } from './service.js';
import { Buckets } from './storage.js';
import { WebAcl } from './waf.js';

/** Everything that runs AgenticPet in one region: network, data tiers, service, backups, alarms. */
export class AgenticPetStack extends Stack {
  readonly network: Network;
  readonly data: DataTier;
  readonly buckets: Buckets;
  readonly api: ApiService;
  readonly observability: Observability;
  readonly waf: WebAcl;
  readonly backup: BackupPlan;

  private readonly azs: readonly string[];

  constructor(scope: Construct, id: string, props: StackProps & { config: EnvConfig }) {
    super(scope, id, props);
    const { config } = props;
    this.azs = config.availabilityZones;
    const logKey = logsKey(this, 'LogKey', `AgenticPet ${config.name} CloudWatch Logs`);
    const secretsKey = new kms.Key(this, 'SecretsKey', { enableKeyRotation: true, description: `AgenticPet ${config.name} secrets`, removalPolicy: RemovalPolicy.RETAIN });
    const alarmKey = new kms.Key(this, 'AlarmTopicKey', { enableKeyRotation: true, description: `AgenticPet ${config.name} alarm topic`, removalPolicy: RemovalPolicy.RETAIN });

    this.network = new Network(this, 'Network', { config, logKey });
    this.data = new DataTier(this, 'Data', { config, vpc: this.network.vpc, secretsKey, logKey });
    this.buckets = new Buckets(this, 'Buckets', { config });
    const bootstrapKey = new secretsmanager.Secret(this, 'BootstrapKey', {
      description: `AgenticPet ${config.name} AGENTICPET_BOOTSTRAP_KEY (admin key of the first clinic)`,
      encryptionKey: secretsKey,
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
    });
    // The service takes a secret of 32+ characters as the seed of its Ed25519 key (SHA-256), so a
    // generated value works from the first deploy; an operator may put a PKCS8 PEM key in instead (docs/deploy.md).
    const auditSigningKey = new secretsmanager.Secret(this, 'AuditSigningKey', {
      description: `AgenticPet ${config.name} AGENTICPET_AUDIT_SIGNING_KEY (Ed25519 key that signs audit checkpoints: PKCS8 PEM, or a 32+ character seed)`,
      encryptionKey: secretsKey,
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });
    // The API reads one MODEL_SERVER_URL (models-stack.ts serves it); routing per model comes before a second server.
    if (config.modelServers.length > 1) throw new Error(`${config.name}: at most one model server (the API reads one MODEL_SERVER_URL)`);
    const [modelServer] = config.modelServers;
    this.api = new ApiService(this, 'Api', {
      config,
      vpc: this.network.vpc,
      repository: ecr.Repository.fromRepositoryName(this, 'Repository', repositoryName(config)),
      data: this.data,
      bootstrapKey,
      auditSigningKey,
      logKey,
      accessLogs: this.buckets.accessLogs,
      media: this.buckets.media,
      backups: this.buckets.backups,
      checkpoints: this.buckets.checkpoints,
      ...(modelServer !== undefined ? { modelServerUrl: modelServerUrl(config, modelServer.model) } : {}),
    });
    this.observability = new Observability(this, 'Observability', { config, api: this.api, data: this.data, key: alarmKey });
    this.waf = new WebAcl(this, 'Waf', { config, loadBalancerArn: this.api.alb.loadBalancerArn, logKey });
    this.backup = new BackupPlan(this, 'Backup', {
      config,
      cluster: this.data.cluster,
      buckets: [this.buckets.media, this.buckets.backups, this.buckets.checkpoints],
      dbKey: this.data.dbKey,
      vpc: this.network.vpc,
      alarmTopic: this.observability.topic,
    });

    new CfnOutput(this, 'LoadBalancerDns', { value: this.api.alb.loadBalancerDnsName });
    new CfnOutput(this, 'ClusterName', { value: this.api.cluster.clusterName });
    new CfnOutput(this, 'ServiceName', { value: this.api.service.serviceName });
    new CfnOutput(this, 'DatabaseClusterId', { value: this.data.cluster.clusterIdentifier });
    new CfnOutput(this, 'DashboardName', { value: `agenticpet-${config.name}` });
  }

  /** The AZs come from the config, so synthesis never looks them up in an AWS account. */
  override get availabilityZones(): string[] {
    return [...this.azs];
  }
}
