import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as rds from 'aws-cdk-lib/aws-rds';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { EnvConfig } from './config.js';

/** Name of the vault the DR stack creates in the second region (the copy target). */
export function drVaultName(config: EnvConfig): string {
  return `agenticpet-${config.name}-dr`;
}

/** Name of the restore testing plan (letters, digits and underscores only: AWS Backup's rule). */
export function restoreTestingPlanName(config: EnvConfig): string {
  return `agenticpet_${config.name}_aurora_weekly`;
}

/**
 * The restore test: every Tuesday 09:00 UTC (after the 05:00 backup, in working hours so a
 * failure reaches someone awake), started within 4 hours, the restored copy kept 2 hours for
 * inspection and then deleted by AWS Backup. Exported for the template test and docs/dr.md.
 */
export const RESTORE_TEST = {
  schedule: 'cron(0 9 ? * TUE *)',
  startWindowHours: 4,
  validationWindowHours: 2,
  selectionWindowDays: 7,
} as const;

export interface BackupPlanProps {
  readonly config: EnvConfig;
  readonly cluster: rds.DatabaseCluster;
  readonly buckets: s3.IBucket[];
  /** The Aurora cluster's storage key: the restored copy is encrypted with it too. */
  readonly dbKey: kms.IKey;
  readonly vpc: ec2.IVpc;
  /** The alarm topic: a failed restore (test or not) is published there. */
  readonly alarmTopic: sns.ITopic;
}

/**
 * Daily AWS Backup of Aurora and the data buckets, each recovery point copied to the DR region,
 * and a weekly restore test of the latest Aurora recovery point (AWS Backup restore testing).
 */
export class BackupPlan extends Construct {
  readonly vault: backup.BackupVault;
  readonly plan: backup.BackupPlan;
  readonly restoreTestingPlan: backup.CfnRestoreTestingPlan;
  readonly restoreTestingSelection: backup.CfnRestoreTestingSelection;
  readonly restoreTestRole: iam.Role;
  /** The only security group of a restored copy: no ingress, no egress. */
  readonly restoreTestSg: ec2.SecurityGroup;
  readonly restoreFailedRule: events.Rule;

  constructor(scope: Construct, id: string, props: BackupPlanProps) {
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

    // Restore testing. A backup nobody restored is a hope, not a backup: once a week AWS Backup
    // restores the newest Aurora recovery point of this vault into a new cluster, reports the
    // job's outcome, and deletes the copy after the validation window.
    this.restoreTestingPlan = new backup.CfnRestoreTestingPlan(this, 'RestoreTestingPlan', {
      restoreTestingPlanName: restoreTestingPlanName(config),
      scheduleExpression: RESTORE_TEST.schedule,
      startWindowHours: RESTORE_TEST.startWindowHours,
      recoveryPointSelection: {
        algorithm: 'LATEST_WITHIN_WINDOW',
        // This region's vault: a plan tests its own region only, so the DR vault's copies are
        // not covered here (docs/dr.md).
        includeVaults: [this.vault.backupVaultArn],
        // The rule above keeps continuous backups (point in time) for Aurora; whichever kind is
        // newest is restored, so the path a real restore would take is the one tested.
        recoveryPointTypes: ['CONTINUOUS', 'SNAPSHOT'],
        selectionWindowDays: RESTORE_TEST.selectionWindowDays,
      },
    });

    this.restoreTestRole = new iam.Role(this, 'RestoreTestRole', {
      assumedBy: new iam.ServicePrincipal('backup.amazonaws.com'),
      description: `AgenticPet ${config.name}: AWS Backup restore tests of Aurora`,
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSBackupServiceRolePolicyForRestores')],
    });
    // The recovery points are encrypted with the cluster's key; RDS needs a grant on it to
    // create the restored volume (the restored copy is encrypted with the same key).
    props.dbKey.grant(this.restoreTestRole, 'kms:CreateGrant', 'kms:DescribeKey', 'kms:Decrypt', 'kms:GenerateDataKey');

    // The restored copy holds clinical data: it lands in the isolated subnets (there is no
    // default VPC to fall back on), behind a security group that admits nothing, with the
    // production cluster parameters (rds.force_ssl).
    this.restoreTestSg = new ec2.SecurityGroup(this, 'RestoreTestSg', {
      vpc: props.vpc,
      description: 'AWS Backup restore tests of Aurora: no ingress, no egress',
      allowAllOutbound: false,
    });
    const cfnCluster = props.cluster.node.defaultChild as rds.CfnDBCluster;
    const overrides: Record<string, string> = {
      dbSubnetGroupName: required(cfnCluster.dbSubnetGroupName, 'the Aurora cluster has no subnet group'),
      dbClusterParameterGroupName: required(cfnCluster.dbClusterParameterGroupName, 'the Aurora cluster has no cluster parameter group'),
      // A JSON array in a string: the overrides are a map of strings.
      vpcSecurityGroupIds: Stack.of(this).toJsonString([this.restoreTestSg.securityGroupId]),
    };
    this.restoreTestingSelection = new backup.CfnRestoreTestingSelection(this, 'RestoreTestingAurora', {
      restoreTestingPlanName: restoreTestingPlanName(config),
      restoreTestingSelectionName: 'aurora_cluster',
      protectedResourceType: 'Aurora',
      protectedResourceArns: [props.cluster.clusterArn],
      iamRoleArn: this.restoreTestRole.roleArn,
      restoreMetadataOverrides: overrides,
      validationWindowHours: RESTORE_TEST.validationWindowHours,
    });
    // The selection names the plan by name, so CloudFormation must create the plan first.
    this.restoreTestingSelection.node.addDependency(this.restoreTestingPlan);

    // The outcome: AWS Backup sends every restore job's state changes to EventBridge (restore
    // jobs report `status`, backup and copy jobs `state`). A failed or aborted restore, the
    // weekly test or any other, goes to the alarm topic the on-call engineer already reads.
    this.restoreFailedRule = new events.Rule(this, 'RestoreFailed', {
      description: `AgenticPet ${config.name}: an AWS Backup restore job (restore test or not) failed or was aborted`,
      eventPattern: { source: ['aws.backup'], detailType: ['Restore Job State Change'], detail: { status: ['FAILED', 'ABORTED'] } },
      targets: [new targets.SnsTopic(props.alarmTopic)],
    });
  }
}

function required(value: string | undefined, message: string): string {
  if (value === undefined) throw new Error(message);
  return value;
}
