/**
 * One typed configuration per environment. Everything that differs between dev and prod lives
 * here, so a stack never branches on an environment name.
 */
export type EnvName = 'dev' | 'prod';

export interface ServiceScaling {
  /** Tasks running after a deploy when no scaling has happened yet. */
  readonly desiredTasks: number;
  readonly minTasks: number;
  readonly maxTasks: number;
  /** Target average CPU utilisation (percent) per task. */
  readonly cpuTargetPercent: number;
  /**
   * Target ALB requests per target per minute. Derived from the measured per-task throughput
   * of `npm run bench -- --mode postgres --workers 1` (requests per second at saturation for the task size below)
   * times 60 times `headroom`, so a task is scaled out well before it saturates. Set from
   * `designRequestsPerSecondPerTask(taskCpu)` (POST /v1/diagnoses, derated): see docs/capacity.md.
   */
  readonly measuredRequestsPerSecondPerTask: number;
  readonly headroom: number;
}

/**
 * A model server (#13): one model's own container image (deploy/model-server.Dockerfile, the
 * model baked in), in its own ECR repository, run as its own private Fargate service. Deployed
 * and rolled back like the API: by image tag.
 */
export interface ModelServerConfig {
  /** The model's registry name (models/<model>/...); repository agenticpet-<env>-model-<model>. */
  readonly model: string;
  /** Image tag or digest to run; AGENTICPET_MODEL_IMAGE_TAG_<MODEL> (upper case, - as _) overrides it at synth. */
  readonly imageTagOrDigest: string;
  readonly taskCpu: 256 | 512 | 1024 | 2048 | 4096;
  readonly taskMemoryMiB: number;
  readonly desiredTasks: number;
}

/** The variable that overrides a model server's image tag at synth (as AGENTICPET_IMAGE_TAG does the API's). */
export function modelImageTagVariable(model: string): string {
  return `AGENTICPET_MODEL_IMAGE_TAG_${model.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

function modelServer(model: string, defaultTag: string, size: Pick<ModelServerConfig, 'taskCpu' | 'taskMemoryMiB' | 'desiredTasks'>): ModelServerConfig {
  return { model, imageTagOrDigest: process.env[modelImageTagVariable(model)] ?? defaultTag, ...size };
}

export interface EnvConfig {
  readonly name: EnvName;
  readonly account: string;
  readonly region: string;
  /** Three AZs, listed so that synthesis never has to look them up in an account. */
  readonly availabilityZones: readonly [string, string, string];
  readonly vpcCidr: string;
  readonly natGateways: number;
  /** ACM certificate for the HTTPS listener (must be in `region`). */
  readonly certificateArn: string;
  /** Image tag (e.g. `1.4.2` or a git sha) or digest (`sha256:...`) to deploy from ECR. */
  readonly imageTagOrDigest: string;
  readonly taskCpu: 256 | 512 | 1024 | 2048 | 4096;
  readonly taskMemoryMiB: number;
  readonly scaling: ServiceScaling;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly logRetentionDays: 30 | 90 | 180 | 365 | 731 | 1827 | 3653;
  /** Seconds ECS waits after SIGTERM before SIGKILL (max 120): in-flight requests drain. */
  readonly stopTimeoutSeconds: number;
  /** Seconds the ALB keeps routing in-flight requests to a deregistering task. */
  readonly deregistrationDelaySeconds: number;
  readonly dbInstanceClass: string;
  /**
   * Aurora storage configuration: `aurora` (Standard: every I/O billed) or `aurora-iopt1`
   * (I/O-Optimized: no I/O charge, dearer instances and storage). Chosen from the I/O a
   * diagnosis costs at the environment's load; the arithmetic is in docs/capacity.md,
   * "Aurora storage configuration". The DR secondary (pilot light) uses the same one.
   */
  readonly auroraStorageType: 'aurora' | 'aurora-iopt1';
  readonly cacheNodeType: string;
  /** Requests per 5 minutes per client IP before the WAF blocks it. */
  readonly wafRateLimitPer5Min: number;
  readonly alarmEmail?: string;
  readonly alarms: { readonly p99LatencyMs: number; readonly http5xxPerMinute: number; readonly dbCpuPercent: number; readonly dbConnections: number };
  /** Second region: backup copies go there; with `pilotLight` its data tier is created too. */
  readonly drRegion: string;
  readonly drAvailabilityZones: readonly [string, string, string];
  readonly pilotLight: boolean;
  readonly backupRetentionDays: number;
  /** Days each signed audit checkpoint is under Object Lock (COMPLIANCE mode); default 365. */
  readonly checkpointRetentionDays: number;
  /** AGENTICPET_AUDIT_CHECKPOINT_SECONDS: seconds between checkpoints, the bound on undetected audit loss. */
  readonly auditCheckpointSeconds: number;
  /**
   * Model servers; the API gets the first's URL as MODEL_SERVER_URL (it reads one server today,
   * so at most one is accepted). Empty: the API runs its models in process from its own image.
   */
  readonly modelServers: readonly ModelServerConfig[];
}

/**
 * The per-task throughput, from the bench (docs/capacity.md shows the derivation; re-derive both
 * when the bench changes). `npm run bench -- --mode postgres --workers 1`, 2026-11-26 13:09 UTC,
 * PostgreSQL + Redis mode, POST /v1/diagnoses at saturation (the most expensive route, the design
 * target): 162 req/s from one worker process (what a 1 vCPU task runs) on a 2-core machine it
 * shared with PostgreSQL, Redis and the load generator; derated by 0.75 (TLS to RDS Proxy and
 * Redis, network hops, unknown Graviton vs bench core), and not scaled up above one vCPU.
 */
export const BENCH_DIAGNOSES_RPS = 162;
export const BENCH_DERATE = 0.75;

/** Sustainable requests per second of one task of `taskCpu` CPU units (docs/capacity.md). */
export function designRequestsPerSecondPerTask(taskCpu: number): number {
  return Math.round(BENCH_DIAGNOSES_RPS * BENCH_DERATE * Math.min(1, taskCpu / 1024));
}

/** Placeholder account for synthesis without credentials; override with AGENTICPET_AWS_ACCOUNT. */
const account = process.env.AGENTICPET_AWS_ACCOUNT ?? process.env.CDK_DEFAULT_ACCOUNT ?? '111111111111';

export const configs: Record<EnvName, EnvConfig> = {
  dev: {
    name: 'dev',
    account,
    region: 'eu-west-1',
    availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
    vpcCidr: '10.10.0.0/16',
    natGateways: 1,
    certificateArn: `arn:aws:acm:eu-west-1:${account}:certificate/00000000-0000-0000-0000-00000000dev0`,
    imageTagOrDigest: process.env.AGENTICPET_IMAGE_TAG ?? '0.1.0',
    taskCpu: 512,
    taskMemoryMiB: 1024,
    scaling: { desiredTasks: 2, minTasks: 2, maxTasks: 4, cpuTargetPercent: 60, measuredRequestsPerSecondPerTask: designRequestsPerSecondPerTask(512), headroom: 0.6 },
    logLevel: 'debug',
    logRetentionDays: 30,
    stopTimeoutSeconds: 45,
    deregistrationDelaySeconds: 30,
    dbInstanceClass: 'r7g.large',
    // A few diagnoses a second at most: I/O stays far below the break-even (docs/capacity.md).
    auroraStorageType: 'aurora',
    cacheNodeType: 'cache.t4g.small',
    wafRateLimitPer5Min: 2000,
    alarms: { p99LatencyMs: 500, http5xxPerMinute: 10, dbCpuPercent: 80, dbConnections: 400 },
    drRegion: 'eu-central-1',
    drAvailabilityZones: ['eu-central-1a', 'eu-central-1b', 'eu-central-1c'],
    pilotLight: false,
    backupRetentionDays: 35,
    checkpointRetentionDays: 365,
    auditCheckpointSeconds: 60,
    // image-kind is a tiny CPU model (bench/imaging.ts); 0.25 vCPU is plenty at dev load.
    modelServers: [modelServer('image-kind', '1.0.0', { taskCpu: 256, taskMemoryMiB: 512, desiredTasks: 1 })],
  },
  prod: {
    name: 'prod',
    account,
    region: 'eu-west-1',
    availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
    vpcCidr: '10.20.0.0/16',
    natGateways: 3,
    certificateArn: `arn:aws:acm:eu-west-1:${account}:certificate/00000000-0000-0000-0000-0000000prod0`,
    imageTagOrDigest: process.env.AGENTICPET_IMAGE_TAG ?? '0.1.0',
    taskCpu: 1024,
    taskMemoryMiB: 2048,
    scaling: { desiredTasks: 6, minTasks: 3, maxTasks: 60, cpuTargetPercent: 55, measuredRequestsPerSecondPerTask: designRequestsPerSecondPerTask(1024), headroom: 0.6 },
    logLevel: 'info',
    logRetentionDays: 365,
    stopTimeoutSeconds: 60,
    deregistrationDelaySeconds: 45,
    dbInstanceClass: 'r7g.xlarge',
    // I/O is ~60-70 % of a Standard bill at the design load (docs/capacity.md).
    auroraStorageType: 'aurora-iopt1',
    cacheNodeType: 'cache.r7g.large',
    wafRateLimitPer5Min: 20000,
    alarmEmail: 'oncall@example.com',
    alarms: { p99LatencyMs: 300, http5xxPerMinute: 50, dbCpuPercent: 75, dbConnections: 1500 },
    drRegion: 'eu-central-1',
    drAvailabilityZones: ['eu-central-1a', 'eu-central-1b', 'eu-central-1c'],
    pilotLight: true,
    backupRetentionDays: 35,
    checkpointRetentionDays: 365,
    auditCheckpointSeconds: 60,
    modelServers: [modelServer('image-kind', '1.0.0', { taskCpu: 512, taskMemoryMiB: 1024, desiredTasks: 2 })],
  },
};

/** ALBRequestCountPerTarget target (requests per target per minute) from the measured throughput. */
export function requestsPerTargetPerMinute(s: ServiceScaling): number {
  return Math.round(s.measuredRequestsPerSecondPerTask * 60 * s.headroom);
}

export function configFor(name: string): EnvConfig {
  if (name !== 'dev' && name !== 'prod') throw new Error(`unknown environment "${name}" (expected dev or prod)`);
  return configs[name];
}
