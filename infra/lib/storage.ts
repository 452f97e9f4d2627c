import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { EnvConfig } from './config.js';

/** Media blobs, backup artefacts, signed audit checkpoints (Object Lock) and access logs. */
export class Buckets extends Construct {
  readonly media: s3.Bucket;
  readonly backups: s3.Bucket;
  readonly checkpoints: s3.Bucket;
  readonly accessLogs: s3.Bucket;
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: { config: EnvConfig }) {
    super(scope, id);
    const { config } = props;
    this.key = new kms.Key(this, 'BucketKey', { enableKeyRotation: true, description: `AgenticPet ${config.name} S3 buckets`, removalPolicy: RemovalPolicy.RETAIN });
    // ALB access logs only support SSE-S3, so this bucket is not KMS-encrypted.
    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      versioned: true,
      lifecycleRules: [{ expiration: Duration.days(config.logRetentionDays), noncurrentVersionExpiration: Duration.days(30) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Every data bucket: KMS, TLS only, no public access, versioned, access-logged, retained.
    const dataBucket: s3.BucketProps = {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogs,
      removalPolicy: RemovalPolicy.RETAIN,
    };
    this.media = new s3.Bucket(this, 'Media', { ...dataBucket, serverAccessLogsPrefix: 'media/' });
    this.backups = new s3.Bucket(this, 'Backups', {
      ...dataBucket,
      objectLockEnabled: true,
      // Backup artefacts cannot be altered or deleted, not even by an administrator, for a year.
      // Audit checkpoints are not here: they live in the checkpoint bucket below.
      objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(365)),
      serverAccessLogsPrefix: 'backups/',
      lifecycleRules: [
        {
          id: 'colder-storage',
          transitions: [
            { storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) },
            { storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(90) },
            { storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(365) },
          ],
          noncurrentVersionTransitions: [{ storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(30) }],
        },
      ],
    });
    // Signed audit checkpoints: every object is locked in COMPLIANCE mode for the retention period
    // (nobody, not even the root user, can shorten it or delete the object). No transition to
    // Glacier Flexible or Deep Archive, so `audit verify` can always read them back at once, and no
    // expiration within the retention period.
    this.checkpoints = new s3.Bucket(this, 'Checkpoints', {
      ...dataBucket,
      objectLockEnabled: true,
      objectLockDefaultRetention: s3.ObjectLockRetention.compliance(Duration.days(config.checkpointRetentionDays)),
      serverAccessLogsPrefix: 'checkpoints/',
      lifecycleRules: [{ id: 'infrequent-access', transitions: [{ storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) }] }],
    });
  }
}
