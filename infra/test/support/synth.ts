import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { Stack } from 'aws-cdk-lib';
import { buildApp } from '../../lib/app.js';

/**
 * Synthesizes the whole app (dev and prod, every stack, with the cdk-nag packs) once per test
 * process and hands out the templates, so each test file pays for one synthesis only.
 */
let built: ReturnType<typeof buildApp> | undefined;
const templates = new Map<Stack, Template>();

export function app(): ReturnType<typeof buildApp> {
  if (!built) {
    // The built-in CloudFormation validation only repeats that the AZs are pinned (on purpose: synthesis never looks them up).
    built = buildApp({ builtinCloudFormationValidation: false, context: { 'aws:cdk:enable-path-metadata': false } });
    built.app.synth();
  }
  return built;
}

export function template(stack: Stack): Template {
  let t = templates.get(stack);
  if (!t) {
    t = Template.fromStack(stack);
    templates.set(stack, t);
  }
  return t;
}

export function stacksOf(env: 'dev' | 'prod') {
  const s = app().stacks[env];
  if (!s) throw new Error(`no stacks for ${env}`);
  return s;
}

/** Unsuppressed cdk-nag findings of one pack on a stack, as "path: message" lines. */
export function nagFindings(stack: Stack, level: 'error' | 'warning', pack: 'AwsSolutions' | 'HIPAA.Security'): string[] {
  const annotations = Annotations.fromStack(stack);
  const pattern = Match.stringLikeRegexp(`^${pack.replace('.', '\\.')}-.*`);
  const found = level === 'error' ? annotations.findError('*', pattern) : annotations.findWarning('*', pattern);
  return found.map((f) => `${f.id}: ${String(f.entry.data).split('\n')[0]}`);
}
