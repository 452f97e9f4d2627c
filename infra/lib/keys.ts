import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';

/** A customer-managed key that CloudWatch Logs in this region may use (log groups, flow logs). */
export function logsKey(scope: Construct, id: string, description: string): kms.Key {
  const key = new kms.Key(scope, id, { enableKeyRotation: true, description, removalPolicy: RemovalPolicy.RETAIN });
  const { region, account, partition } = Stack.of(scope);
  key.addToResourcePolicy(
    new iam.PolicyStatement({
      principals: [new iam.ServicePrincipal(`logs.${region}.amazonaws.com`)],
      actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      resources: ['*'],
      conditions: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${partition}:logs:${region}:${account}:*` } },
    }),
  );
  return key;
}
