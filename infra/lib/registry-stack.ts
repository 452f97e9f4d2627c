import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import type { Construct } from 'constructs';
import type { EnvConfig } from './config.js';

export function repositoryName(config: EnvConfig): string {
  return `agenticpet-${config.name}`;
}

/**
 * The image registry, deployed before (and independently of) the service stack so an image can be
 * pushed before the first service deploy. Tags are immutable: a rollback redeploys an older tag.
 */
export class RegistryStack extends Stack {
  readonly repository: ecr.Repository;

  constructor(scope: Construct, id: string, props: StackProps & { config: EnvConfig }) {
    super(scope, id, props);
    this.repository = new ecr.Repository(this, 'Repository', {
      repositoryName: repositoryName(props.config),
      imageScanOnPush: true,
      imageTagMutability: ecr.TagMutability.IMMUTABLE,
      encryption: ecr.RepositoryEncryption.KMS,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { description: 'drop untagged layers', tagStatus: ecr.TagStatus.UNTAGGED, maxImageAge: Duration.days(14), rulePriority: 1 },
        { description: 'keep the last 50 images for rollbacks', tagStatus: ecr.TagStatus.ANY, maxImageCount: 50, rulePriority: 2 },
      ],
    });
  }
}
