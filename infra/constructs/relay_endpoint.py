"""The relay's public `wss://` endpoint: an Application Load Balancer, reached in one of two ways.

* Custom domain (context `domainName`, `hostedZoneId`, `hostedZoneName`): an ACM certificate validated in the hosted
  zone, an HTTPS listener on an internet-facing load balancer, a Route 53 alias. TLS ends at the balancer with a
  TLS 1.2+ policy; Twilio connects to it directly.
* Out of the box (no domain): CloudFront gives a `wss://<id>.cloudfront.net` address with AWS's certificate, and
  reaches the load balancer through a CloudFront VPC origin: the balancer is internal (private subnets, no public
  address), so nothing on the internet can reach it, and the CloudFront -> balancer leg (audio, stream token, origin
  header) runs inside AWS's network, never over the internet. VPC origins carry WebSockets since May 2026. TLS to
  the origin was the alternative; it needs a certificate for a name the deployment owns, which this mode has none of
  (infra/DEPLOY.md, "Transport"). The balancer still admits only CloudFront's origin-facing addresses and requests
  carrying the secret header CloudFront adds (defence in depth: another distribution in the account cannot use it).

Either way the balancer holds WebSockets for a whole call: idle timeout at its maximum, deregistration delay longer
than the longest call, health check on the relay's `/healthz` (503 while the task warms up or drains; timings in
`infra.constants`, where they agree with the relay's readiness deadline).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.constants import (
    ALB_IDLE_TIMEOUT_SECONDS,
    CLOUDFRONT_ORIGIN_READ_TIMEOUT_SECONDS,
    CLOUDFRONT_PREFIX_LIST_NAME,
    ORIGIN_VERIFY_HEADER,
    RELAY_HEALTH_CHECK_INTERVAL_SECONDS,
    RELAY_HEALTH_CHECK_TIMEOUT_SECONDS,
    RELAY_HEALTH_PATH,
    RELAY_HEALTHY_THRESHOLD,
    RELAY_MEDIA_STREAM_PATH,
    RELAY_PORT,
    RELAY_UNHEALTHY_THRESHOLD,
)
from infra.nag import acknowledge
from infra.settings import DeploySettings

ORIGIN_SECRET_LENGTH = 48
_FORWARD_RULE_PRIORITY = 10


class RelayEndpoint(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        vpc: ec2.IVpc,
        access_logs_bucket: s3.IBucket,
        deregistration_delay_seconds: int,
    ) -> None:
        """`deregistration_delay_seconds`: longer than the longest call any receptionist profile allows."""
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=vpc,
            description="Relay load balancer: inbound from Twilio (custom domain) or CloudFront only",
            allow_all_outbound=False,  # egress to the relay tasks is added when they register
        )
        # The task-group rule is emitted as a separate resource, which leaves this group with no inline egress, and
        # CloudFormation then gives it the default allow-all egress. One inline rule (the VPC, the relay port) keeps
        # the load balancer's egress to where its targets are.
        self.security_group.add_egress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(RELAY_PORT), "Relay tasks in this VPC only"
        )
        # Internet-facing only when Twilio connects to it directly (custom domain); behind CloudFront it is internal.
        self.load_balancer = self._build_load_balancer(vpc, access_logs_bucket, internet_facing=settings.custom_domain)
        self.target_group = self._build_target_group(vpc, deregistration_delay_seconds)
        self.distribution: cloudfront.Distribution | None = None
        if settings.domain_name and settings.hosted_zone_id and settings.hosted_zone_name:
            self.public_host = settings.domain_name
            self._build_custom_domain(settings.domain_name, settings.hosted_zone_id, settings.hosted_zone_name)
        else:
            self.distribution = self._build_cloudfront(settings)
            self.public_host = self.distribution.distribution_domain_name
        self.public_url = f"wss://{self.public_host}{RELAY_MEDIA_STREAM_PATH}"
        self.health_url = f"https://{self.public_host}{RELAY_HEALTH_PATH}"

    # ---- shared by both modes ----------------------------------------------------------------------------------------
    def _build_load_balancer(
        self, vpc: ec2.IVpc, access_logs_bucket: s3.IBucket, *, internet_facing: bool
    ) -> elbv2.ApplicationLoadBalancer:
        load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=internet_facing,
            vpc_subnets=ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PUBLIC if internet_facing else ec2.SubnetType.PRIVATE_WITH_EGRESS
            ),
            security_group=self.security_group,
            # A WebSocket the balancer considers idle is cut; a call on hold sends little. Use the maximum.
            idle_timeout=Duration.seconds(ALB_IDLE_TIMEOUT_SECONDS),
            drop_invalid_header_fields=True,
        )
        load_balancer.log_access_logs(access_logs_bucket, prefix="alb")
        return load_balancer

    def _build_target_group(self, vpc: ec2.IVpc, deregistration_delay_seconds: int) -> elbv2.ApplicationTargetGroup:
        return elbv2.ApplicationTargetGroup(
            self,
            "RelayTargets",
            vpc=vpc,
            port=RELAY_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            # A stopping task keeps its established WebSockets this long before the balancer closes them: no
            # shorter than the longest call. Draining ends early once the task has no connection left.
            deregistration_delay=Duration.seconds(deregistration_delay_seconds),
            health_check=elbv2.HealthCheck(
                path=RELAY_HEALTH_PATH,
                healthy_http_codes="200",  # 503 = still warming up, or draining: take no new calls there
                interval=Duration.seconds(RELAY_HEALTH_CHECK_INTERVAL_SECONDS),
                timeout=Duration.seconds(RELAY_HEALTH_CHECK_TIMEOUT_SECONDS),
                healthy_threshold_count=RELAY_HEALTHY_THRESHOLD,
                unhealthy_threshold_count=RELAY_UNHEALTHY_THRESHOLD,
            ),
        )

    # ---- custom domain -----------------------------------------------------------------------------------------------
    def _build_custom_domain(self, domain_name: str, hosted_zone_id: str, hosted_zone_name: str) -> None:
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "HostedZone", hosted_zone_id=hosted_zone_id, zone_name=hosted_zone_name
        )
        certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=domain_name,
            validation=acm.CertificateValidation.from_dns(zone),
        )
        self.security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Twilio media streams (wss) from the internet"
        )
        acknowledge(
            self.security_group,
            "AwsSolutions-EC23",
            "Twilio's media servers connect from the public internet with no fixed address list; every upgrade is "
            "authenticated by the relay (X-Twilio-Signature + single-use stream token) before any model cost.",
        )
        self.load_balancer.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[certificate],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            default_target_groups=[self.target_group],
            open=False,  # the ingress rule above is the only one
        )
        route53.ARecord(
            self,
            "AliasRecord",
            zone=zone,
            record_name=domain_name,
            target=route53.RecordTarget.from_alias(route53_targets.LoadBalancerTarget(self.load_balancer)),
        )

    # ---- CloudFront --------------------------------------------------------------------------------------------------
    def _build_cloudfront(self, settings: DeploySettings) -> cloudfront.Distribution:
        origin_secret = secretsmanager.Secret(
            self,
            "OriginVerifySecret",
            description="Header value CloudFront adds to requests to the relay load balancer (generated)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                # ALB header conditions treat * and ? as wildcards: letters and digits only.
                password_length=ORIGIN_SECRET_LENGTH,
                exclude_punctuation=True,
            ),
        )
        acknowledge(
            origin_secret,
            "AwsSolutions-SMG4",
            "Shared only between CloudFront and the load balancer, both configured from it by this stack; rotating "
            "means redeploying both, which a rotation Lambda cannot do.",
        )
        # Resolved by CloudFormation at deploy time ({{resolve:secretsmanager:...}}): never in the template.
        origin_secret_value = origin_secret.secret_value.unsafe_unwrap()

        prefix_list_id = settings.cloudfront_prefix_list_id or self._lookup_cloudfront_prefix_list()
        # A VPC origin's traffic comes from CloudFront's origin-facing addresses, through its network interfaces in
        # this VPC; nothing else may connect, even from inside the VPC.
        self.security_group.add_ingress_rule(
            ec2.Peer.prefix_list(prefix_list_id), ec2.Port.tcp(80), "CloudFront origin-facing addresses only"
        )
        listener = self.load_balancer.add_listener(
            "Http",
            port=80,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
            default_action=elbv2.ListenerAction.fixed_response(
                403, content_type="text/plain", message_body="use the CloudFront address"
            ),
        )
        listener.add_action(
            "FromCloudFront",
            priority=_FORWARD_RULE_PRIORITY,
            conditions=[elbv2.ListenerCondition.http_header(ORIGIN_VERIFY_HEADER, [origin_secret_value])],
            action=elbv2.ListenerAction.forward([self.target_group]),
        )
        distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Relay wss:// endpoint for Twilio media streams",
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.VpcOrigin.with_application_load_balancer(
                    self.load_balancer,
                    protocol_policy=cloudfront.OriginProtocolPolicy.HTTP_ONLY,
                    http_port=80,
                    custom_headers={ORIGIN_VERIFY_HEADER: origin_secret_value},
                    read_timeout=Duration.seconds(CLOUDFRONT_ORIGIN_READ_TIMEOUT_SECONDS),
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                # Nothing here is cacheable, and every viewer header (Upgrade, Sec-WebSocket-*,
                # X-Twilio-Signature) and the query string must reach the relay untouched.
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER,
            ),
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR1",
            "Callers reach the agent through Twilio; only Twilio's media servers connect here, so viewer geography "
            "says nothing about who is calling.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR2",
            "Only Twilio connects; each WebSocket is authenticated by X-Twilio-Signature and a single-use stream "
            "token before any work is done, and the load balancer admits only this distribution.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR3",
            "Every request is logged by the load balancer's access logs behind it; CloudFront standard logging needs "
            "ACL-enabled buckets, which the log bucket disables.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR4",
            "The default *.cloudfront.net certificate cannot pin a minimum TLS version; the custom-domain mode "
            "(context domainName) serves TLS 1.2+ only.",
        )
        acknowledge(
            distribution,
            "AwsSolutions-CFR5",
            "The origin is an internal load balancer reached through a CloudFront VPC origin, inside AWS's network; "
            "it has no certificate without a domain (module docstring). No SSLv3 is involved.",
        )
        return distribution

    def _lookup_cloudfront_prefix_list(self) -> str:
        """The prefix list's ID differs per region and cannot be looked up offline at synth: ask EC2 at deploy."""
        call = cr.AwsSdkCall(
            service="EC2",
            action="describeManagedPrefixLists",
            parameters={"Filters": [{"Name": "prefix-list-name", "Values": [CLOUDFRONT_PREFIX_LIST_NAME]}]},
            physical_resource_id=cr.PhysicalResourceId.of(CLOUDFRONT_PREFIX_LIST_NAME),
            output_paths=["PrefixLists.0.PrefixListId"],
        )
        lookup = cr.AwsCustomResource(
            self,
            "CloudFrontPrefixList",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["ec2:DescribeManagedPrefixLists"], resources=["*"])]
            ),
            install_latest_aws_sdk=False,
        )
        acknowledge(
            lookup,
            "AwsSolutions-IAM5",
            "ec2:DescribeManagedPrefixLists is a read-only describe call without resource-level permissions.",
            "Resource::*",
        )
        # AwsCustomResource runs on one CDK-managed function per stack, created beside the stack's other resources.
        singleton_id = "AWS" + cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", "")
        singleton = Stack.of(self).node.try_find_child(singleton_id)
        if singleton is not None:
            acknowledge(
                singleton,
                "AwsSolutions-IAM4",
                "CDK's AwsCustomResource function uses the AWS managed basic-execution policy (CDK-internal).",
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            )
        return lookup.get_response_field("PrefixLists.0.PrefixListId")
