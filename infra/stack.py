"""The stack: thin. It composes one construct per capability, hands each the names it needs, and declares outputs."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack, Tags
from constructs import Construct

from infra.constants import (
    LAMBDA_BASE_ENVIRONMENT,
    POWERTOOLS_SERVICE_NAME,
    RELAY_DRAIN_TIMEOUT_SECONDS,
    RELAY_PORT,
    RELAY_READINESS_DEADLINE_SECONDS,
    ROUTES_BY_ID,
    SERVICE_TAG,
    TWILIO_FALLBACK_PATH,
    TWILIO_STATUS_PATH,
    TWILIO_VOICE_PATH,
    Output,
)
from infra.constructs.analytics import Analytics
from infra.constructs.api import Api
from infra.constructs.functions import LambdaPackage
from infra.constructs.network import Network
from infra.constructs.observability import Observability
from infra.constructs.post_call_analysis import PostCallAnalysis
from infra.constructs.receptionist_profiles import ReceptionistProfilesPublisher
from infra.constructs.relay import RelayService
from infra.constructs.relay_endpoint import RelayEndpoint
from infra.constructs.secrets import Secrets
from infra.constructs.storage import Storage
from infra.constructs.sweep import EndOfCallSweep
from infra.constructs.twilio_number import TwilioNumberWiring
from infra.profiles import DeployedProfiles
from infra.settings import DeploySettings


class PhoneAgentStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploySettings, profiles: DeployedProfiles
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=settings.stack_name,
            # Region only: an account would make the VPC look up availability zones at synth (needs AWS access).
            env=Environment(region=settings.region),
            description="Phone voice agent: Twilio + OpenAI Realtime relay on ECS Fargate, Lambdas behind API Gateway",
        )
        self.settings = settings
        self.profiles = profiles
        self.storage = Storage(self, "Storage", settings=settings)
        self.secrets = Secrets(self, "Secrets")
        self.network = Network(self, "Network", nat_gateways=settings.nat_gateways)
        self.relay_endpoint = RelayEndpoint(
            self,
            "RelayEndpoint",
            settings=settings,
            vpc=self.network.vpc,
            access_logs_bucket=self.storage.access_logs_bucket,
            deregistration_delay_seconds=profiles.deregistration_delay_seconds,
        )
        self.lambda_package = LambdaPackage(self, "LambdaPackage", architecture=settings.architecture)
        self.profiles_publisher = ReceptionistProfilesPublisher(
            self, "ReceptionistProfiles", package=self.lambda_package, storage=self.storage, profiles=profiles.published
        )
        lambda_environment = self._lambda_environment()
        self.api = Api(
            self,
            "Api",
            package=self.lambda_package,
            storage=self.storage,
            secrets=self.secrets,
            environment=lambda_environment,
            metrics_namespace=settings.metrics_namespace,
            waf_requests_per_ip=settings.api_waf_requests_per_ip if settings.api_waf else None,
        )
        self.sweep = EndOfCallSweep(
            self,
            "EndOfCallSweep",
            package=self.lambda_package,
            storage=self.storage,
            secrets=self.secrets,
            environment=lambda_environment,
        )
        self.relay = RelayService(
            self,
            "Relay",
            settings=settings,
            vpc=self.network.vpc,
            endpoint=self.relay_endpoint,
            storage=self.storage,
            secrets=self.secrets,
            api=self.api,
            environment=self._relay_environment(),
            business_api_secrets=profiles.business_api_secrets,
        )
        self.observability = Observability(
            self,
            "Observability",
            settings=settings,
            api=self.api,
            endpoint=self.relay_endpoint,
            relay=self.relay,
            scheduled={"EndOfCallSweep": self.sweep.function},
            key=self.storage.key,
        )
        self.post_call_analysis: PostCallAnalysis | None = None
        if settings.call_analysis:
            self.post_call_analysis = PostCallAnalysis(
                self,
                "PostCallAnalysis",
                package=self.lambda_package,
                storage=self.storage,
                secrets=self.secrets,
                environment=self._analysis_environment(lambda_environment),
                model=settings.analysis_model,
                alarm_topic=self.observability.topic,
            )
        self.analytics = Analytics(
            self,
            "Analytics",
            stack_name=settings.stack_name,
            transcripts_bucket=self.storage.transcripts_bucket,
            access_logs_bucket=self.storage.access_logs_bucket,
            key=self.storage.key,
        )
        self.twilio_numbers: TwilioNumberWiring | None = None
        if settings.wire_numbers and profiles.answered_numbers:
            self.twilio_numbers = TwilioNumberWiring(
                self,
                "TwilioNumber",
                package=self.lambda_package,
                secrets=self.secrets,
                numbers=profiles.answered_numbers,
                voice_url=self.api.url_for(TWILIO_VOICE_PATH),
                fallback_url=self.api.url_for(TWILIO_FALLBACK_PATH),
                status_callback_url=self.api.url_for(TWILIO_STATUS_PATH),
            )
            # A number goes live only once the profile answering it is in the table.
            for resource in self.twilio_numbers.resources.values():
                resource.node.add_dependency(self.profiles_publisher.resource)
        self._build_outputs()
        Tags.of(self).add("service", SERVICE_TAG)

    # ---- environments (setting names are contracts: the README documents each)
    def _lambda_environment(self) -> dict[str, str]:
        settings = self.settings
        return {
            **LAMBDA_BASE_ENVIRONMENT,
            "CALLS_TABLE": self.storage.table.table_name,
            "TRANSCRIPTS_BUCKET": self.storage.transcripts_bucket.bucket_name,
            "RELAY_PUBLIC_URL": self.relay_endpoint.public_url,
            "TWILIO_AUTH_TOKEN_ARN": self.secrets.twilio_auth_token.secret_arn,
            "TWILIO_ACCOUNT_SID_ARN": self.secrets.twilio_account_sid.secret_arn,
            "CALLER_HASH_SECRET_ARN": self.secrets.caller_hash_secret.secret_arn,
            "MAX_CONCURRENT_CALLS": str(settings.max_concurrent_calls),
            "MAX_LIVE_CALLS_PER_CALLER": str(settings.max_live_calls_per_caller),
            "MAX_LIVE_WITHHELD_CALLS": str(settings.max_live_withheld_calls),
            # The deployment-wide ceiling (the load balancer drains this long); each line's own limit is in its profile.
            "MAX_CALL_SECONDS": str(self.profiles.longest_call_seconds),
            "RAW_NUMBER_RETENTION_HOURS": str(settings.raw_number_retention_hours),
            **self._retention_environment(),
            "ANSWERING_MACHINE_DETECTION": settings.answering_machine_detection.value,
            "POWERTOOLS_SERVICE_NAME": POWERTOOLS_SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": settings.metrics_namespace,
            "LOG_LEVEL": "INFO",
        }

    @staticmethod
    def _analysis_environment(lambda_environment: dict[str, str]) -> dict[str, str]:
        """The post-call analysis function's environment: storage and its retention, the caller-hash secret (the
        call summary it rewrites), observability; none of the Twilio settings (it holds no Twilio credential)."""
        shared = (
            "CALLS_TABLE", "TRANSCRIPTS_BUCKET", "CALLER_HASH_SECRET_ARN", "CALL_RECORD_RETENTION_DAYS",
            "TURN_RETENTION_DAYS", "BOOKING_RETENTION_DAYS", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
            "LOG_LEVEL", *LAMBDA_BASE_ENVIRONMENT,
        )  # fmt: skip
        return {name: lambda_environment[name] for name in shared}

    def _retention_environment(self) -> dict[str, str]:
        """How long the table keeps what the Lambdas and the relay write (`callcore.settings.StorageSettings`)."""
        settings = self.settings
        return {
            "CALL_RECORD_RETENTION_DAYS": str(settings.call_record_retention_days),
            "TURN_RETENTION_DAYS": str(settings.turn_retention_days),
            "BOOKING_RETENTION_DAYS": str(settings.booking_retention_days),
        }

    def _relay_environment(self) -> dict[str, str]:
        settings = self.settings
        environment = {
            "PORT": str(RELAY_PORT),
            "RELAY_PUBLIC_URL": self.relay_endpoint.public_url,
            "CALLS_TABLE": self.storage.table.table_name,
            "TRANSCRIPTS_BUCKET": self.storage.transcripts_bucket.bucket_name,
            "CALL_CONTROL_URL": self.api.base_url,
            "MAX_CALL_SECONDS": str(self.profiles.longest_call_seconds),
            "DRAIN_TIMEOUT_SECONDS": str(RELAY_DRAIN_TIMEOUT_SECONDS),
            "READINESS_DEADLINE_SECONDS": str(RELAY_READINESS_DEADLINE_SECONDS),
            "METRICS_NAMESPACE": settings.metrics_namespace,
            "CALLER_PROFILE_RETENTION_DAYS": str(settings.caller_profile_retention_days),
            "MASK_CALLER_DIGITS": str(settings.mask_caller_digits).lower(),
            **self._retention_environment(),
        }
        if settings.openai_realtime_url:
            environment["OPENAI_REALTIME_URL"] = settings.openai_realtime_url
        return environment

    # ---- outputs -----------------------------------------------------------------------------------------------------
    def _output(self, output: Output, value: str, description: str) -> None:
        CfnOutput(self, output.value, value=value, description=description).override_logical_id(output.value)

    def _build_outputs(self) -> None:
        api, secrets = self.api, self.secrets
        self._output(
            Output.INCOMING_WEBHOOK_URL, api.url_for(TWILIO_VOICE_PATH), "Twilio number: A call comes in (POST)"
        )
        self._output(Output.STATUS_CALLBACK_URL, api.url_for(TWILIO_STATUS_PATH), "Twilio number: status callback")
        self._output(
            Output.STREAM_STATUS_CALLBACK_URL,
            api.url_for(ROUTES_BY_ID["StreamStatus"].path),
            "Media stream status callback (set by the incoming-call TwiML)",
        )
        self._output(Output.FALLBACK_URL, api.url_for(TWILIO_FALLBACK_PATH), "Twilio number: primary handler fails")
        self._output(Output.CALL_CONTROL_URL, api.base_url, "Call-control API base (SigV4): /calls, transfer, hangup")
        self._output(Output.RELAY_URL, self.relay_endpoint.public_url, "Relay media-stream URL given to Twilio")
        self._output(Output.RELAY_HEALTH_URL, self.relay_endpoint.health_url, "Relay health check (200 = ready)")
        self._output(Output.DASHBOARD_URL, self.observability.dashboard_url, "CloudWatch dashboard")
        self._output(Output.TRANSCRIPTS_BUCKET_NAME, self.storage.transcripts_bucket.bucket_name, "Transcripts bucket")
        self._output(Output.CALLS_TABLE_NAME, self.storage.table.table_name, "Call records table")
        self._output(
            Output.TWILIO_ACCOUNT_SID_SECRET_ARN, secrets.twilio_account_sid.secret_arn, "Fill: Twilio account SID"
        )
        self._output(
            Output.TWILIO_AUTH_TOKEN_SECRET_ARN, secrets.twilio_auth_token.secret_arn, "Fill: Twilio auth token"
        )
        self._output(Output.OPENAI_API_KEY_SECRET_ARN, secrets.openai_api_key.secret_arn, "Fill: OpenAI API key")
        self._output(
            Output.STREAM_TOKEN_SECRET_ARN, secrets.stream_token_secret.secret_arn, "Generated stream-token secret"
        )
        self._output(
            Output.CALLER_HASH_SECRET_ARN,
            secrets.caller_hash_secret.secret_arn,
            "Generated caller-hash secret (the erase-caller command reads it)",
        )
        self._output(Output.ATHENA_WORKGROUP, self.analytics.workgroup_name, "Athena workgroup (encrypted results)")
        self._output(Output.GLUE_DATABASE, self.analytics.database_name, "Glue database: tables calls, transcripts")
        self._output(Output.RELAY_CLUSTER_NAME, self.relay.cluster.cluster_name, "ECS cluster of the relay")
        self._output(Output.RELAY_SERVICE_NAME, self.relay.service.service_name, "ECS service of the relay")
        self._output(Output.ALARM_TOPIC_ARN, self.observability.topic.topic_arn, "SNS topic the alarms notify")
        if self.post_call_analysis is not None:
            self._output(
                Output.ANALYSIS_DEAD_LETTER_QUEUE_ARN,
                self.post_call_analysis.dead_letter_queue.queue_arn,
                "Post-call analyses that failed three times (redrive: DEPLOY.md)",
            )
        answered = self.profiles.answered_numbers
        if answered:
            self._output(
                Output.ANSWERED_NUMBERS,
                ",".join(f"{number}={profile_id}" for number, profile_id in answered.items()),
                "The numbers the receptionist profiles answer (number=profile id); wired unless wireNumbers=false",
            )
