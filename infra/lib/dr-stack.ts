import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import { drVaultName } from './backup.js';
import type { EnvConfig } from './config.js';
import { logsKey } from './keys.js';
import { Network } from './network.js';
import { modelRepositoryId, modelRepositoryProps, repositoryProps } from './registry-stack.js';

/** Alias of the DR-region key for secret replicas (named, so the primary stack needs no cross-region reference). */
export function drSecretsKeyAlias(config: EnvConfig): string {
  return `alias/agenticpet-${config.name}-dr-secrets`;
}

/**
 * The DR region. Always: the KMS-encrypted, locked backup vault that receives a copy of every
 * recovery point (Aurora, media, backups), and the ECR repository that ECR replication copies
 * every pushed image into (registry-stack.ts). With `pilotLight`: also the network of the DR data
 * tier (same three-tier VPC). The Aurora Global Database secondary itself is in
 * AgenticPet-<env>-dr-data (it needs the primary's global cluster, so it deploys after the main
 * stack, which in turn needs this vault). No task runs in the DR region (docs/deploy.md).
 */
export class DrStack extends Stack {
  readonly vault: backup.BackupVault;
  /** Target of the primary registry's replication: same name and settings as the primary repository. */
  readonly repository: ecr.Repository;
  readonly vpc?: ec2.Vpc;
  readonly logKey?: kms.Key;
  /** With `pilotLight`: the key of the DR replica of the Aurora credentials secret. */
  readonly secretsKey?: kms.Key;
  private readonly azs: readonly string[];

  constructor(scope: Construct, id: string, props: StackProps & { config: EnvConfig }) {
    super(scope, id, props);
    const { config } = props;
    this.azs = config.drAvailabilityZones;
    const key = new kms.Key(this, 'VaultKey', { enableKeyRotation: true, description: `AgenticPet ${config.name} DR backup vault`, removalPolicy: RemovalPolicy.RETAIN });
    this.vault = new backup.BackupVault(this, 'Vault', {
      backupVaultName: drVaultName(config),
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
      lockConfiguration: { minRetention: Duration.days(7) },
    });
    // Created here, before replication is configured, so replicated images land in a repository
    // with the primary's settings (immutable tags, scan on push, KMS, lifecycle). Without it ECR
    // would create the repository on the first replicated push with its defaults (mutable tags,
    // AES-256, no lifecycle policy). An ECR repository creation template cannot stand in for it:
    // a template's prefix always ends in "/", so only the registry-wide ROOT template matches an
    // un-namespaced name like agenticpet-prod.
    this.repository = new ecr.Repository(this, 'Repository', repositoryProps(config));
    // The model servers' repositories match the same replication prefix: their twins too.
    for (const m of config.modelServers) new ecr.Repository(this, modelRepositoryId(m.model), modelRepositoryProps(config, m.model));
    if (config.pilotLight) {
      // Encrypts the DR-region replica of the Aurora credentials secret (replicated by the main
      // stack, referenced there by alias): after a failover the promoted cluster's password is
      // readable in this region even if the primary region is down.
      this.secretsKey = new kms.Key(this, 'SecretsKey', { enableKeyRotation: true, description: `AgenticPet ${config.name} DR secrets`, removalPolicy: RemovalPolicy.RETAIN });
      this.secretsKey.addAlias(drSecretsKeyAlias(config));
      this.logKey = logsKey(this, 'LogKey', `AgenticPet ${config.name} DR logs`);
      const drConfig: EnvConfig = { ...config, region: config.drRegion, availabilityZones: config.drAvailabilityZones, natGateways: 1 };
      this.vpc = new Network(this, 'Network', { config: drConfig, logKey: this.logKey }).vpc;
    }
  }

  /** The AZs come from the config, so synthesis never looks them up in an AWS account. */
  override get availabilityZones(): string[] {
    return [...this.azs];
  }
}
