"""An AWS WAF web ACL in front of the API stage: one IP address sending more than its share is blocked before it
reaches API Gateway's throttles, so unsigned junk cannot use up the limits Twilio's real callbacks need.

Twilio's webhooks come from many of Twilio's addresses, none of them fixed; the per-IP limit (context key
`apiWafRequestsPerIp`, per 5 minutes) is far above what one of them sends for a line's calls. Everything else is
allowed: each route still checks its signature (Twilio) or SigV4 (call control) and has its own throttle.
Costs (us-east-1 list prices): USD 5/month for the web ACL, USD 1/month for the rule, USD 0.60 per million requests.
Context key `apiWaf=false` leaves it out.
"""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

RATE_RULE_NAME = "requests-per-ip"
RATE_WINDOW_SECONDS = 300
THROTTLED_STATUS = 429  # "Too Many Requests", not WAF's default 403: the caller was not refused, it sent too much


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


class ApiFirewall(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: apigateway.Stage, requests_per_ip: int, metric_prefix: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.rate_metric_name = f"{metric_prefix}-{RATE_RULE_NAME}"
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            description="Phone voice agent API: per-IP rate limit",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(f"{metric_prefix}-api"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name=RATE_RULE_NAME,
                    priority=0,
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=requests_per_ip,
                            evaluation_window_sec=RATE_WINDOW_SECONDS,
                        )
                    ),
                    action=wafv2.CfnWebACL.RuleActionProperty(
                        block=wafv2.CfnWebACL.BlockActionProperty(
                            custom_response=wafv2.CfnWebACL.CustomResponseProperty(response_code=THROTTLED_STATUS)
                        )
                    ),
                    visibility_config=_visibility(self.rate_metric_name),
                )
            ],
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "StageAssociation", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
