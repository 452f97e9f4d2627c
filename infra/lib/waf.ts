import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import type { EnvConfig } from './config.js';

export const MANAGED_RULE_GROUPS = ['AWSManagedRulesCommonRuleSet', 'AWSManagedRulesKnownBadInputsRuleSet', 'AWSManagedRulesAmazonIpReputationList', 'AWSManagedRulesSQLiRuleSet'] as const;

/** WAFv2 web ACL on the ALB: AWS managed rule groups in block mode plus a per-IP rate limit. */
export class WebAcl extends Construct {
  readonly acl: wafv2.CfnWebACL;

  constructor(scope: Construct, id: string, props: { config: EnvConfig; loadBalancerArn: string; logKey: kms.IKey }) {
    super(scope, id);
    const visibility = (metricName: string) => ({ cloudWatchMetricsEnabled: true, sampledRequestsEnabled: true, metricName });
    const managed = MANAGED_RULE_GROUPS.map((name, i) => ({
      name,
      priority: 10 + i,
      statement: { managedRuleGroupStatement: { vendorName: 'AWS', name } },
      // `none` keeps each rule's own action (block): the group is enforced, not counted.
      overrideAction: { none: {} },
      visibilityConfig: visibility(name),
    }));
    this.acl = new wafv2.CfnWebACL(this, 'Acl', {
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: visibility(`agenticpet-${props.config.name}`),
      rules: [
        {
          name: 'rate-limit-per-ip',
          priority: 1,
          action: { block: {} },
          statement: { rateBasedStatement: { limit: props.config.wafRateLimitPer5Min, aggregateKeyType: 'IP', evaluationWindowSec: 300 } },
          visibilityConfig: visibility('rate-limit-per-ip'),
        },
        ...managed,
      ],
    });
    // WAF requires the log group name to start with aws-waf-logs-.
    const logGroupName = `aws-waf-logs-agenticpet-${props.config.name}`;
    const wafLogs = new logs.LogGroup(this, 'Logs', {
      logGroupName,
      retention: props.config.logRetentionDays,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const logging = new wafv2.CfnLoggingConfiguration(this, 'Logging', {
      resourceArn: this.acl.attrArn,
      logDestinationConfigs: [Stack.of(this).formatArn({ service: 'logs', resource: 'log-group', resourceName: logGroupName, arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
      redactedFields: [{ singleHeader: { Name: 'authorization' } }],
    });
    logging.node.addDependency(wafLogs);
    new wafv2.CfnWebACLAssociation(this, 'Association', { resourceArn: props.loadBalancerArn, webAclArn: this.acl.attrArn });
  }
}
