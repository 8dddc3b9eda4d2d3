"""The relay service: health check, draining, stop timeout, secrets and settings, scaling on ActiveCalls, its role."""

from __future__ import annotations

import json

from aws_cdk import CopyOptions, IgnoreMode, IgnoreStrategy

from infra.bundling import REPO_ROOT
from infra.constructs.relay import relay_image_excludes
from relay.shutdown import DEFAULT_CLOSE_TIMEOUT_SECONDS, after_drain_seconds
from tests.infra.synth import Synthesized
from tests.infra.template_queries import (
    actions_of_role,
    as_list,
    container,
    container_environment,
    statements_of_role,
)

RELAY_ENVIRONMENT_CONTRACT = {
    "PORT",
    "RELAY_PUBLIC_URL",
    "CALLS_TABLE",
    "TRANSCRIPTS_BUCKET",
    "CALL_CONTROL_URL",
    "MAX_CALL_SECONDS",
    "METRICS_NAMESPACE",
    "DRAIN_TIMEOUT_SECONDS",
}


def test_target_group_checks_healthz_and_drains_longer_than_the_longest_call(any_stack: Synthesized):
    target_group = any_stack.only("AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    assert target_group["HealthCheckPath"] == "/healthz"
    assert target_group["Matcher"] == {"HttpCode": "200"}
    assert target_group["Port"] == 8080
    assert target_group["TargetType"] == "ip"
    attributes = {a["Key"]: a["Value"] for a in target_group["TargetGroupAttributes"]}
    max_call = any_stack.stack.profiles.longest_call_seconds  # the longest call any receptionist profile allows
    delay = int(attributes["deregistration_delay.timeout_seconds"])
    assert max_call < delay <= 3600
    assert container_environment(any_stack)["MAX_CALL_SECONDS"] == str(max_call)


def test_load_balancer_keeps_websockets_open(any_stack: Synthesized):
    balancer = any_stack.only("AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    attributes = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
    assert int(attributes["idle_timeout.timeout_seconds"]) >= 4000
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"


def test_container_stops_gracefully_and_gets_its_secrets_from_secrets_manager(any_stack: Synthesized):
    definition = container(any_stack)
    assert definition["StopTimeout"] == 120
    environment = container_environment(any_stack)
    # The drain leaves the rest of the stop budget (hand-over, final writes, aiohttp's shutdown) inside StopTimeout.
    drain = float(environment["DRAIN_TIMEOUT_SECONDS"])
    assert drain + after_drain_seconds(DEFAULT_CLOSE_TIMEOUT_SECONDS) <= definition["StopTimeout"]
    secrets = {"OPENAI_API_KEY", "TWILIO_AUTH_TOKEN", "STREAM_TOKEN_SECRET", "CALLER_HASH_SECRET"}
    assert {s["Name"] for s in definition["Secrets"]} == secrets
    assert set(environment) >= RELAY_ENVIRONMENT_CONTRACT
    assert not secrets & set(environment)
    assert definition["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    assert definition["LogConfiguration"]["LogDriver"] == "awslogs"
    # The container's own check is liveness (/livez), never readiness: a warming or draining relay answers 503 on
    # /healthz, and ECS must not kill it for that.
    check = definition["HealthCheck"]
    assert "/livez" in check["Command"][-1]
    assert "/healthz" not in check["Command"][-1]
    assert check["StartPeriod"] >= int(environment["READINESS_DEADLINE_SECONDS"])


def test_readiness_the_target_group_and_the_grace_period_agree(any_stack: Synthesized):
    """A new task answers /healthz 200 at the readiness deadline at the latest; the balancer then needs its healthy
    threshold of checks; ECS's grace period must cover both, or a task slow to warm is replaced for it."""
    deadline = int(container_environment(any_stack)["READINESS_DEADLINE_SECONDS"])
    target_group = any_stack.only("AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    to_healthy = target_group["HealthyThresholdCount"] * target_group["HealthCheckIntervalSeconds"]
    service = any_stack.only("AWS::ECS::Service")["Properties"]
    assert service["HealthCheckGracePeriodSeconds"] >= deadline + to_healthy
    assert target_group["HealthCheckTimeoutSeconds"] < target_group["HealthCheckIntervalSeconds"]


def test_task_runs_on_the_chosen_architecture_and_size(cloudfront_stack: Synthesized, custom_domain_stack: Synthesized):
    default = cloudfront_stack.only("AWS::ECS::TaskDefinition")["Properties"]
    custom = custom_domain_stack.only("AWS::ECS::TaskDefinition")["Properties"]
    assert default["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    assert (default["Cpu"], default["Memory"]) == ("1024", "2048")
    assert custom["RuntimePlatform"]["CpuArchitecture"] == "X86_64"
    assert (custom["Cpu"], custom["Memory"]) == ("2048", "4096")


def test_service_scales_on_active_calls_per_task(any_stack: Synthesized):
    policy = any_stack.only("AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    configuration = policy["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["CustomizedMetricSpecification"] == {
        "Namespace": any_stack.context.get("stackName", "PhoneVoiceAgent"),  # each stack scales on its own fleet
        "MetricName": "ActiveCalls",
        "Dimensions": [{"Name": "Service", "Value": "relay"}],
        "Statistic": "Average",
    }
    assert configuration["TargetValue"] == any_stack.context.get("callsPerTask", 20)
    target = any_stack.only("AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert target["MinCapacity"] == any_stack.context.get("relayMinTasks", 2)
    assert target["MaxCapacity"] == any_stack.context.get("relayMaxTasks", 10)
    service = any_stack.only("AWS::ECS::Service")["Properties"]
    assert service["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"


def test_cluster_has_container_insights(any_stack: Synthesized):
    cluster = any_stack.only("AWS::ECS::Cluster")["Properties"]
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


def test_task_role_may_protect_its_own_tasks_and_call_only_transfer_and_hangup(any_stack: Synthesized):
    relay = any_stack.stack.relay
    statements = statements_of_role(any_stack, any_stack.logical_id(relay.task_role))
    by_action = {action: statement for statement in statements for action in as_list(statement["Action"])}
    protection = by_action["ecs:UpdateTaskProtection"]
    assert set(as_list(protection["Action"])) == {"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}
    (task_arn,) = as_list(protection["Resource"])
    cluster_id = any_stack.logical_id(relay.cluster)
    assert {"Ref": cluster_id} in task_arn["Fn::Join"][1]
    invoke = by_action["execute-api:Invoke"]
    paths = sorted(str(arn["Fn::Join"][1][-1]) for arn in as_list(invoke["Resource"]))
    assert paths == ["/prod/POST/calls/*/hangup", "/prod/POST/calls/*/transfer"]


def test_task_role_data_access_is_exact(any_stack: Synthesized):
    actions = actions_of_role(any_stack, any_stack.logical_id(any_stack.stack.relay.task_role))
    assert actions == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:DescribeKey",
        "s3:PutObject",
        "ecs:UpdateTaskProtection",
        "ecs:GetTaskProtection",
        "execute-api:Invoke",
    } | ({"secretsmanager:GetSecretValue"} if any_stack.stack.profiles.business_api_secrets else set())


def test_task_role_reads_only_the_business_api_credentials_its_profiles_name(
    cloudfront_stack: Synthesized, custom_domain_stack: Synthesized
):
    role = custom_domain_stack.logical_id(custom_domain_stack.stack.relay.task_role)
    statements = statements_of_role(custom_domain_stack, role)
    [credentials] = [s for s in statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert as_list(credentials["Action"]) == ["secretsmanager:GetSecretValue"]
    [arn] = as_list(credentials["Resource"])
    assert str(arn["Fn::Join"][1][-1]).endswith(":secret:harbor-bistro/booking-api-??????")
    # A deployment whose profiles name no credentials reads no secret at all.
    plain = actions_of_role(cloudfront_stack, cloudfront_stack.logical_id(cloudfront_stack.stack.relay.task_role))
    assert "secretsmanager:GetSecretValue" not in plain


def test_task_role_touches_only_call_items_and_its_own_fleet_attributes(any_stack: Synthesized):
    """The internet-facing relay may read and write call records, turns, bookings and caller profiles (by partition
    key), read the receptionist profiles (never write them) and give back a line's seat, and in the fleet's partition
    only update its heartbeat and the seat counter: never the health mark."""
    statements = statements_of_role(any_stack, any_stack.logical_id(any_stack.stack.relay.task_role))
    dynamodb = [s for s in statements if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    table_id = any_stack.logical_id(any_stack.stack.storage.table)
    assert len(dynamodb) == 4
    for statement in dynamodb:
        assert as_list(statement["Resource"]) == [{"Fn::GetAtt": [table_id, "Arn"]}]  # no index, no other table
        assert "Condition" in statement  # no unconditioned access to the table at all
    (profiles,) = [s for s in dynamodb if s.get("Sid") == "ReadProfiles"]
    assert as_list(profiles["Action"]) == ["dynamodb:GetItem"]
    assert profiles["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["RECEPTIONISTS", "RECEPTIONIST#*"]}
    }
    dynamodb.remove(profiles)
    # A call of a business line gives back the line's seat with the fleet's: that counter's attributes only.
    (line_seats,) = [s for s in dynamodb if s.get("Sid") == "LineSeats"]
    assert as_list(line_seats["Action"]) == ["dynamodb:UpdateItem"]
    assert line_seats["Condition"]["ForAllValues:StringLike"] == {"dynamodb:LeadingKeys": ["RECEPTIONIST#*"]}
    line_attributes = set(line_seats["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"])
    assert line_attributes == {"pk", "sk", "active", "version", "changed_at"}  # never a profile's document
    assert line_seats["Condition"]["StringEqualsIfExists"]["dynamodb:ReturnValues"] == [
        "NONE",
        "UPDATED_OLD",
        "UPDATED_NEW",
    ]
    dynamodb.remove(line_seats)
    items, fleet = sorted(dynamodb, key=lambda s: len(as_list(s["Action"])), reverse=True)
    assert items["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["CALL#*", "CALLER#*", "BOOKING#*"]}
    }
    assert as_list(fleet["Action"]) == ["dynamodb:UpdateItem"]
    condition = fleet["Condition"]
    assert condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] == ["FLEET"]
    attributes = set(condition["ForAllValues:StringEquals"]["dynamodb:Attributes"])
    assert attributes == {"pk", "sk", "at", "task_id", "active", "version", "changed_at"}
    assert not {"healthy", "until", "reason"} & attributes  # the health mark stays the operators'
    assert condition["StringEqualsIfExists"]["dynamodb:ReturnValues"] == ["NONE", "UPDATED_OLD", "UPDATED_NEW"]


def test_relay_image_is_built_from_its_dockerfile_with_only_what_it_copies(cloudfront_stack: Synthesized):
    manifest = (cloudfront_stack.outdir / f"{cloudfront_stack.stack.stack_name}.assets.json").read_text()
    assert '"dockerFile": "relay_container/Dockerfile"' in manifest
    assert '"platform": "linux/arm64"' in manifest
    # The same ignore rules CDK applies when it stages the Docker build context.
    ignore = IgnoreStrategy.from_copy_options(
        CopyOptions(exclude=relay_image_excludes(), ignore_mode=IgnoreMode.GLOB), str(REPO_ROOT)
    )
    kept = ["relay_container/Dockerfile", "relay_container/relay/__init__.py", "callcore/store/__init__.py"]
    dropped = [
        ".venv/bin/python",
        "cdk.out/manifest.json",
        "build/lambda-layer/x",
        "lambdas/settings.py",
        "node_modules/x",
        ".git/HEAD",
        "callcore/store/__pycache__/calls.cpython-312.pyc",
        "tests/conftest.py",
    ]
    assert [p for p in kept if ignore.ignores(str(REPO_ROOT / p))] == []
    assert [p for p in dropped if not ignore.ignores(str(REPO_ROOT / p))] == []
    assert (REPO_ROOT / "relay_container" / "Dockerfile").is_file()


def test_network_spans_two_zones_with_tasks_in_private_subnets_behind_the_nat(any_stack: Synthesized):
    subnets = any_stack.resources("AWS::EC2::Subnet")
    public = {i for i, s in subnets.items() if s["Properties"]["MapPublicIpOnLaunch"]}
    private = set(subnets) - public
    assert len(public) == 2
    assert len(private) == 2
    zones = {json.dumps(s["Properties"]["AvailabilityZone"], sort_keys=True) for s in subnets.values()}
    assert len(zones) == 2
    # NAT gateways as the context says (default one), each in a public subnet; DynamoDB and S3 skip the NAT.
    nat_gateways = any_stack.resources("AWS::EC2::NatGateway")
    assert len(nat_gateways) == int(any_stack.context.get("natGateways", 1))
    for gateway in nat_gateways.values():
        assert gateway["Properties"]["SubnetId"]["Ref"] in public
    endpoints = any_stack.resources("AWS::EC2::VPCEndpoint")
    assert {e["Properties"]["VpcEndpointType"] for e in endpoints.values()} == {"Gateway"}
    assert len(endpoints) == 2
    # The tasks run in the private subnets, without public addresses.
    service = any_stack.only("AWS::ECS::Service")["Properties"]
    vpc_config = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert vpc_config["AssignPublicIp"] == "DISABLED"
    assert {subnet["Ref"] for subnet in vpc_config["Subnets"]} == private
