import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as rds from 'aws-cdk-lib/aws-rds';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { EnvConfig } from './config.js';

/** Name of the vault the DR stack creates in the second region (the copy target). */
export function drVaultName(config: EnvConfig): string {
  return `agenticpet-${config.name}-dr`;
}

/** Daily AWS Backup of Aurora and the data buckets, each recovery point copied to the DR region. */
export class BackupPlan extends Construct {
  readonly vault: backup.BackupVault;
  readonly plan: backup.BackupPlan;

  constructor(scope: Construct, id: string, props: { config: EnvConfig; cluster: rds.IDatabaseCluster; buckets: s3.IBucket[] }) {
    super(scope, id);
    const { config } = props;
    const stack = Stack.of(this);
    const key = new kms.Key(this, 'VaultKey', { enableKeyRotation: true, description: `AgenticPet ${config.name} backup vault`, removalPolicy: RemovalPolicy.RETAIN });
    this.vault = new backup.BackupVault(this, 'Vault', {
      backupVaultName: `agenticpet-${config.name}`,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
      lockConfiguration: { minRetention: Duration.days(7) },
    });
    const drVault = backup.BackupVault.fromBackupVaultArn(
      this,
      'DrVault',
      stack.formatArn({ service: 'backup', region: config.drRegion, resource: 'backup-vault', resourceName: drVaultName(config), arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
    );
    this.plan = new backup.BackupPlan(this, 'Plan', { backupVault: this.vault });
    this.plan.addRule(
      new backup.BackupPlanRule({
        ruleName: 'daily-with-dr-copy',
        // After Aurora's own backup window (02:00-03:00 UTC): AWS Backup must not start inside it.
        scheduleExpression: events.Schedule.cron({ hour: '5', minute: '0' }),
        deleteAfter: Duration.days(config.backupRetentionDays),
        enableContinuousBackup: true,
        copyActions: [{ destinationBackupVault: drVault, deleteAfter: Duration.days(config.backupRetentionDays) }],
      }),
    );
    this.plan.addSelection('Resources', {
      resources: [backup.BackupResource.fromRdsDatabaseCluster(props.cluster), ...props.buckets.map((b) => backup.BackupResource.fromArn(b.bucketArn))],
    });
  }
}
