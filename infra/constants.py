"""Names the CDK app shares between its constructs, its outputs and its tests: one place, no retyping.

Context keys (what `cdk deploy -c key=value` accepts) live in `infra.settings.DeploySettings`, each with its
description; this module holds the fixed names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from callcore.metric_names import LAMBDA_SERVICE, RELAY_SERVICE
from callcore.metric_names import METRICS_NAMESPACE as _METRICS_NAMESPACE
from relay.shutdown import CONTAINER_STOP_TIMEOUT_SECONDS, DEFAULT_DRAIN_TIMEOUT_SECONDS

# ---- the app --------------------------------------------------------------------------------------------------------
DEFAULT_STACK_NAME: Final = "PhoneVoiceAgent"
SERVICE_TAG: Final = "phone-voice-agent"

# ---- metrics (names are contracts, listed in the README) -------------------------------------------------------------
METRICS_NAMESPACE: Final = _METRICS_NAMESPACE
RELAY_METRIC_DIMENSION: Final = {"Service": RELAY_SERVICE}
LAMBDA_METRIC_DIMENSION: Final = {"service": LAMBDA_SERVICE}
POWERTOOLS_SERVICE_NAME: Final = LAMBDA_SERVICE

# Emitted by a metric filter on the API access log (see infra/constructs/api.py): 5xx answers of the call-control
# routes, which the relay depends on for transfers and hang-ups.
CALL_CONTROL_5XX_METRIC: Final = "CallControl5xx"
# The same way: 4xx answers to Twilio's status callbacks (a refused signature, a throttled or WAF-blocked callback).
# Twilio does not retry a callback it got a 4xx for: each one is a call whose end may never be recorded.
STATUS_CALLBACK_4XX_METRIC: Final = "StatusCallback4xx"

# ---- the API ---------------------------------------------------------------------------------------------------------
API_STAGE: Final = "prod"
# The stage's default, for any method without its own limits (every route below has its own).
API_THROTTLE_RATE_PER_SECOND: Final = 50
API_THROTTLE_BURST: Final = 100
TWILIO_SIGNATURE_HEADER: Final = "X-Twilio-Signature"


@dataclass(frozen=True, slots=True)
class Throttle:
    """A route's own API Gateway limits (requests per second, burst): junk sent to one route cannot use up another's,
    so a flood of the voice webhook or of call control never throttles Twilio's status callbacks."""

    rate_per_second: int
    burst: int


# Twilio's routes are sized for its bursts: every live call can end at once (MAX_CONCURRENT_CALLS status and stream
# callbacks in a second), and calls arrive in waves. The IAM routes serve the relay (one request per transfer or
# hang-up) and an operator's outbound calls.
TWILIO_VOICE_THROTTLE: Final = Throttle(rate_per_second=100, burst=200)
TWILIO_CALLBACK_THROTTLE: Final = Throttle(rate_per_second=200, burst=500)
TWILIO_RARE_THROTTLE: Final = Throttle(rate_per_second=20, burst=50)  # fallback and whisper: one per failure/transfer
CALL_CONTROL_THROTTLE: Final = Throttle(rate_per_second=20, burst=50)
OUTBOUND_CALLS_THROTTLE: Final = Throttle(rate_per_second=5, burst=10)


class RouteAuth(StrEnum):
    TWILIO_SIGNATURE = "twilio-signature"  # open at API Gateway; the handler checks X-Twilio-Signature
    AWS_IAM = "aws-iam"  # SigV4, the relay's task role (or an operator) signs


# DynamoDB operations behind callcore.store: reads (get_call, require_call, active_calls, relay_is_healthy), conditional
# puts (create_call, claim_stream, put_turn, create_booking, set_relay_health), updates (apply_status, update_call,
# adjust_active_calls, expire_turns), queries (list_turns, expire_turns, list_bookings, list_calls_by_day).
# Each route gets what its handler's logic calls (lambdas/logic/*): the fallback touches no data at all.
TABLE_NONE: Final[tuple[str, ...]] = ()
TABLE_READ: Final = ("dynamodb:GetItem",)
TABLE_UPDATE: Final = ("dynamodb:GetItem", "dynamodb:UpdateItem")
TABLE_WRITE: Final = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
TABLE_UPDATE_AND_QUERY: Final = (*TABLE_UPDATE, "dynamodb:Query")


@dataclass(frozen=True, slots=True)
class Route:
    """One Lambda per route; `construct_id` names the function, its role and its log group.

    `table_actions` and `writes_archive` are the route's whole data access: its role gets exactly these.
    """

    construct_id: str
    handler: str
    path: str
    methods: tuple[str, ...]
    auth: RouteAuth
    timeout_seconds: int
    memory_mib: int
    description: str
    table_actions: tuple[str, ...]
    throttle: Throttle
    writes_archive: bool = False
    # Only the function that mints stream tokens (the voice webhook) is given the stream-token secret.
    mints_stream_tokens: bool = False
    writes_recordings: bool = False  # may put objects under recordings/ (the recording-status route)
    # False: the function runs without the X-Ray SDK (POWERTOOLS_TRACE_DISABLED=true), which costs ~150-230 ms of
    # cold start; Lambda's active tracing still records its invocation. Only for the caller's critical path.
    xray_sdk: bool = True

    @property
    def environment(self) -> dict[str, str]:
        """What this route's function adds to the shared Lambda environment."""
        return {} if self.xray_sdk else {"POWERTOOLS_TRACE_DISABLED": "true"}


# Webhooks answer Twilio within its 15 s limit; the incoming call is on the caller's critical path, so it gets more
# memory (= more CPU = shorter cold starts). Call-control routes wait on Twilio REST and get longer timeouts.
ROUTES: Final = (
    Route(
        "IncomingCall",
        "lambdas.handlers.incoming_call.handler",
        "/twilio/incoming",
        ("POST",),
        RouteAuth.TWILIO_SIGNATURE,
        10,
        1024,
        "Twilio voice webhook: answers with <Connect><Stream> to the relay or dials the human line",
        TABLE_WRITE,
        TWILIO_VOICE_THROTTLE,
        xray_sdk=False,
        mints_stream_tokens=True,
    ),
    Route(
        "CallStatus",
        "lambdas.handlers.call_status.handler",
        "/twilio/status",
        ("POST",),
        RouteAuth.TWILIO_SIGNATURE,
        20,
        512,
        "Twilio call status callbacks: applies them in SequenceNumber order, recovers transcripts",
        TABLE_UPDATE_AND_QUERY,
        TWILIO_CALLBACK_THROTTLE,
        writes_archive=True,
    ),
    Route(
        "StreamStatus",
        "lambdas.handlers.stream_status.handler",
        "/twilio/stream-status",
        ("POST",),
        RouteAuth.TWILIO_SIGNATURE,
        10,
        512,
        "Twilio media stream status callbacks",
        TABLE_UPDATE,
        TWILIO_CALLBACK_THROTTLE,
    ),
    Route(
        "Fallback",
        "lambdas.handlers.fallback.handler",
        "/twilio/fallback",
        ("POST",),
        RouteAuth.TWILIO_SIGNATURE,
        10,
        512,
        "Twilio voice fallback URL: dials the human line when the main webhook failed",
        TABLE_NONE,
        TWILIO_RARE_THROTTLE,
    ),
    Route(
        "Whisper",
        "lambdas.handlers.whisper.handler",
        "/twilio/whisper",
        ("GET", "POST"),
        RouteAuth.TWILIO_SIGNATURE,
        10,
        512,
        "Whisper TwiML the human hears before a transferred caller is connected",
        TABLE_READ,
        TWILIO_RARE_THROTTLE,
    ),
    Route(
        "RecordingStatus",
        "lambdas.handlers.recording_status.handler",
        "/twilio/recording-status",
        ("POST",),
        RouteAuth.TWILIO_SIGNATURE,
        # Fetches the audio from Twilio and stores it (tens of MB for a long call). API Gateway answers Twilio after
        # 29 s at most; the function finishes its copy regardless.
        120,
        1024,
        "Twilio recording status callbacks: copies the recording to S3, links it, deletes it at Twilio",
        TABLE_UPDATE,
        TWILIO_CALLBACK_THROTTLE,  # one per recorded call, arriving in waves as calls end
        writes_recordings=True,
    ),
    Route(
        "OutboundCall",
        "lambdas.handlers.outbound_call.handler",
        "/calls",
        ("POST",),
        RouteAuth.AWS_IAM,
        20,
        512,
        "Call control: places an outbound call handled by the agent",
        TABLE_WRITE,
        OUTBOUND_CALLS_THROTTLE,
    ),
    Route(
        "Transfer",
        "lambdas.handlers.transfer.handler",
        "/calls/{callSid}/transfer",
        ("POST",),
        RouteAuth.AWS_IAM,
        20,
        512,
        "Call control: warm transfer of a live call to the human line",
        TABLE_UPDATE,
        CALL_CONTROL_THROTTLE,
    ),
    Route(
        "Hangup",
        "lambdas.handlers.hangup.handler",
        "/calls/{callSid}/hangup",
        ("POST",),
        RouteAuth.AWS_IAM,
        20,
        512,
        "Call control: completes a live call",
        TABLE_UPDATE,
        CALL_CONTROL_THROTTLE,
    ),
)
ROUTES_BY_ID: Final = {route.construct_id: route for route in ROUTES}
# The two routes the relay's task role may invoke (execute-api:Invoke), nothing else.
RELAY_CALL_CONTROL_ROUTES: Final = (ROUTES_BY_ID["Transfer"], ROUTES_BY_ID["Hangup"])
# Twilio webhook paths the number is wired to by the custom resource.
TWILIO_VOICE_PATH: Final = ROUTES_BY_ID["IncomingCall"].path
TWILIO_FALLBACK_PATH: Final = ROUTES_BY_ID["Fallback"].path
TWILIO_STATUS_PATH: Final = ROUTES_BY_ID["CallStatus"].path

# ---- Lambdas ---------------------------------------------------------------------------------------------------------
LAMBDA_PYTHON_VERSION: Final = "3.12"  # the runtime and the layer's wheels (cp312) must agree
# Every function's environment starts from this. pydantic scans every installed distribution's entry points for
# plugins when it builds its first model; the bundle uses none, so the scan is init time spent on nothing.
LAMBDA_BASE_ENVIRONMENT: Final = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
CUSTOM_RESOURCE_HANDLER: Final = "lambdas.custom_resources.twilio_number.on_event"
PROFILES_PUBLISHER_HANDLER: Final = "lambdas.custom_resources.receptionist_profiles.on_event"

# ---- the relay -------------------------------------------------------------------------------------------------------
RELAY_CONTAINER_NAME: Final = "relay"
RELAY_PORT: Final = 8080
RELAY_HEALTH_PATH: Final = "/healthz"  # readiness: what the load balancer checks (relay/readiness.py)
RELAY_LIVENESS_PATH: Final = "/livez"  # liveness: the container's own health check, true while the process serves
RELAY_MEDIA_STREAM_PATH: Final = "/media-stream"
RELAY_DOCKERFILE: Final = "relay_container/Dockerfile"
# The relay image's build context is the repository root, but the Dockerfile copies only these two folders
# (ARCHITECTURE.md); everything else stays out of the context so a .venv or cdk.out never reaches the Docker daemon.
RELAY_IMAGE_SOURCES: Final = ("callcore", "relay_container")
# SIGTERM -> SIGKILL (Fargate's maximum stopTimeout) and the relay's drain within it: the stop budget is stated once,
# in relay/shutdown.py (drain, hand-over, final writes, aiohttp's shutdown); the relay refuses a drain that breaks it.
RELAY_STOP_TIMEOUT_SECONDS: Final = CONTAINER_STOP_TIMEOUT_SECONDS
RELAY_DRAIN_TIMEOUT_SECONDS: Final = int(DEFAULT_DRAIN_TIMEOUT_SECONDS)
# A new task's health, stated once: the relay answers /healthz 200 once it can greet at once, or at its readiness
# deadline whatever is missing (READINESS_DEADLINE_SECONDS, given to it from here). The target group counts it healthy
# after HEALTHY_THRESHOLD passing checks INTERVAL apart, and ECS ignores failing checks for the grace period, which
# therefore covers the container starting, the deadline and those checks: a task slow to warm is never replaced for it.
RELAY_READINESS_DEADLINE_SECONDS: Final = 20
RELAY_HEALTH_CHECK_INTERVAL_SECONDS: Final = 10
RELAY_HEALTH_CHECK_TIMEOUT_SECONDS: Final = 5
RELAY_HEALTHY_THRESHOLD: Final = 2
RELAY_UNHEALTHY_THRESHOLD: Final = 2
RELAY_CONTAINER_START_SECONDS: Final = 20  # the interpreter, imports and secrets until the port listens
RELAY_HEALTH_CHECK_GRACE_SECONDS: Final = (
    RELAY_CONTAINER_START_SECONDS
    + RELAY_READINESS_DEADLINE_SECONDS
    + RELAY_HEALTHY_THRESHOLD * RELAY_HEALTH_CHECK_INTERVAL_SECONDS
)
# ALB idle timeout: its maximum. Media flows every 20 ms, but a call on hold must not be cut by the balancer.
ALB_IDLE_TIMEOUT_SECONDS: Final = 4000
# ALB deregistration delay is capped at 3600 s; it must cover a whole call plus the relay's wrap-up.
ALB_MAX_DEREGISTRATION_SECONDS: Final = 3600
DEREGISTRATION_MARGIN_SECONDS: Final = 60
# CloudFront: the origin-facing managed prefix list (one per region; its ID differs per region, so it is looked up at
# deploy time unless given as context) and the header that proves a request came through our distribution.
CLOUDFRONT_PREFIX_LIST_NAME: Final = "com.amazonaws.global.cloudfront.origin-facing"
ORIGIN_VERIFY_HEADER: Final = "X-Origin-Verify"
# CloudFront's origin response timeout bounds the wait for the relay's answer to the upgrade (60 s: the maximum without
# a quota increase). An established WebSocket through CloudFront is closed after 10 minutes without a byte from the
# relay to Twilio (not adjustable); a live call sends audio or marks far more often than that.
CLOUDFRONT_ORIGIN_READ_TIMEOUT_SECONDS: Final = 60

# ---- secrets ---------------------------------------------------------------------------------------------------------
# The value the operator-filled secrets hold until `aws secretsmanager put-secret-value` replaces it. A real value so
# ECS can start the relay on the first deploy (a secret with no value stops the task from starting); obviously not a
# credential, so the Lambdas' settings reject it (the account SID must be AC + 32 hex) with a clear message.
SECRET_PLACEHOLDER: Final = "REPLACE_ME: aws secretsmanager put-secret-value (see infra/DEPLOY.md)"  # noqa: S105

# ---- data ------------------------------------------------------------------------------------------------------------
TRANSCRIPTS_IA_AFTER_DAYS: Final = 30
TRANSCRIPTS_GLACIER_AFTER_DAYS: Final = 180
# An expired or erased object's previous versions are deleted this long after: personal data has an end.
NONCURRENT_VERSIONS_EXPIRE_DAYS: Final = 30
ACCESS_LOGS_EXPIRE_DAYS: Final = 365
ATHENA_RESULTS_EXPIRE_DAYS: Final = 30
ATHENA_BYTES_SCANNED_CUTOFF: Final = 10 * 1024**3  # a runaway query stops at 10 GB (~USD 0.05)
ATHENA_PROJECTION_FIRST_YEAR: Final = 2025
ATHENA_PROJECTION_LAST_YEAR: Final = 2045


# ---- outputs (fixed logical IDs: DEPLOY.md's commands and the tests find them by these names) ----------------------
class Output(StrEnum):
    INCOMING_WEBHOOK_URL = "IncomingWebhookUrl"
    STATUS_CALLBACK_URL = "StatusCallbackUrl"
    STREAM_STATUS_CALLBACK_URL = "StreamStatusCallbackUrl"
    FALLBACK_URL = "FallbackUrl"
    CALL_CONTROL_URL = "CallControlUrl"
    RELAY_URL = "RelayUrl"
    RELAY_HEALTH_URL = "RelayHealthUrl"
    DASHBOARD_URL = "DashboardUrl"
    TRANSCRIPTS_BUCKET_NAME = "TranscriptsBucketName"
    CALLS_TABLE_NAME = "CallsTableName"
    TWILIO_ACCOUNT_SID_SECRET_ARN = "TwilioAccountSidSecretArn"  # noqa: S105 - an output name
    TWILIO_AUTH_TOKEN_SECRET_ARN = "TwilioAuthTokenSecretArn"  # noqa: S105 - an output name
    OPENAI_API_KEY_SECRET_ARN = "OpenAiApiKeySecretArn"  # noqa: S105 - an output name
    STREAM_TOKEN_SECRET_ARN = "StreamTokenSecretArn"  # noqa: S105 - an output name
    CALLER_HASH_SECRET_ARN = "CallerHashSecretArn"  # noqa: S105 - an output name
    ATHENA_WORKGROUP = "AthenaWorkgroup"
    GLUE_DATABASE = "GlueDatabase"
    RELAY_CLUSTER_NAME = "RelayClusterName"
    RELAY_SERVICE_NAME = "RelayServiceName"
    ALARM_TOPIC_ARN = "AlarmTopicArn"
    ANALYSIS_DEAD_LETTER_QUEUE_ARN = "AnalysisDeadLetterQueueArn"
    ANSWERED_NUMBERS = "AnsweredNumbers"
