"""The relay service: ECS on Fargate, built from `relay_container/Dockerfile`, behind the relay endpoint's balancer.

Scaling never drops a call:
* the service scales on the relay's own `ActiveCalls` EMF metric (calls per task), not on CPU;
* a task with live calls holds ECS task scale-in protection (the task role may set it on its own tasks), so neither
  scale-in nor a deployment stops it;
* when a task does stop, the balancer first drains it for longer than the longest call, then ECS sends SIGTERM, and
  the relay (503 on /healthz, no new streams) gets the Fargate maximum of 120 s before SIGKILL;
* a new task is healthy only once it can greet at once (readiness on /healthz, bounded by the readiness deadline); the
  grace period covers that (timings in `infra.constants`). The container's own health check asks `/livez`, which
  stays true while the process serves, draining included, so ECS replaces only a relay that no longer answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from callcore.metric_names import RelayMetric
from callcore.store import FLEET_PK, PARTITION_KEY, SORT_KEY
from callcore.store.receptionist_profiles import profile_pk
from infra.bundling import REPO_ROOT
from infra.constants import (
    RELAY_CALL_CONTROL_ROUTES,
    RELAY_CONTAINER_NAME,
    RELAY_DOCKERFILE,
    RELAY_HEALTH_CHECK_GRACE_SECONDS,
    RELAY_IMAGE_SOURCES,
    RELAY_LIVENESS_PATH,
    RELAY_METRIC_DIMENSION,
    RELAY_PORT,
    RELAY_STOP_TIMEOUT_SECONDS,
)
from infra.constructs.api import Api
from infra.constructs.relay_endpoint import RelayEndpoint
from infra.constructs.secrets import Secrets
from infra.constructs.storage import Storage
from infra.nag import acknowledge, resource_finding
from infra.policies import (
    PROFILE_READ_ACTIONS,
    acknowledge_archive_objects,
    archive_statements,
    profile_items_statement,
    table_statements,
)
from infra.settings import Architecture, DeploySettings

# The relay records calls, turns, bookings and caller profiles and reads them back: items whose partition key is one of
# these (`dynamodb:LeadingKeys`), nothing else of the table. The relay faces the internet; it must not be able to
# rewrite the fleet's health mark or another table's worth of items.
RELAY_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query")
RELAY_PARTITIONS = tuple(f"{prefix}#*" for prefix in ("CALL", "CALLER", "BOOKING"))
# In the fleet's partition it only updates, and only these attributes: its heartbeat (`at`, `task_id`) and the
# seat counter (`active`, `version`, `changed_at`), which a seat given back at the end of a stream moves. Never the
# health mark (`healthy`, `until`), and no ReturnValues that would read other attributes.
RELAY_FLEET_ATTRIBUTES = (PARTITION_KEY, SORT_KEY, "at", "task_id", "active", "version", "changed_at")
# A business line's seat counter (`RECEPTIONIST#<profile id>` / `ACTIVE_CALLS`) moves with the fleet's when a call of
# that line gives its seat back: in the profiles' partitions the relay updates those counter attributes only.
RELAY_LINE_SEAT_ATTRIBUTES = (PARTITION_KEY, SORT_KEY, "active", "version", "changed_at")
# No ReturnValues that would read attributes the relay may not update.
RELAY_UPDATE_RETURN_VALUES = ["NONE", "UPDATED_OLD", "UPDATED_NEW"]
SCALE_OUT_COOLDOWN = Duration.seconds(60)
# Scale-in is slow on purpose: a task only leaves once idle anyway, and calls arrive in bursts.
SCALE_IN_COOLDOWN = Duration.minutes(5)
# The image has no curl: the relay's own interpreter asks its liveness endpoint (a few ms of CPU every 30 s).
LIVENESS_COMMAND = (
    f"import urllib.request as r; r.urlopen('http://127.0.0.1:{RELAY_PORT}{RELAY_LIVENESS_PATH}', timeout=4)"
)


def relay_image_excludes() -> list[str]:
    """Docker build context = repository root, minus everything the Dockerfile does not copy."""
    keep = [pattern for source in RELAY_IMAGE_SOURCES for pattern in (f"!{source}", f"!{source}/**")]
    return ["*", *keep, "**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/.pytest_cache"]


def active_calls_metric(namespace: str) -> cloudwatch.Metric:
    """Calls per task: every task emits its count every 10 s under the same dimension, so Average = per task."""
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=RelayMetric.ACTIVE_CALLS,
        dimensions_map=RELAY_METRIC_DIMENSION,
        statistic=cloudwatch.Stats.AVERAGE,
        period=Duration.minutes(1),
    )


class RelayService(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        vpc: ec2.IVpc,
        endpoint: RelayEndpoint,
        storage: Storage,
        secrets: Secrets,
        api: Api,
        environment: Mapping[str, str],
        business_api_secrets: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self._settings = settings
        self.cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.task_role = self._build_task_role(storage, api, business_api_secrets)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.task_definition = self._build_task_definition(secrets, environment)
        self.service = self._build_service(vpc, endpoint)
        self._build_scaling()

    def _build_task_role(self, storage: Storage, api: Api, business_api_secrets: Sequence[str]) -> iam.Role:
        role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Relay tasks: call records, transcripts, own scale-in protection, transfer/hang-up API",
        )
        for statement in (
            *self._table_statements(storage),
            *archive_statements(storage.transcripts_bucket, storage.key, read=False),
        ):
            role.add_to_policy(statement)
        stack = Stack.of(self)
        if business_api_secrets:
            # The profiles' business API credentials, by name: Secrets Manager appends six random characters.
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="BusinessApiCredentials",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[
                        stack.format_arn(
                            service="secretsmanager",
                            resource="secret",
                            resource_name=f"{name}-??????",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                        for name in business_api_secrets
                    ],
                )
            )
        own_tasks = stack.format_arn(service="ecs", resource="task", resource_name=f"{self.cluster.cluster_name}/*")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnScaleInProtection",
                actions=["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
                resources=[own_tasks],
            )
        )
        call_control = [
            api.execute_api_arn(route, method) for route in RELAY_CALL_CONTROL_ROUTES for method in route.methods
        ]
        role.add_to_policy(
            iam.PolicyStatement(sid="CallControlRoutes", actions=["execute-api:Invoke"], resources=call_control)
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Task IDs are only known at run time: the statement is limited to tasks of this stack's cluster.",
            resource_finding(self, own_tasks),
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "The call SID in the path is per call: the relay may POST to the transfer and hang-up routes only.",
            *(resource_finding(self, arn) for arn in call_control),
        )
        acknowledge_archive_objects(role, storage.transcripts_bucket)
        return role

    @staticmethod
    def _table_statements(storage: Storage) -> list[iam.PolicyStatement]:
        call_items, key = table_statements(storage.table, storage.key, RELAY_TABLE_ACTIONS)
        call_items.add_condition("ForAllValues:StringLike", {"dynamodb:LeadingKeys": list(RELAY_PARTITIONS)})
        fleet = iam.PolicyStatement(
            sid="FleetHeartbeatAndSeats",
            actions=["dynamodb:UpdateItem"],
            resources=[storage.table.table_arn],
            conditions={
                "ForAllValues:StringEquals": {
                    "dynamodb:LeadingKeys": [FLEET_PK],
                    "dynamodb:Attributes": list(RELAY_FLEET_ATTRIBUTES),
                },
                "StringEqualsIfExists": {"dynamodb:ReturnValues": RELAY_UPDATE_RETURN_VALUES},
            },
        )
        # The receptionist profiles: read (the call's version at admission), never written by the relay.
        profiles = profile_items_statement(storage.table, PROFILE_READ_ACTIONS, sid="ReadProfiles")
        line_seats = iam.PolicyStatement(
            sid="LineSeats",
            actions=["dynamodb:UpdateItem"],
            resources=[storage.table.table_arn],
            conditions={
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [profile_pk("*")]},
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(RELAY_LINE_SEAT_ATTRIBUTES)},
                "StringEqualsIfExists": {"dynamodb:ReturnValues": RELAY_UPDATE_RETURN_VALUES},
            },
        )
        return [call_items, fleet, profiles, line_seats, key]

    def _build_task_definition(self, secrets: Secrets, environment: Mapping[str, str]) -> ecs.FargateTaskDefinition:
        settings = self._settings
        arm = settings.architecture is Architecture.ARM64
        task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=settings.relay_cpu,
            memory_limit_mib=settings.relay_memory_mib,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64 if arm else ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        image = ecs.ContainerImage.from_asset(
            str(REPO_ROOT),
            file=RELAY_DOCKERFILE,
            exclude=relay_image_excludes(),
            platform=ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64,
        )
        task_definition.add_container(
            RELAY_CONTAINER_NAME,
            image=image,
            essential=True,
            port_mappings=[ecs.PortMapping(container_port=RELAY_PORT, protocol=ecs.Protocol.TCP)],
            environment=dict(environment),
            secrets={
                "OPENAI_API_KEY": ecs.Secret.from_secrets_manager(secrets.openai_api_key),
                "TWILIO_AUTH_TOKEN": ecs.Secret.from_secrets_manager(secrets.twilio_auth_token),
                "STREAM_TOKEN_SECRET": ecs.Secret.from_secrets_manager(secrets.stream_token_secret),
                "CALLER_HASH_SECRET": ecs.Secret.from_secrets_manager(secrets.caller_hash_secret),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix=RELAY_CONTAINER_NAME, log_group=self.log_group),
            # SIGTERM -> SIGKILL: the Fargate maximum; the relay drains for DRAIN_TIMEOUT_SECONDS, a little less.
            stop_timeout=Duration.seconds(RELAY_STOP_TIMEOUT_SECONDS),
            readonly_root_filesystem=True,
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c", LIVENESS_COMMAND],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(RELAY_HEALTH_CHECK_GRACE_SECONDS),
            ),
        )
        acknowledge(
            task_definition,
            "AwsSolutions-ECS2",
            "The environment holds non-secret settings only (URLs, table and bucket names, limits); the four "
            "secrets are injected from Secrets Manager.",
        )
        if task_definition.execution_role is not None:
            acknowledge(
                task_definition.execution_role,
                "AwsSolutions-IAM5",
                "ecr:GetAuthorizationToken has no resource-level permissions (added by ECS for the image pull).",
                "Resource::*",
            )
        return task_definition

    def _build_service(self, vpc: ec2.IVpc, endpoint: RelayEndpoint) -> ecs.FargateService:
        security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=vpc,
            description="Relay tasks: inbound from the load balancer only, outbound HTTPS only",
            allow_all_outbound=False,
        )
        security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "OpenAI Realtime, Twilio, AWS APIs (all over TLS)"
        )
        service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=self._settings.relay_min_tasks,
            min_healthy_percent=100,  # a deployment starts new tasks before old ones drain
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            security_groups=[security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
            health_check_grace_period=Duration.seconds(RELAY_HEALTH_CHECK_GRACE_SECONDS),
            platform_version=ecs.FargatePlatformVersion.LATEST,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        service.attach_to_application_target_group(endpoint.target_group)
        return service

    def _build_scaling(self) -> None:
        scaling = self.service.auto_scale_task_count(
            min_capacity=self._settings.relay_min_tasks, max_capacity=self._settings.relay_max_tasks
        )
        scaling.scale_to_track_custom_metric(
            "ActiveCallsPerTask",
            metric=active_calls_metric(self._settings.metrics_namespace),
            target_value=self._settings.calls_per_task,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
        )
