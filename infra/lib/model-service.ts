import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as servicediscovery from 'aws-cdk-lib/aws-servicediscovery';
import { Construct } from 'constructs';
import type { EnvConfig, ModelServerConfig } from './config.js';
import { imageFor } from './service.js';

/** The model server's port (`agenticpet model-server --port`, deploy/model-server.Dockerfile). */
export const MODEL_SERVER_PORT = 8080;

/** Private DNS namespace the model servers register in (Cloud Map, inside the VPC only). */
export function modelNamespaceName(config: EnvConfig): string {
  return `models.agenticpet-${config.name}.internal`;
}

/** The Cloud Map service name of a model server, e.g. image-kind. */
export function modelServiceName(model: string): string {
  return model.toLowerCase().replace(/[^a-z0-9-]/g, '-');
}

/** The base URL the API reaches a model server at (MODEL_SERVER_URL): a name, not a token, so no cycle with the API. */
export function modelServerUrl(config: EnvConfig, model: string): string {
  return `http://${modelServiceName(model)}.${modelNamespaceName(config)}:${MODEL_SERVER_PORT}`;
}

export interface ModelServiceProps {
  readonly config: EnvConfig;
  readonly server: ModelServerConfig;
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.ICluster;
  readonly namespace: servicediscovery.IPrivateDnsNamespace;
  readonly repository: ecr.IRepository;
  /** The API tasks' security group: the only source the model server accepts connections from. */
  readonly apiSecurityGroup: ec2.ISecurityGroup;
  readonly logKey: kms.IKey;
}

/**
 * One model server: its own image (from its own repository, immutable tags) as its own private
 * Fargate service (ARM64), registered in Cloud Map so the API finds it by name, reachable on its
 * port from the API's tasks only. No load balancer: Cloud Map answers with the healthy tasks, and
 * the container health check (/v2/health/ready: the model loaded and its SHA-256 checked) is what
 * ECS replaces tasks on and what a deployment waits for. A deployment whose tasks never become
 * healthy is rolled back by the circuit breaker; a deliberate rollback redeploys an older tag.
 */
export class ModelService extends Construct {
  readonly service: ecs.FargateService;
  readonly securityGroup: ec2.SecurityGroup;
  readonly url: string;

  constructor(scope: Construct, id: string, props: ModelServiceProps) {
    super(scope, id);
    const { config, server } = props;
    this.url = modelServerUrl(config, server.model);
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: config.logRetentionDays, encryptionKey: props.logKey, removalPolicy: RemovalPolicy.RETAIN });
    const task = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: server.taskCpu,
      memoryLimitMiB: server.taskMemoryMiB,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    task.addContainer('model-server', {
      image: imageFor(props.repository, server.imageTagOrDigest),
      essential: true,
      portMappings: [{ containerPort: MODEL_SERVER_PORT, protocol: ecs.Protocol.TCP }],
      environment: {
        LOG_LEVEL: config.logLevel,
        NODE_ENV: 'production',
        // One ONNX Runtime thread per vCPU of the task.
        MODEL_INTRA_OP_THREADS: String(Math.max(1, Math.floor(server.taskCpu / 1024))),
      },
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: 'model' }),
      healthCheck: {
        command: ['CMD', 'node', '-e', `fetch('http://127.0.0.1:${MODEL_SERVER_PORT}/v2/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      stopTimeout: Duration.seconds(30),
      readonlyRootFilesystem: true,
      user: 'node',
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'Sg', { vpc: props.vpc, description: `Model server ${server.model}: reachable from the API tasks only` });
    this.securityGroup.addIngressRule(props.apiSecurityGroup, ec2.Port.tcp(MODEL_SERVER_PORT), 'API tasks to the model server');

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: props.cluster,
      taskDefinition: task,
      desiredCount: server.desiredTasks,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [this.securityGroup],
      assignPublicIp: false,
      platformVersion: ecs.FargatePlatformVersion.LATEST,
      cloudMapOptions: { cloudMapNamespace: props.namespace, name: modelServiceName(server.model), dnsRecordType: servicediscovery.DnsRecordType.A, dnsTtl: Duration.seconds(10) },
    });
  }
}
