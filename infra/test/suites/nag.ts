import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App, Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks, HIPAASecurityChecks } from 'cdk-nag';
import { suppressionList } from '../../lib/nag.js';
import { app, nagFindings, template } from '../support/synth.js';

describe('the app', () => {
  const { stacks } = app();
  const all = Object.values(stacks).flatMap((s) => [s.registry, s.dr, s.main, ...(s.models ? [s.models] : []), ...(s.drData ? [s.drData] : [])]);

  it('synthesizes registry, DR, main and model-server stacks for dev and prod, and the pilot-light DR data stack for prod only', () => {
    assert.deepEqual(all.map((s) => s.stackName).sort(), [
      'AgenticPet-dev',
      'AgenticPet-dev-dr',
      'AgenticPet-dev-models',
      'AgenticPet-dev-registry',
      'AgenticPet-prod',
      'AgenticPet-prod-dr',
      'AgenticPet-prod-dr-data',
      'AgenticPet-prod-models',
      'AgenticPet-prod-registry',
    ]);
    for (const stack of all) assert.ok(Object.keys(template(stack).toJSON().Resources ?? {}).length > 0, `${stack.stackName} has resources`);
  });

  for (const pack of ['AwsSolutions', 'HIPAA.Security'] as const) {
    it(`cdk-nag ${pack} reports no unsuppressed errors on any stack`, () => {
      const errors = all.flatMap((stack) => nagFindings(stack, 'error', pack));
      assert.deepEqual(errors, []);
    });
  }

  it('the packs really ran: suppressed findings are recorded in the templates', () => {
    const metadata = JSON.stringify(template(stacks.prod!.main).toJSON());
    assert.match(metadata, /"rules_to_suppress"/);
    assert.match(metadata, /AwsSolutions-ECS2/);
    assert.match(metadata, /HIPAA\.Security-RDSInBackupPlan/);
    const drData = JSON.stringify(template(stacks.prod!.drData!).toJSON());
    assert.match(drData, /"rules_to_suppress"/);
    assert.match(drData, /HIPAA\.Security-RDSInBackupPlan/);
  });

  it('every suppression names a rule and gives a reason', () => {
    const list = suppressionList();
    assert.ok(list.length > 0, 'suppressions listed');
    for (const s of list) {
      assert.match(s.id, /^(AwsSolutions|HIPAA\.Security)-[A-Za-z0-9]+$/);
      assert.ok(s.reason.length >= 40, `${s.path} ${s.id} has a written reason`);
    }
  });
});

describe('cdk-nag catches what it should', () => {
  it('an unencrypted, unversioned, unlogged bucket fails both packs', () => {
    const canary = new App();
    const stack = new Stack(canary, 'Canary');
    new s3.Bucket(stack, 'Plain', { encryption: s3.BucketEncryption.UNENCRYPTED });
    Aspects.of(canary).add(new AwsSolutionsChecks());
    Aspects.of(canary).add(new HIPAASecurityChecks());
    canary.synth();
    const annotations = Annotations.fromStack(stack);
    assert.ok(annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-S1')).length > 0);
    assert.ok(annotations.findError('*', Match.stringLikeRegexp('HIPAA\\.Security-S3BucketVersioningEnabled')).length > 0);
  });
});
