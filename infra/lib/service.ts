import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { APP_METRICS_NAMESPACE } from './app-metrics.js';
import { requestsPerTargetPerMinute, type EnvConfig } from './config.js';
import type { DataTier } from './data.js';

export const CONTAINER_PORT = 3000;
export const METRICS_NAMESPACE = APP_METRICS_NAMESPACE;

/** The image to run: an ECR tag (`1.4.2`) or digest (`sha256:...`); a rollback redeploys an older one. */
export function imageFor(repository: ecr.IRepository, tagOrDigest: string): ecs.ContainerImage {
  if (!/^(sha256:[0-9a-f]{64}|[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/.test(tagOrDigest)) throw new Error(`"${tagOrDigest}" is neither an image tag nor a sha256 digest`);
  return ecs.ContainerImage.fromEcrRepository(repository, tagOrDigest);
}

export interface ServiceProps {
  readonly config: EnvConfig;
  readonly vpc: ec2.IVpc;
  readonly repository: ecr.IRepository;
  readonly data: DataTier;
  readonly bootstrapKey: secretsmanager.ISecret;
  /** PKCS8 PEM Ed25519 private key that signs audit checkpoints (AGENTICPET_AUDIT_SIGNING_KEY). */
  readonly auditSigningKey: secretsmanager.ISecret;
  readonly logKey: kms.IKey;
  readonly accessLogs: s3.IBucket;
  readonly media: s3.IBucket;
  readonly backups: s3.IBucket;
  readonly checkpoints: s3.IBucket;
  /** MODEL_SERVER_URL of the API (a model server's Cloud Map URL); unset: models run in process. */
  readonly modelServerUrl?: string;
}

/** The Fargate service (ARM64) behind an HTTPS ALB, with autoscaling and safe deployments. */
export class ApiService extends Construct {
  readonly cluster: ecs.Cluster;
  readonly service: ecs.FargateService;
  readonly alb: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly logGroup: logs.LogGroup;
  readonly rollbackAlarms: cloudwatch.Alarm[];
  /** The tasks' security group: model servers accept connections from it only. */
  readonly taskSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: ServiceProps) {
    super(scope, id);
    const { config, vpc, data } = props;

    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: config.logRetentionDays, encryptionKey: props.logKey, removalPolicy: RemovalPolicy.RETAIN });
    this.cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENHANCED });

    const task = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: config.taskCpu,
      memoryLimitMiB: config.taskMemoryMiB,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    task.addContainer('api', {
      image: imageFor(props.repository, config.imageTagOrDigest),
      essential: true,
      portMappings: [{ containerPort: CONTAINER_PORT, protocol: ecs.Protocol.TCP }],
      environment: {
        PORT: String(CONTAINER_PORT),
        HOST: '0.0.0.0',
        LOG_LEVEL: config.logLevel,
        NODE_ENV: 'production',
        // One worker per vCPU of the task (a Fargate task may see more CPUs than it is given).
        AGENTICPET_WORKERS: String(Math.max(1, Math.floor(config.taskCpu / 1024))),
        // The app's metrics as CloudWatch EMF lines, which the dashboard charts.
        METRICS_SINK: 'emf',
        // Media bytes go to the media bucket (shared by every task), not to the task's disk. The
        // region comes from AWS_REGION, which Fargate sets; S3 traffic uses the VPC's gateway endpoint.
        AGENTICPET_MEDIA_BUCKET: props.media.bucketName,
        // The bucket's customer-managed key, named on every put (SSE-KMS), so objects stay under it
        // even if the bucket's default encryption changes. Omitted for a bucket without a CMK.
        ...(props.media.encryptionKey ? { AGENTICPET_MEDIA_KMS_KEY_ID: props.media.encryptionKey.keyArn } : {}),
        // Signed audit checkpoints go to the Object Lock bucket, one every N seconds.
        AGENTICPET_AUDIT_CHECKPOINT_URL: `s3://${props.checkpoints.bucketName}/checkpoints`,
        AGENTICPET_AUDIT_CHECKPOINT_SECONDS: String(config.auditCheckpointSeconds),
        // Image models run on their own service (model-service.ts), not in this task.
        ...(props.modelServerUrl !== undefined ? { MODEL_SERVER_URL: props.modelServerUrl } : {}),
      },
      secrets: {
        DATABASE_URL: ecs.Secret.fromSecretsManager(data.databaseUrl, 'url'),
        REDIS_URL: ecs.Secret.fromSecretsManager(data.redisUrl, 'url'),
        AGENTICPET_BOOTSTRAP_KEY: ecs.Secret.fromSecretsManager(props.bootstrapKey),
        AGENTICPET_AUDIT_SIGNING_KEY: ecs.Secret.fromSecretsManager(props.auditSigningKey),
      },
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: 'api' }),
      // ECS ignores the image's HEALTHCHECK; this is the same probe.
      healthCheck: {
        command: ['CMD', 'node', '-e', `fetch('http://127.0.0.1:${CONTAINER_PORT}/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      stopTimeout: Duration.seconds(config.stopTimeoutSeconds),
      readonlyRootFilesystem: false,
      user: 'node',
    });
    // PutObject, GetObject (which also authorizes HeadObject), ListBucket (so a missing key is a 404,
    // not a 403) on the media bucket, and Encrypt/Decrypt/GenerateDataKey on its KMS key.
    props.media.grantReadWrite(task.taskRole);
    props.backups.grantPut(task.taskRole);
    // Checkpoints: put, get and list only. Nothing that deletes objects or changes their retention.
    task.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:GetObject'], resources: [props.checkpoints.arnForObjects('*')] }));
    task.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [props.checkpoints.bucketArn] }));
    if (props.checkpoints.encryptionKey) {
      task.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey'], resources: [props.checkpoints.encryptionKey.keyArn] }));
    }
    task.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': METRICS_NAMESPACE } },
      }),
    );

    const albSg = new ec2.SecurityGroup(this, 'AlbSg', { vpc, description: 'Public HTTPS load balancer', allowAllOutbound: false });
    albSg.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS from the internet');
    albSg.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(80), 'HTTP, redirected to HTTPS');
    this.alb = new elbv2.ApplicationLoadBalancer(this, 'Alb', {
      vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroup: albSg,
      dropInvalidHeaderFields: true,
      deletionProtection: true,
    });
    this.alb.logAccessLogs(props.accessLogs, 'alb');

    const taskSg = new ec2.SecurityGroup(this, 'TaskSg', { vpc, description: 'AgenticPet tasks' });
    this.taskSecurityGroup = taskSg;
    taskSg.addIngressRule(albSg, ec2.Port.tcp(CONTAINER_PORT), 'ALB to tasks');
    albSg.addEgressRule(taskSg, ec2.Port.tcp(CONTAINER_PORT), 'ALB to tasks');

    this.targetGroup = new elbv2.ApplicationTargetGroup(this, 'Targets', {
      vpc,
      port: CONTAINER_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.IP,
      deregistrationDelay: Duration.seconds(config.deregistrationDelaySeconds),
      healthCheck: { path: '/readyz', healthyHttpCodes: '200', interval: Duration.seconds(10), timeout: Duration.seconds(5), healthyThresholdCount: 2, unhealthyThresholdCount: 3 },
    });
    this.alb.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [elbv2.ListenerCertificate.fromArn(config.certificateArn)],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      defaultTargetGroups: [this.targetGroup],
      open: false,
    });
    this.alb.addRedirect({ sourcePort: 80, sourceProtocol: elbv2.ApplicationProtocol.HTTP, targetPort: 443, targetProtocol: elbv2.ApplicationProtocol.HTTPS });

    // Deploy alarms: ECS rolls a deployment back when either fires while it is in progress.
    // Literal names: the service refers to them by name, and a token would only hide that.
    const rollbackAlarmNames = [`agenticpet-${config.name}-deploy-target-5xx`, `agenticpet-${config.name}-deploy-unhealthy-targets`];
    this.rollbackAlarms = [
      new cloudwatch.Alarm(this, 'Deploy5xx', {
        alarmName: rollbackAlarmNames[0],
        alarmDescription: 'Targets answering 5xx during a deployment: roll back',
        metric: this.targetGroup.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { period: Duration.minutes(1), statistic: 'Sum' }),
        threshold: config.alarms.http5xxPerMinute,
        evaluationPeriods: 2,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'DeployUnhealthy', {
        alarmName: rollbackAlarmNames[1],
        alarmDescription: 'Targets failing /readyz during a deployment: roll back',
        metric: this.targetGroup.metrics.unhealthyHostCount({ period: Duration.minutes(1), statistic: 'Maximum' }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: task,
      desiredCount: config.scaling.desiredTasks,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      deploymentAlarms: { alarmNames: rollbackAlarmNames, behavior: ecs.AlarmBehavior.ROLLBACK_ON_ALARM },
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [taskSg, data.dbClientSg, data.cacheClientSg],
      assignPublicIp: false,
      healthCheckGracePeriod: Duration.seconds(60),
      platformVersion: ecs.FargatePlatformVersion.LATEST,
    });
    for (const alarm of this.rollbackAlarms) this.service.node.addDependency(alarm);
    this.service.attachToApplicationTargetGroup(this.targetGroup);

    const scaling = this.service.autoScaleTaskCount({ minCapacity: config.scaling.minTasks, maxCapacity: config.scaling.maxTasks });
    scaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: config.scaling.cpuTargetPercent, scaleOutCooldown: Duration.seconds(60), scaleInCooldown: Duration.seconds(300) });
    scaling.scaleOnRequestCount('Requests', {
      requestsPerTarget: requestsPerTargetPerMinute(config.scaling),
      targetGroup: this.targetGroup,
      scaleOutCooldown: Duration.seconds(60),
      scaleInCooldown: Duration.seconds(300),
    });
  }
}
