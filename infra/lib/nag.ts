import type { Stack } from 'aws-cdk-lib';
import { NagSuppressions, type NagPackSuppression } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * Every accepted cdk-nag finding, on the narrowest construct it applies to, with its reason.
 * A path that no longer exists is skipped, so dev (no pilot-light network) and prod share the list.
 */
const IAM_INLINE: NagPackSuppression = {
  id: 'HIPAA.Security-IAMNoInlinePolicy',
  reason: 'CDK grants write least-privilege inline policies scoped to this stack\'s own resources; a managed policy would be shared and broader.',
};

const PUBLIC_SUBNETS: NagPackSuppression[] = [
  {
    id: 'HIPAA.Security-VPCSubnetAutoAssignPublicIpDisabled',
    reason: 'Public subnets hold only the internet-facing ALB and the NAT gateways; tasks, proxy, Aurora and Redis run in private/isolated subnets with assignPublicIp false.',
  },
  {
    id: 'HIPAA.Security-VPCNoUnrestrictedRouteToIGW',
    reason: 'The default route to the internet gateway exists only in the public subnets, which the public ALB and the NAT gateways need.',
  },
];

const NO_ROTATION = (what: string): NagPackSuppression[] =>
  ['AwsSolutions-SMG4', 'HIPAA.Security-SecretsManagerRotationEnabled'].map((id) => ({
    id,
    reason: `${what} Rotation is a manual, documented runbook (docs/deploy.md): rotate, then force a new deployment so tasks read the new value.`,
  }));

const rules: Record<string, NagPackSuppression[]> = {
  Network: [...PUBLIC_SUBNETS, IAM_INLINE],
  'Data/Aurora/Secret': NO_ROTATION(
    'The master credentials are also composed into the DATABASE_URL secret by CloudFormation at deploy time; automatic rotation would silently leave that URL stale.',
  ),
  'Data/DatabaseUrl': NO_ROTATION('Derived from the Aurora secret at deploy time; it changes when that secret is rotated and the stack is redeployed.'),
  'Data/RedisAuthToken': NO_ROTATION('Rotating the ElastiCache auth token also needs a ModifyReplicationGroup call (ROTATE, then SET); that needs a custom rotation Lambda, not written yet.'),
  'Data/RedisUrl': NO_ROTATION('Derived from the Redis auth token at deploy time.'),
  AuditSigningKey: NO_ROTATION(
    'The Ed25519 key that signs audit checkpoints (generated seed, or a PEM key the operator puts in); `audit verify` checks every checkpoint against one public key, so rotating it would make older checkpoints fail verification (not supported yet).',
  ),
  BootstrapKey: NO_ROTATION('The admin key of the first clinic matters only at first start (it creates that clinic); afterwards clinics manage and revoke their keys through the API (/v1/api-keys).'),
  'Data/Aurora/MonitoringRole': [
    { id: 'AwsSolutions-IAM4', reason: 'AmazonRDSEnhancedMonitoringRole is the AWS-documented policy for RDS enhanced monitoring and only allows writing to the RDSOSMetrics log group.' },
  ],
  'Data/Aurora/writer': [{ id: 'HIPAA.Security-RDSInBackupPlan', reason: 'The Aurora cluster (not its instances) is the backup unit; it is selected in the AWS Backup plan (Backup/Plan/Resources).' }],
  'Data/Aurora/reader': [{ id: 'HIPAA.Security-RDSInBackupPlan', reason: 'The Aurora cluster (not its instances) is the backup unit; it is selected in the AWS Backup plan (Backup/Plan/Resources).' }],
  'Data/Aurora/Proxy': [IAM_INLINE],
  // AgenticPet-<env>-dr-data (pilot light): the Aurora Global Database secondary.
  MonitoringRole: [
    { id: 'AwsSolutions-IAM4', reason: 'DR secondary: AmazonRDSEnhancedMonitoringRole is the AWS-documented policy for RDS enhanced monitoring and only allows writing to the RDSOSMetrics log group.' },
  ],
  Reader: [
    {
      id: 'HIPAA.Security-RDSInBackupPlan',
      reason:
        'The DR secondary holds a storage-level replica of the primary cluster, which is in the primary AWS Backup plan with every recovery point copied to this region\'s vault; after promotion the main stack deployed here brings its own plan.',
    },
  ],
  'Backup/RestoreTestRole': [
    {
      id: 'AwsSolutions-IAM4',
      reason: 'AWSBackupServiceRolePolicyForRestores is the AWS-maintained policy AWS Backup restore testing needs to restore Aurora recovery points and to delete the restored copies afterwards.',
      appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores'],
    },
    IAM_INLINE,
  ],
  'Backup/Plan': [
    { id: 'AwsSolutions-IAM4', reason: 'AWSBackupServiceRolePolicyForBackup is the AWS-maintained role policy AWS Backup needs to snapshot RDS and S3.' },
  ],
  'Buckets/AccessLogs': [
    { id: 'AwsSolutions-S1', reason: 'This is the access-log bucket itself; logging it into itself would loop.' },
    { id: 'HIPAA.Security-S3DefaultEncryptionKMS', reason: 'ALB access logging only supports SSE-S3 (AES-256) destination buckets, not SSE-KMS.' },
    { id: 'HIPAA.Security-S3BucketReplicationEnabled', reason: 'Access logs are operational, not clinical records; they expire after the log retention period.' },
  ],
  'Buckets/Media': [
    { id: 'HIPAA.Security-S3BucketReplicationEnabled', reason: 'Cross-region copies are made by the AWS Backup plan (continuous backup, copy to the DR vault) instead of S3 replication.' },
  ],
  'Buckets/Backups': [
    { id: 'HIPAA.Security-S3BucketReplicationEnabled', reason: 'Cross-region copies are made by the AWS Backup plan (copy to the DR vault) instead of S3 replication.' },
  ],
  'Buckets/Checkpoints': [
    { id: 'HIPAA.Security-S3BucketReplicationEnabled', reason: 'Cross-region copies of the signed audit checkpoints are made by the AWS Backup plan (copy to the DR vault) instead of S3 replication.' },
  ],
  'Api/AlbSg': [{ id: 'AwsSolutions-EC23', reason: 'The public ALB must accept 443 (and 80, only to redirect to 443) from anywhere; WAF filters the traffic.' }],
  'Api/Alb/Redirect80To443': [
    { id: 'HIPAA.Security-ELBv2ACMCertificateRequired', reason: 'This HTTP listener answers every request with a redirect to HTTPS and forwards nothing.' },
  ],
  'Api/Task': [
    {
      id: 'AwsSolutions-ECS2',
      reason:
        'Only non-secret settings (PORT, HOST, LOG_LEVEL, NODE_ENV, AGENTICPET_WORKERS, METRICS_SINK, and the names of the media bucket and its KMS key: AGENTICPET_MEDIA_BUCKET, AGENTICPET_MEDIA_KMS_KEY_ID; the checkpoint location AGENTICPET_AUDIT_CHECKPOINT_URL and interval AGENTICPET_AUDIT_CHECKPOINT_SECONDS) are plain environment variables; access to the bucket and key is granted by IAM, not by knowing their names. DATABASE_URL, REDIS_URL, the bootstrap key and the audit signing key come from Secrets Manager.',
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'Task role: object-level wildcards are limited to the media, backups and checkpoints buckets (<bucket>/*; on checkpoints only s3:PutObject and s3:GetObject) and the S3/KMS action groups CDK grants for read/write; cloudwatch:PutMetricData has no resource type and is restricted to the AgenticPet namespace by condition. Execution role: ecr:GetAuthorizationToken has no resource type.',
      appliesTo: [
        'Action::s3:GetObject*',
        'Action::s3:GetBucket*',
        'Action::s3:List*',
        'Action::s3:DeleteObject*',
        'Action::s3:Abort*',
        'Action::kms:ReEncrypt*',
        'Action::kms:GenerateDataKey*',
        { regex: '/^Resource::<BucketsMedia[0-9A-F]+\\.Arn>\\/\\*$/g' },
        { regex: '/^Resource::<BucketsBackups[0-9A-F]+\\.Arn>\\/\\*$/g' },
        { regex: '/^Resource::<BucketsCheckpoints[0-9A-F]+\\.Arn>\\/\\*$/g' },
        'Resource::*',
      ],
    },
    IAM_INLINE,
  ],
};

/** Each model server's task (models-stack.ts: Model-<name>/Task). */
const MODEL_TASK: NagPackSuppression[] = [
  {
    id: 'AwsSolutions-ECS2',
    reason: 'Only non-secret settings (LOG_LEVEL, NODE_ENV, MODEL_INTRA_OP_THREADS) are plain environment variables; a model server holds no secret.',
  },
  {
    id: 'AwsSolutions-IAM5',
    reason: 'Execution role: ecr:GetAuthorizationToken has no resource type; the image pull itself is scoped to the model\'s repository.',
    appliesTo: ['Resource::*'],
  },
  IAM_INLINE,
];

export function applySuppressions(stack: Stack): void {
  for (const [path, suppressions] of Object.entries(rules)) {
    const target = find(stack, path.split('/'));
    if (target) NagSuppressions.addResourceSuppressions(target, suppressions, true);
  }
  for (const child of stack.node.children) {
    const task = child.node.id.startsWith('Model-') ? child.node.tryFindChild('Task') : undefined;
    if (task) NagSuppressions.addResourceSuppressions(task, MODEL_TASK, true);
  }
}

export function suppressionList(): { path: string; id: string; reason: string }[] {
  return [...Object.entries(rules), ['Model-<name>/Task', MODEL_TASK] as const].flatMap(([path, list]) => list.map((s) => ({ path, id: s.id, reason: s.reason })));
}

function find(scope: IConstruct, parts: string[]): IConstruct | undefined {
  let node: IConstruct | undefined = scope;
  for (const part of parts) node = node?.node.tryFindChild(part);
  return node;
}
