"""AWS WAF in front of the API stage: AWS managed rule groups, a rate limit per source IP,
and a tighter one on the token route (``POST /v1/auth/token``, which has no key authorizer).

The common rule set's ``SizeRestrictions_BODY`` (8 KB) is set to count, not block: chat
prompts are routinely larger. Body size is bounded by API Gateway (10 MB) and checked by the
API function, which answers with a typed error.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from functions.common.routes import ROUTES
from infra.settings import Settings

# The token route (POST /v1/auth/token, no key authorizer): at most this many requests per
# source IP per 5 minutes, on top of the API-wide limit. A CI runner exchanges once per job;
# this only stops a flood of forged tokens before it reaches the function.
EXCHANGE_PATH: Final = next(r.path for r in ROUTES if r.function == "token")
EXCHANGE_RATE_LIMIT: Final = 300

_MANAGED: Final = (
    # (priority, rule group, rules set to COUNT)
    (1, "AWSManagedRulesAmazonIpReputationList", ()),
    (2, "AWSManagedRulesCommonRuleSet", ("SizeRestrictions_BODY",)),
    (3, "AWSManagedRulesKnownBadInputsRuleSet", ()),
)


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


class Waf(Construct):
    """A regional WebACL associated with one API Gateway stage."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: Settings, stage_arn: str
    ) -> None:
        super().__init__(scope, construct_id)
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name="RatePerSourceIp",
                priority=0,
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP", limit=settings.waf_rate_limit
                    )
                ),
                visibility_config=_visibility("RatePerSourceIp"),
            ),
            wafv2.CfnWebACL.RuleProperty(
                name="TokenRoutePerSourceIp",
                priority=10,
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP",
                        limit=EXCHANGE_RATE_LIMIT,
                        scope_down_statement=wafv2.CfnWebACL.StatementProperty(
                            byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                                field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                                positional_constraint="ENDS_WITH",
                                search_string=EXCHANGE_PATH,
                                text_transformations=[
                                    wafv2.CfnWebACL.TextTransformationProperty(
                                        priority=0, type="NONE"
                                    )
                                ],
                            )
                        ),
                    )
                ),
                visibility_config=_visibility("TokenRoutePerSourceIp"),
            ),
        ]
        for priority, group, count_only in _MANAGED:
            rules.append(
                wafv2.CfnWebACL.RuleProperty(
                    name=group,
                    priority=priority,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS",
                            name=group,
                            rule_action_overrides=[
                                wafv2.CfnWebACL.RuleActionOverrideProperty(
                                    name=rule,
                                    action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                                )
                                for rule in count_only
                            ]
                            or None,
                        )
                    ),
                    visibility_config=_visibility(group),
                )
            )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(f"{settings.stack_name}-waf"),
            rules=rules,
        )
        wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
