import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { configs, type EnvConfig } from '../../lib/config.js';
import { RegistryStack, registryPeers, replicationOwner, replicationRules, repositoryName } from '../../lib/registry-stack.js';
import { app, stacksOf, template } from '../support/synth.js';

// ECR: the primary repository, its replication to the DR region, and the DR-region repository.
type Resource = { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string };
type Rule = { Destinations: { Region: string; RegistryId: string }[]; RepositoryFilters: { Filter: string; FilterType: string }[] };
const ofType = (t: Template, type: string) => Object.values(t.toJSON().Resources as Record<string, Resource>).filter((r) => r.Type === type);

for (const env of ['dev', 'prod'] as const) {
  const config = configs[env];
  describe(`${env}: image registry and its DR replica`, () => {
    const stacks = stacksOf(env);
    const registry = template(stacks.registry);
    const dr = template(stacks.dr);
    const [primary] = ofType(registry, 'AWS::ECR::Repository').filter((r) => r.Properties.RepositoryName === repositoryName(config));

    it(`${config.drRegion} holds a repository ${repositoryName(config)} with the primary's settings: immutable tags, scan on push, KMS, the same lifecycle policy, retained`, () => {
      assert.notEqual(config.drRegion, config.region);
      assert.equal(stacks.dr.region, config.drRegion);
      // The API's repository and one per model server (their names share its replication prefix).
      const repos = ofType(dr, 'AWS::ECR::Repository');
      assert.equal(repos.length, 1 + config.modelServers.length);
      const api = repos.filter((r) => r.Properties.RepositoryName === repositoryName(config));
      assert.equal(api.length, 1);
      const p = api[0]!.Properties;
      assert.equal(p.RepositoryName, repositoryName(config));
      assert.equal(p.ImageTagMutability, 'IMMUTABLE');
      assert.deepEqual(p.ImageScanningConfiguration, { ScanOnPush: true });
      assert.deepEqual(p.EncryptionConfiguration, { EncryptionType: 'KMS' });
      assert.equal(api[0]!.DeletionPolicy, 'Retain');
      // Literally the same policy text as the primary repository's.
      const text = (p.LifecyclePolicy as { LifecyclePolicyText: string }).LifecyclePolicyText;
      assert.equal(text, (primary!.Properties.LifecyclePolicy as { LifecyclePolicyText: string }).LifecyclePolicyText);
      const rules = (JSON.parse(text) as { rules: { selection: { tagStatus: string; countType: string; countNumber: number } }[] }).rules.map((r) => r.selection);
      assert.deepEqual(rules, [
        { tagStatus: 'untagged', countType: 'sinceImagePushed', countNumber: 14, countUnit: 'days' },
        { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 50 },
      ]);
      for (const key of ['RepositoryName', 'ImageTagMutability', 'ImageScanningConfiguration', 'EncryptionConfiguration', 'LifecyclePolicy']) {
        assert.deepEqual(p[key], primary!.Properties[key], `${key} as in the primary region`);
      }
    });

    const owner = replicationOwner(config);
    const replications = ofType(registry, 'AWS::ECR::ReplicationConfiguration');
    if (owner.name !== config.name) {
      it(`the registry's replication configuration (one per account and region) is in AgenticPet-${owner.name}-registry, not here`, () => {
        assert.equal(replications.length, 0);
        assert.deepEqual(stacks.registry.replicated, []);
      });
    } else {
      it(`replicates every repository of the registry to its DR region in the same account, ${repositoryName(config)} to ${config.drRegion}`, () => {
        assert.equal(replications.length, 1);
        const rules = (replications[0]!.Properties.ReplicationConfiguration as { Rules: Rule[] }).Rules;
        const peers = registryPeers(config);
        assert.deepEqual(peers.map((c) => c.name).sort(), Object.values(configs).filter((c) => c.account === config.account && c.region === config.region).map((c) => c.name).sort());
        assert.equal(rules.length, peers.length, 'one rule per environment of this registry');
        for (const peer of peers) {
          const rule = rules.find((r) => r.RepositoryFilters.some((f) => f.Filter === repositoryName(peer)));
          assert.ok(rule, `a rule for ${repositoryName(peer)}`);
          assert.deepEqual(rule.RepositoryFilters, [{ Filter: repositoryName(peer), FilterType: 'PREFIX_MATCH' }]);
          assert.deepEqual(rule.Destinations, [{ Region: peer.drRegion, RegistryId: peer.account }]);
          assert.notEqual(rule.Destinations[0]!.Region, stacks.registry.region, 'to another region');
          assert.equal(rule.Destinations[0]!.RegistryId, stacks.registry.account, 'within the same account');
        }
        // A prefix filter: each rule must not also pick up another environment's repository.
        for (const rule of rules) {
          const filter = rule.RepositoryFilters[0]!.Filter;
          assert.deepEqual(Object.values(configs).map(repositoryName).filter((n) => n.startsWith(filter)), [filter]);
        }
      });

      it('deploys after the DR stacks that hold the target repositories', () => {
        for (const peer of stacks.registry.replicated) {
          assert.ok(stacks.registry.dependencies.includes(stacksOf(peer.name).dr), `AgenticPet-${env}-registry after AgenticPet-${peer.name}-dr`);
        }
      });
    }
  });
}

describe('registry replication ownership', () => {
  it('exactly one replication configuration per registry (account + region) across the whole app', () => {
    const count = new Map<string, number>();
    for (const s of Object.values(app().stacks)) {
      const key = `${s.registry.account}/${s.registry.region}`;
      count.set(key, (count.get(key) ?? 0) + ofType(template(s.registry), 'AWS::ECR::ReplicationConfiguration').length);
    }
    for (const [registry, n] of count) assert.equal(n, 1, registry);
  });

  it('environments in different accounts each carry their own rule; in one account prod carries both', () => {
    const dev: EnvConfig = { ...configs.dev, account: '222222222222' };
    const prod: EnvConfig = { ...configs.prod, account: '333333333333' };
    assert.equal(replicationOwner(dev, [dev, prod]).name, 'dev');
    assert.equal(replicationOwner(prod, [dev, prod]).name, 'prod');
    for (const c of [dev, prod]) {
      const stack = new RegistryStack(new App(), `R-${c.name}`, { env: { account: c.account, region: c.region }, config: c, environments: [dev, prod] });
      const [replication] = ofType(Template.fromStack(stack), 'AWS::ECR::ReplicationConfiguration');
      assert.deepEqual((replication!.Properties.ReplicationConfiguration as { Rules: Rule[] }).Rules, [
        { Destinations: [{ Region: c.drRegion, RegistryId: c.account }], RepositoryFilters: [{ Filter: repositoryName(c), FilterType: 'PREFIX_MATCH' }] },
      ]);
    }
    assert.equal(replicationOwner(configs.dev, [configs.dev, configs.prod]).name, 'prod');
    assert.equal(replicationOwner(configs.prod, [configs.dev, configs.prod]).name, 'prod');
  });

  it('refuses to replicate into the source region', () => {
    assert.throws(() => replicationRules([{ ...configs.prod, drRegion: configs.prod.region }]), /drRegion must differ/);
  });
});
