import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as servicediscovery from 'aws-cdk-lib/aws-servicediscovery';
import type { Construct } from 'constructs';
import type { EnvConfig } from './config.js';
import { logsKey } from './keys.js';
import { ModelService, modelNamespaceName } from './model-service.js';
import { modelRepositoryName } from './registry-stack.js';

export interface ModelsStackProps extends StackProps {
  readonly config: EnvConfig;
  readonly vpc: ec2.IVpc;
  /** The API's cluster: the model services run beside it (one Container Insights view). */
  readonly cluster: ecs.ICluster;
  readonly apiSecurityGroup: ec2.ISecurityGroup;
}

/**
 * The model servers of one environment (AgenticPet-<env>-models), a stack of their own so that a
 * model version is deployed and rolled back without touching the API's stack:
 *
 *   AGENTICPET_MODEL_IMAGE_TAG_IMAGE_KIND=<tag> npx cdk deploy AgenticPet-<env>-models
 *
 * Each server pulls its image from its own repository (registry-stack.ts, immutable tags) and is
 * reached by the API at a fixed Cloud Map name (model-service.ts, modelServerUrl), so neither the
 * API's stack nor its tasks change when a model's tag does.
 */
export class ModelsStack extends Stack {
  readonly namespace: servicediscovery.PrivateDnsNamespace;
  readonly services: Readonly<Record<string, ModelService>>;

  constructor(scope: Construct, id: string, props: ModelsStackProps) {
    super(scope, id, props);
    const { config } = props;
    const logKey = logsKey(this, 'LogKey', `AgenticPet ${config.name} model server logs`);
    this.namespace = new servicediscovery.PrivateDnsNamespace(this, 'Namespace', { name: modelNamespaceName(config), vpc: props.vpc, description: `AgenticPet ${config.name} model servers` });
    this.services = Object.fromEntries(
      config.modelServers.map((server) => {
        const service = new ModelService(this, `Model-${server.model}`, {
          config,
          server,
          vpc: props.vpc,
          cluster: props.cluster,
          namespace: this.namespace,
          repository: ecr.Repository.fromRepositoryName(this, `Repository-${server.model}`, modelRepositoryName(config, server.model)),
          apiSecurityGroup: props.apiSecurityGroup,
          logKey,
        });
        new CfnOutput(this, `Url-${server.model}`, { value: service.url, description: `MODEL_SERVER_URL of ${server.model}` });
        return [server.model, service];
      }),
    );
  }
}
