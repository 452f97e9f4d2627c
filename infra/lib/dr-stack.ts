import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import { drVaultName } from './backup.js';
import type { EnvConfig } from './config.js';
import { logsKey } from './keys.js';
import { Network } from './network.js';

/**
 * The DR region. Always: the KMS-encrypted, locked backup vault that receives a copy of every
 * recovery point (Aurora, media, backups). With `pilotLight`: also the network the data tier is
 * restored into (same three-tier VPC), so failover is restore + deploy, with no task running
 * until then (docs/deploy.md).
 */
export class DrStack extends Stack {
  readonly vault: backup.BackupVault;
  readonly vpc?: ec2.Vpc;
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
    if (config.pilotLight) {
      const logKey = logsKey(this, 'LogKey', `AgenticPet ${config.name} DR logs`);
      const drConfig: EnvConfig = { ...config, region: config.drRegion, availabilityZones: config.drAvailabilityZones, natGateways: 1 };
      this.vpc = new Network(this, 'Network', { config: drConfig, logKey }).vpc;
    }
  }

  /** The AZs come from the config, so synthesis never looks them up in an AWS account. */
  override get availabilityZones(): string[] {
    return [...this.azs];
  }
}
