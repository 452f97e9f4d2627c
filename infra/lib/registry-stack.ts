import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import type { Construct } from 'constructs';
import { configs, type EnvConfig } from './config.js';

export function repositoryName(config: EnvConfig): string {
  return `agenticpet-${config.name}`;
}

/**
 * A model server's own repository. Its name starts with the environment's repository name, so the
 * environment's replication rule (a prefix match) copies its images to the DR region too.
 */
export function modelRepositoryName(config: EnvConfig, model: string): string {
  return `${repositoryName(config)}-model-${model}`;
}

/** Construct id of a model's repository (in the registry and the DR stack). */
export function modelRepositoryId(model: string): string {
  return `ModelRepository-${model}`;
}

/** Same settings as the API's repository (immutable tags: a model rollback redeploys an older tag). */
export function modelRepositoryProps(config: EnvConfig, model: string): ecr.RepositoryProps {
  return { ...repositoryProps(config), repositoryName: modelRepositoryName(config, model) };
}

/**
 * The repository's settings: scan on push, immutable tags (a rollback redeploys an older tag),
 * KMS, retained, lifecycle. Shared by the primary repository (below) and its twin in the DR
 * region (dr-stack.ts), the replication target, so both regions keep the same rules.
 */
export function repositoryProps(config: EnvConfig): ecr.RepositoryProps {
  return {
    repositoryName: repositoryName(config),
    imageScanOnPush: true,
    imageTagMutability: ecr.TagMutability.IMMUTABLE,
    encryption: ecr.RepositoryEncryption.KMS,
    removalPolicy: RemovalPolicy.RETAIN,
    lifecycleRules: [
      { description: 'drop untagged layers', tagStatus: ecr.TagStatus.UNTAGGED, maxImageAge: Duration.days(14), rulePriority: 1 },
      { description: 'keep the last 50 images for rollbacks', tagStatus: ecr.TagStatus.ANY, maxImageCount: 50, rulePriority: 2 },
    ],
  };
}

/** The environments whose repositories live in the same registry (account and region) as `config`'s, `config` included. */
export function registryPeers(config: EnvConfig, all: readonly EnvConfig[] = Object.values(configs)): EnvConfig[] {
  return all.filter((c) => c.account === config.account && c.region === config.region);
}

/**
 * The environment whose registry stack holds its registry's replication configuration.
 *
 * ECR keeps ONE replication configuration per registry (account + region), not one per
 * repository: CloudFormation refuses to create a second AWS::ECR::ReplicationConfiguration in a
 * registry that already has one, and deleting one empties the whole registry's rules. So exactly
 * one registry stack per registry holds it, with a rule for every environment in that registry:
 * prod's when prod shares the registry (the setting exists to protect prod), else the
 * environment's own.
 */
export function replicationOwner(config: EnvConfig, all: readonly EnvConfig[] = Object.values(configs)): EnvConfig {
  const peers = registryPeers(config, all);
  return peers.find((c) => c.name === 'prod') ?? peers.find((c) => c.name === config.name) ?? config;
}

/**
 * One replication rule per environment: its repository (filter on the repository name as a
 * prefix) to its DR region, in the same account. The image keeps its tags and digest there, so
 * after a region failover the DR region pulls exactly the image that ran in the primary.
 */
export function replicationRules(envs: readonly EnvConfig[]): ecr.CfnReplicationConfiguration.ReplicationRuleProperty[] {
  if (envs.length > 10) throw new Error('an ECR replication configuration holds at most 10 rules');
  return envs.map((c) => {
    if (c.drRegion === c.region) throw new Error(`${c.name}: drRegion must differ from region (${c.region}) to replicate the registry`);
    return {
      destinations: [{ region: c.drRegion, registryId: c.account }],
      repositoryFilters: [{ filter: repositoryName(c), filterType: 'PREFIX_MATCH' }],
    };
  });
}

export interface RegistryStackProps extends StackProps {
  readonly config: EnvConfig;
  /** Every environment of the app (default: all of `configs`); decides who owns the registry's replication configuration. */
  readonly environments?: readonly EnvConfig[];
}

/**
 * The image registry, deployed before (and independently of) the service stack so an image can be
 * pushed before the first service deploy. Tags are immutable: a rollback redeploys an older tag.
 *
 * Replication to the DR region: the registry-wide replication configuration lives in the stack
 * of `replicationOwner` (see there) and covers every environment of this registry. Its target
 * repositories are created by the DR stacks (dr-stack.ts) with the same settings; a repository
 * that ECR creates itself on first replication gets ECR's defaults (mutable tags, AES-256, no
 * lifecycle policy). The owner's stack therefore deploys after those DR stacks (lib/app.ts).
 */
export class RegistryStack extends Stack {
  readonly repository: ecr.Repository;
  /** One per model server of the environment (config.modelServers), by model name. */
  readonly modelRepositories: Readonly<Record<string, ecr.Repository>>;
  /** Only in the stack of the registry's `replicationOwner`. */
  readonly replication?: ecr.CfnReplicationConfiguration;
  /** The environments whose repositories `replication` copies to their DR region (empty when not the owner). */
  readonly replicated: readonly EnvConfig[];

  constructor(scope: Construct, id: string, props: RegistryStackProps) {
    super(scope, id, props);
    const { config } = props;
    const all = props.environments ?? Object.values(configs);
    this.repository = new ecr.Repository(this, 'Repository', repositoryProps(config));
    this.modelRepositories = Object.fromEntries(config.modelServers.map((m) => [m.model, new ecr.Repository(this, modelRepositoryId(m.model), modelRepositoryProps(config, m.model))]));
    this.replicated = replicationOwner(config, all).name === config.name ? registryPeers(config, all) : [];
    if (this.replicated.length > 0) {
      this.replication = new ecr.CfnReplicationConfiguration(this, 'Replication', {
        replicationConfiguration: { rules: replicationRules(this.replicated) },
      });
    }
  }
}
