"""Both ways the relay gets its wss:// address: CloudFront (out of the box) and a custom domain."""

from __future__ import annotations

from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from infra.constants import ORIGIN_VERIFY_HEADER
from infra.constructs.relay_endpoint import RelayEndpoint
from infra.settings import DeploySettings
from tests.infra.synth import Synthesized
from tests.infra.template_queries import container_environment, ingress_rules, resolves_to

CACHING_DISABLED_POLICY = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_ORIGIN_REQUEST_POLICY = "216adef6-5c7f-47e4-b989-5492eafa07d3"


def relay_public_urls(stack: Synthesized) -> list[object]:
    incoming = stack.stack.api.functions["IncomingCall"]
    lambda_env = stack.json["Resources"][stack.logical_id(incoming)]["Properties"]["Environment"]["Variables"]
    return [lambda_env["RELAY_PUBLIC_URL"], container_environment(stack)["RELAY_PUBLIC_URL"]]


# ---- CloudFront ------------------------------------------------------------------------------------------------------
def test_cloudfront_forwards_everything_uncached_over_https(cloudfront_stack: Synthesized):
    distribution = cloudfront_stack.only("AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    behavior = distribution["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert behavior["CachePolicyId"] == CACHING_DISABLED_POLICY
    assert behavior["OriginRequestPolicyId"] == ALL_VIEWER_ORIGIN_REQUEST_POLICY  # X-Twilio-Signature, Upgrade
    (origin,) = distribution["Origins"]
    assert resolves_to(
        origin["DomainName"], cloudfront_stack.logical_id(cloudfront_stack.stack.relay_endpoint.load_balancer)
    )
    (vpc_origin_id, vpc_origin) = next(iter(cloudfront_stack.resources("AWS::CloudFront::VpcOrigin").items()))
    assert origin["VpcOriginConfig"]["VpcOriginId"] == {"Fn::GetAtt": [vpc_origin_id, "Id"]}
    assert "CustomOriginConfig" not in origin
    endpoint = vpc_origin["Properties"]["VpcOriginEndpointConfig"]
    assert endpoint["OriginProtocolPolicy"] == "http-only"
    assert endpoint["Arn"] == {"Ref": cloudfront_stack.logical_id(cloudfront_stack.stack.relay_endpoint.load_balancer)}
    (header,) = origin["OriginCustomHeaders"]
    assert header["HeaderName"] == ORIGIN_VERIFY_HEADER
    assert "{{resolve:secretsmanager:" in str(header["HeaderValue"])  # never in the template in clear


def test_behind_cloudfront_the_load_balancer_is_internal_in_private_subnets(cloudfront_stack: Synthesized):
    """No internet path to the relay's balancer: CloudFront reaches it through its VPC origin, inside AWS."""
    balancer = cloudfront_stack.only("AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    assert balancer["Scheme"] == "internal"
    private = {
        cloudfront_stack.logical_id(subnet)
        for subnet in cloudfront_stack.stack.network.vpc.select_subnets(
            subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
        ).subnets
    }
    assert {subnet["Ref"] for subnet in balancer["Subnets"]} == private


def test_with_its_own_domain_the_load_balancer_faces_the_internet(custom_domain_stack: Synthesized):
    # Twilio connects to it directly there, over TLS to its certificate.
    balancer = custom_domain_stack.only("AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    assert balancer["Scheme"] == "internet-facing"
    assert not custom_domain_stack.resources("AWS::CloudFront::VpcOrigin")


def test_relay_url_is_the_distribution_address(cloudfront_stack: Synthesized):
    distribution_id = next(iter(cloudfront_stack.resources("AWS::CloudFront::Distribution")))
    for url in relay_public_urls(cloudfront_stack):
        assert url == {"Fn::Join": ["", ["wss://", {"Fn::GetAtt": [distribution_id, "DomainName"]}, "/media-stream"]]}


def test_load_balancer_admits_only_cloudfront_with_the_secret_header(cloudfront_stack: Synthesized):
    endpoint = cloudfront_stack.stack.relay_endpoint
    ingress = ingress_rules(cloudfront_stack.json, cloudfront_stack.logical_id(endpoint.security_group))
    assert len(ingress) == 1
    assert ingress[0]["FromPort"] == ingress[0]["ToPort"] == 80
    assert "CidrIp" not in ingress[0]
    lookup_id = next(iter(cloudfront_stack.resources("Custom::AWS")))
    assert resolves_to(ingress[0]["SourcePrefixListId"], lookup_id)
    lookup = cloudfront_stack.json["Resources"][lookup_id]["Properties"]
    assert "describeManagedPrefixLists" in str(lookup["Create"])
    assert "com.amazonaws.global.cloudfront.origin-facing" in str(lookup["Create"])

    (listener,) = cloudfront_stack.resources("AWS::ElasticLoadBalancingV2::Listener").values()
    assert listener["Properties"]["Protocol"] == "HTTP"
    assert listener["Properties"]["DefaultActions"][0]["Type"] == "fixed-response"
    assert listener["Properties"]["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"] == "403"
    (rule,) = cloudfront_stack.resources("AWS::ElasticLoadBalancingV2::ListenerRule").values()
    (condition,) = rule["Properties"]["Conditions"]
    assert condition["HttpHeaderConfig"]["HttpHeaderName"] == ORIGIN_VERIFY_HEADER
    assert rule["Properties"]["Actions"][0]["Type"] == "forward"
    assert not cloudfront_stack.resources("AWS::CertificateManager::Certificate")


def test_a_prefix_list_id_from_context_replaces_the_deploy_time_lookup():
    app = App()
    stack = Stack(app, "EndpointProbe", env=Environment(region="us-east-1"))
    settings = DeploySettings.model_validate({"cloudFrontPrefixListId": "pl-3b927c52", "region": "us-east-1"})
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    endpoint = RelayEndpoint(
        stack,
        "Endpoint",
        settings=settings,
        vpc=vpc,
        access_logs_bucket=s3.Bucket(stack, "Logs"),
        deregistration_delay_seconds=1860,
    )
    template = dict(Template.from_stack(stack).to_json())
    assert not [r for r in template["Resources"].values() if r["Type"] == "Custom::AWS"]
    group_id = stack.get_logical_id(endpoint.security_group.node.default_child)  # type: ignore[arg-type]
    (ingress,) = ingress_rules(template, group_id)
    assert (ingress["SourcePrefixListId"], ingress["FromPort"]) == ("pl-3b927c52", 80)


# ---- custom domain ---------------------------------------------------------------------------------------------------
def test_custom_domain_gets_a_dns_validated_certificate_https_listener_and_alias(custom_domain_stack: Synthesized):
    certificate = custom_domain_stack.only("AWS::CertificateManager::Certificate")["Properties"]
    assert certificate["DomainName"] == "voice.example.com"
    assert certificate["ValidationMethod"] == "DNS"
    assert certificate["DomainValidationOptions"][0]["HostedZoneId"] == "Z0123456789ABCDEFGHIJ"
    (listener,) = custom_domain_stack.resources("AWS::ElasticLoadBalancingV2::Listener").values()
    properties = listener["Properties"]
    assert (properties["Port"], properties["Protocol"]) == (443, "HTTPS")
    assert properties["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert properties["DefaultActions"][0]["Type"] == "forward"
    record = custom_domain_stack.only("AWS::Route53::RecordSet")["Properties"]
    assert record["Name"] == "voice.example.com."
    assert record["Type"] == "A"
    assert record["HostedZoneId"] == "Z0123456789ABCDEFGHIJ"
    assert "AliasTarget" in record


def test_custom_domain_has_no_cloudfront_and_the_relay_url_is_the_domain(custom_domain_stack: Synthesized):
    assert not custom_domain_stack.resources("AWS::CloudFront::Distribution")
    assert not custom_domain_stack.resources("Custom::AWS")
    assert relay_public_urls(custom_domain_stack) == ["wss://voice.example.com/media-stream"] * 2
    endpoint = custom_domain_stack.stack.relay_endpoint
    (ingress,) = ingress_rules(custom_domain_stack.json, custom_domain_stack.logical_id(endpoint.security_group))
    assert (ingress["FromPort"], ingress["CidrIp"]) == (443, "0.0.0.0/0")


def test_load_balancer_egress_is_only_the_relay_port_inside_the_vpc(any_stack: Synthesized):
    """With no inline egress CloudFormation would give the group its default allow-all egress."""
    group_id = any_stack.logical_id(any_stack.stack.relay_endpoint.security_group)
    (egress,) = any_stack.json["Resources"][group_id]["Properties"]["SecurityGroupEgress"]
    assert (egress["IpProtocol"], egress["FromPort"], egress["ToPort"]) == ("tcp", 8080, 8080)
    assert "Fn::GetAtt" in egress["CidrIp"]  # the VPC's CIDR block, not 0.0.0.0/0
    assert any_stack.json["Resources"][egress["CidrIp"]["Fn::GetAtt"][0]]["Type"] == "AWS::EC2::VPC"
