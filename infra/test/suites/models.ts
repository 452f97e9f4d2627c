import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { configs, modelImageTagVariable, type EnvConfig } from '../../lib/config.js';
import { MODEL_SERVER_PORT, modelNamespaceName, modelServerUrl } from '../../lib/model-service.js';
import { ModelsStack } from '../../lib/models-stack.js';
import { modelRepositoryName, repositoryName } from '../../lib/registry-stack.js';
import { stacksOf, template } from '../support/synth.js';

// Issue 13 §7: each model server is its own image in its own ECR repository (immutable tags) and
// its own private Fargate service, deployed and rolled back by image tag like the API.
type Resource = { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string };
const ofType = (t: Template, type: string) => Object.entries(t.toJSON().Resources as Record<string, Resource>).filter(([, r]) => r.Type === type);
type Container = { Name: string; Image: { 'Fn::Join': [string, unknown[]] }; Environment?: { Name: string; Value: unknown }[]; HealthCheck?: { Command: string[] }; PortMappings: { ContainerPort: number }[]; User?: string; ReadonlyRootFilesystem?: boolean };
const imageOf = (c: Container) => c.Image['Fn::Join'][1].filter((p) => typeof p === 'string').join('');

for (const env of ['dev', 'prod'] as const) {
  const config = configs[env];
  describe(`${env}: model servers`, () => {
    const stacks = stacksOf(env);
    assert.ok(stacks.models, 'a models stack');
    const models = template(stacks.models);
    const main = template(stacks.main);
    const registry = template(stacks.registry);
    const dr = template(stacks.dr);

    for (const server of config.modelServers) {
      const name = modelRepositoryName(config, server.model);

      it(`${server.model}: its own ECR repository ${name}, immutable tags, scan on push, KMS, retained; the same twin in ${config.drRegion}`, () => {
        for (const t of [registry, dr]) {
          const repos = ofType(t, 'AWS::ECR::Repository').filter(([, r]) => r.Properties.RepositoryName === name);
          assert.equal(repos.length, 1);
          const [, repo] = repos[0]!;
          assert.equal(repo.Properties.ImageTagMutability, 'IMMUTABLE');
          assert.deepEqual(repo.Properties.ImageScanningConfiguration, { ScanOnPush: true });
          assert.deepEqual(repo.Properties.EncryptionConfiguration, { EncryptionType: 'KMS' });
          assert.equal(repo.DeletionPolicy, 'Retain');
        }
        assert.notEqual(name, repositoryName(config), 'not the API repository');
        // The environment's replication rule is a prefix match on the API repository's name.
        assert.ok(name.startsWith(repositoryName(config)), 'covered by the replication rule');
      });

      it(`${server.model}: its own Fargate service in the models stack (ARM64, the configured tag, port ${MODEL_SERVER_PORT}, /v2/health/ready), not in the API stack`, () => {
        assert.equal(ofType(models, 'AWS::ECS::Service').length, config.modelServers.length);
        assert.equal(ofType(main, 'AWS::ECS::Service').length, 1, 'the API stack still holds only the API service');
        const tasks = ofType(models, 'AWS::ECS::TaskDefinition').map(([, r]) => r.Properties);
        const task = tasks.find((p) => (p.ContainerDefinitions as Container[]).some((c) => imageOf(c).includes(`/${name}:`)));
        assert.ok(task, 'a task definition running the model image');
        assert.deepEqual(task.RuntimePlatform, { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' });
        assert.equal(task.Cpu, String(server.taskCpu));
        const [c] = task.ContainerDefinitions as Container[];
        assert.ok(imageOf(c!).endsWith(`/${name}:${server.imageTagOrDigest}`), imageOf(c!));
        assert.deepEqual(c!.PortMappings.map((p) => p.ContainerPort), [MODEL_SERVER_PORT]);
        assert.match(c!.HealthCheck!.Command.join(' '), new RegExp(`127\\.0\\.0\\.1:${MODEL_SERVER_PORT}/v2/health/ready`));
        assert.equal(c!.User, 'node');
        assert.equal(c!.ReadonlyRootFilesystem, true);
      });

      it(`${server.model}: private (no public IP, private subnets), rolled back by the circuit breaker, registered in Cloud Map`, () => {
        const [[, svc]] = ofType(models, 'AWS::ECS::Service') as [[string, Resource]];
        const net = (svc.Properties.NetworkConfiguration as { AwsvpcConfiguration: { AssignPublicIp: string; Subnets: unknown[] } }).AwsvpcConfiguration;
        assert.equal(net.AssignPublicIp, 'DISABLED');
        assert.ok(net.Subnets.every((s) => /privateSubnet/.test(JSON.stringify(s))), JSON.stringify(net.Subnets));
        assert.deepEqual((svc.Properties.DeploymentConfiguration as { DeploymentCircuitBreaker: unknown }).DeploymentCircuitBreaker, { Enable: true, Rollback: true });
        assert.equal(svc.Properties.DesiredCount, server.desiredTasks);
        assert.ok(Array.isArray(svc.Properties.ServiceRegistries) && svc.Properties.ServiceRegistries.length === 1);
        const [[, ns]] = ofType(models, 'AWS::ServiceDiscovery::PrivateDnsNamespace') as [[string, Resource]];
        assert.equal(ns.Properties.Name, modelNamespaceName(config));
        assert.ok(ofType(models, 'AWS::ServiceDiscovery::Service').some(([, r]) => r.Properties.Name === server.model));
        assert.equal(ofType(models, 'AWS::ElasticLoadBalancingV2::LoadBalancer').length, 0, 'no load balancer, public or not');
      });

      it(`${server.model}: its security group admits port ${MODEL_SERVER_PORT} from the API tasks' security group only`, () => {
        const sgs = ofType(models, 'AWS::EC2::SecurityGroup');
        assert.equal(sgs.length, 1);
        const [sgId, sg] = sgs[0]!;
        assert.equal(sg.Properties.SecurityGroupIngress, undefined, 'no inline ingress (no CIDR, no other source)');
        const ingress = ofType(models, 'AWS::EC2::SecurityGroupIngress').map(([, r]) => r.Properties);
        assert.equal(ingress.length, 1);
        const rule = ingress[0]!;
        assert.deepEqual(rule.GroupId, { 'Fn::GetAtt': [sgId, 'GroupId'] });
        assert.equal(rule.CidrIp, undefined);
        assert.equal(rule.FromPort, MODEL_SERVER_PORT);
        assert.equal(rule.ToPort, MODEL_SERVER_PORT);
        assert.match(JSON.stringify(rule.SourceSecurityGroupId), /ApiTaskSg/);
      });

      it(`the API gets MODEL_SERVER_URL = ${modelServerUrl(config, server.model)}, the Cloud Map name of the server`, () => {
        const apiTask = ofType(main, 'AWS::ECS::TaskDefinition').map(([, r]) => r.Properties).find((p) => (p.ContainerDefinitions as Container[]).some((c) => c.Name === 'api'));
        const envVars = (apiTask!.ContainerDefinitions as Container[])[0]!.Environment!;
        assert.deepEqual(envVars.filter((e) => e.Name === 'MODEL_SERVER_URL').map((e) => e.Value), [modelServerUrl(config, server.model)]);
        assert.equal(modelServerUrl(config, server.model), `http://${server.model}.${modelNamespaceName(config)}:${MODEL_SERVER_PORT}`);
      });
    }
  });
}

describe('a model version is deployed and rolled back by its image tag', () => {
  const withTag = (tag: string) => {
    const config: EnvConfig = { ...configs.dev, modelServers: [{ ...configs.dev.modelServers[0]!, imageTagOrDigest: tag }] };
    const app = new App();
    const base = new Stack(app, 'Base', { env: { account: config.account, region: config.region } });
    const vpc = new ec2.Vpc(base, 'Vpc', { availabilityZones: [...config.availabilityZones], natGateways: 1 });
    const cluster = new ecs.Cluster(base, 'Cluster', { vpc });
    const apiSg = new ec2.SecurityGroup(base, 'ApiTaskSg', { vpc });
    const stack = new ModelsStack(app, 'Models', { env: { account: config.account, region: config.region }, config, vpc, cluster, apiSecurityGroup: apiSg });
    const [[, task]] = ofType(Template.fromStack(stack), 'AWS::ECS::TaskDefinition') as [[string, Resource]];
    return imageOf((task.Properties.ContainerDefinitions as Container[])[0]!);
  };

  it('the image tag is a parameter of the deploy: another tag, another image; the variable that sets it names the model', () => {
    assert.match(withTag('1.0.1'), /\/agenticpet-dev-model-image-kind:1\.0\.1$/);
    assert.match(withTag('1.0.0'), /\/agenticpet-dev-model-image-kind:1\.0\.0$/);
    assert.equal(modelImageTagVariable('image-kind'), 'AGENTICPET_MODEL_IMAGE_TAG_IMAGE_KIND');
  });

  it('a tag that is neither a tag nor a digest is refused at synth', () => {
    assert.throws(() => withTag('latest; rm -rf'), /neither an image tag nor a sha256 digest/);
  });
});
