import { App, Aspects, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks } from 'cdk-nag';
import { AgenticPetStack } from './app-stack.js';
import { configs, type EnvConfig, type EnvName } from './config.js';
import { DrDataStack } from './dr-data-stack.js';
import { DrStack } from './dr-stack.js';
import { ModelsStack } from './models-stack.js';
import { applySuppressions } from './nag.js';
import { RegistryStack } from './registry-stack.js';

export interface EnvStacks {
  readonly config: EnvConfig;
  readonly registry: RegistryStack;
  readonly main: AgenticPetStack;
  /** The model servers (config.modelServers); absent when there are none. */
  readonly models?: ModelsStack;
  readonly dr: DrStack;
  /** With `pilotLight`: the DR region's data tier (Aurora Global Database secondary). */
  readonly drData?: DrDataStack;
}

/** Builds every stack of every environment, with the cdk-nag packs applied to the whole app. */
export function buildApp(props: AppProps = {}, envs: readonly EnvName[] = ['dev', 'prod']): { app: App; stacks: Record<string, EnvStacks> } {
  const app = new App(props);
  const stacks: Record<string, EnvStacks> = {};
  for (const name of envs) {
    const config = configs[name];
    const env = { account: config.account, region: config.region };
    const prefix = `AgenticPet-${name}`;
    const registry = new RegistryStack(app, `${prefix}-registry`, { env, config });
    const dr = new DrStack(app, `${prefix}-dr`, { env: { account: config.account, region: config.drRegion }, config, crossRegionReferences: false });
    const main = new AgenticPetStack(app, prefix, { env, config });
    main.addStackDependency(registry, 'the service pulls its image from the registry');
    main.addStackDependency(dr, 'backup copies go to the DR vault');
    let models: ModelsStack | undefined;
    if (config.modelServers.length > 0) {
      models = new ModelsStack(app, `${prefix}-models`, { env, config, vpc: main.network.vpc, cluster: main.api.cluster, apiSecurityGroup: main.api.taskSecurityGroup });
      models.addStackDependency(registry, 'each model server pulls its image from its own repository');
      models.addStackDependency(main, 'the model servers run in the VPC and cluster of the main stack');
    }
    let drData: DrDataStack | undefined;
    if (config.pilotLight && dr.vpc && dr.logKey) {
      drData = new DrDataStack(app, `${prefix}-dr-data`, { env: { account: config.account, region: config.drRegion }, config, vpc: dr.vpc, logKey: dr.logKey });
      drData.addStackDependency(main, 'the secondary joins the global cluster the main stack creates');
      drData.addStackDependency(dr, 'the secondary runs in the DR VPC');
    }
    for (const stack of [registry, dr, main, ...(models ? [models] : []), ...(drData ? [drData] : [])]) applySuppressions(stack);
    stacks[name] = { config, registry, main, dr, ...(models ? { models } : {}), ...(drData ? { drData } : {}) };
  }
  // The registry's replication configuration (in one registry stack per registry) must find each
  // DR repository in place before the first replicated push, or ECR creates it with its defaults.
  for (const { registry } of Object.values(stacks)) {
    for (const peer of registry.replicated) {
      const dr = stacks[peer.name]?.dr;
      if (dr) registry.addStackDependency(dr, `the ${peer.name} DR repository must exist before replication copies images into it`);
    }
  }
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  Aspects.of(app).add(new HIPAASecurityChecks({ verbose: true }));
  return { app, stacks };
}
