"""Every context key the CDK app reads, in one validated model: `cdk deploy -c key=value` or `cdk.json` "context".

A bad value fails `cdk synth` with a message naming the key and what is wrong, before any template is written.
Each field's alias is its context key; its description is the documentation (infra/DEPLOY.md lists them all).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callcore.store.retention import DEFAULT_BOOKING_DAYS, DEFAULT_CALL_RECORD_DAYS, DEFAULT_TURN_DAYS
from infra.constants import DEFAULT_STACK_NAME

# Fargate's valid CPU units -> the memory sizes (MiB) each allows.
FARGATE_MEMORY_BY_CPU: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}
DEFAULT_REGION = "us-east-1"
# Where the region comes from when the context does not name it, in order: the CDK CLI sets CDK_DEFAULT_REGION from
# the active profile; plain `python app.py` falls back to the SDK's variables.
REGION_ENVIRONMENT_VARIABLES = ("CDK_DEFAULT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_PREFIX_LIST_ID = re.compile(r"^pl-[0-9a-f]{8,17}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Context keys a receptionist profile now owns (each line its own value): retired key -> the profile key to set.
RETIRED_CONTEXT_KEYS: dict[str, str] = {
    "twilioPhoneNumber": "numbers",
    "humanTransferNumber": "transfer.human_number",
    "maxCallSeconds": "limits.max_call_seconds",
    "openaiVoice": "voice",
    "businessApiBase": "business_api.base_url",
    "dtmfTransferDigit": "transfer.dtmf_digit",
    "callRecording": "recording.enabled",
}


class ContextError(Exception):
    """The CDK context is wrong. One line per problem, each naming its context key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid CDK context (-c key=value or cdk.json):\n  - " + "\n  - ".join(problems))


class Architecture(StrEnum):
    ARM64 = "arm64"
    X86_64 = "x86_64"

    @property
    def pip_platform_machine(self) -> str:
        """The machine part of the manylinux wheel tags pip must pick for this architecture."""
        return "aarch64" if self is Architecture.ARM64 else "x86_64"


class AnsweringMachineDetection(StrEnum):
    OFF = "off"
    HANGUP = "hangup"
    MESSAGE = "message"


class DeploySettings(BaseModel):
    """The deployment's choices. Every field is optional on the command line; the defaults make a working stack."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    stack_name: str = Field(
        default=DEFAULT_STACK_NAME,
        alias="stackName",
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,100}$",
        description="CloudFormation stack name, also its metrics namespace; two names for staging and production",
    )
    region: str = Field(
        default=DEFAULT_REGION,
        alias="region",
        pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$",
        description="AWS region to deploy to; default: the CLI profile's region (CDK_DEFAULT_REGION), else AWS_REGION, "
        f"else {DEFAULT_REGION}. The template is region-specific (load balancer log delivery differs per region)",
    )
    architecture: Architecture = Field(
        default=Architecture.ARM64,
        alias="architecture",
        description="arm64 (Graviton, ~20% cheaper) or x86_64, for the Lambdas and the relay tasks alike",
    )
    domain_name: str | None = Field(
        default=None,
        alias="domainName",
        max_length=253,
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
        description="relay host name, e.g. voice.example.com: ACM certificate + HTTPS listener + Route 53 alias "
        "(needs hostedZoneId and hostedZoneName); unset = CloudFront in front of the load balancer",
    )
    hosted_zone_id: str | None = Field(
        default=None, alias="hostedZoneId", description="Route 53 public hosted zone ID that holds domainName"
    )
    hosted_zone_name: str | None = Field(
        default=None, alias="hostedZoneName", description="that hosted zone's name, e.g. example.com"
    )
    profiles_dir: str | None = Field(
        default=None,
        alias="profilesDir",
        description="folder of receptionist profiles (<id>.toml); unset = profiles/ in the repository. Synth validates "
        "every profile and fails naming the file, the key and the rule. Each profile's numbers are wired to the stack",
    )
    wire_numbers: bool = Field(
        default=True,
        alias="wireNumbers",
        description="point every number of every profile at this stack (restored when removed); needs the Twilio "
        "secrets filled, so false on a first deploy while they still hold placeholders (`make deploy` does this)",
    )
    calls_per_task: int = Field(
        default=20, alias="callsPerTask", ge=1, le=500, description="autoscaling target: ActiveCalls per relay task"
    )
    relay_min_tasks: int = Field(
        default=2,
        alias="relayMinTasks",
        ge=1,
        le=100,
        description="fewest relay tasks (2 = one per availability zone: losing one does not stop the phone line)",
    )
    relay_max_tasks: int = Field(default=10, alias="relayMaxTasks", ge=1, le=500, description="most relay tasks")
    relay_cpu: int = Field(default=1024, alias="relayCpu", description="relay task CPU units: 256|512|1024|2048|4096")
    relay_memory_mib: int = Field(default=2048, alias="relayMemoryMiB", description="relay task memory (MiB)")
    max_concurrent_calls: int = Field(
        default=50,
        alias="maxConcurrentCalls",
        ge=0,
        le=100_000,
        description="calls the agent takes at once; beyond it callers go to the human line",
    )
    nat_gateways: int = Field(
        default=1,
        alias="natGateways",
        ge=1,
        le=2,
        description="NAT gateways for the relay's egress to OpenAI: 1 (cheaper; an AZ outage cuts egress) or 2",
    )
    cloudfront_prefix_list_id: str | None = Field(
        default=None,
        alias="cloudFrontPrefixListId",
        description="ID of the region's com.amazonaws.global.cloudfront.origin-facing prefix list; unset = "
        "looked up at deploy time",
    )
    alarm_email: str | None = Field(
        default=None, alias="alarmEmail", description="e-mail address subscribed to the alarm topic (confirm it)"
    )
    openai_realtime_url: str | None = Field(
        default=None, alias="openaiRealtimeUrl", description="override of the relay's OpenAI Realtime wss:// URL"
    )
    answering_machine_detection: AnsweringMachineDetection = Field(
        default=AnsweringMachineDetection.OFF,
        alias="answeringMachineDetection",
        description="outbound calls: off | hangup | message",
    )
    call_analysis: bool = Field(
        default=True,
        alias="callAnalysis",
        description="after each call an OpenAI text model reads the transcript (digits masked) and stores a summary, "
        "intent, resolution, sentiment, lead score and action items; false = no analysis function, queue or cost",
    )
    analysis_model: str = Field(
        default="gpt-5-mini",
        alias="analysisModel",
        pattern=r"^[A-Za-z0-9._:-]{1,100}$",
        description="the OpenAI text model of the post-call analysis (Responses API with structured output)",
    )
    greeting_latency_alarm_ms: int = Field(
        default=500,
        alias="greetingLatencyAlarmMs",
        ge=50,
        le=10_000,
        description="alarm when the p95 greeting latency exceeds this many milliseconds",
    )
    # ---- abuse and spend -----------------------------------------------------------------------------------------
    api_waf: bool = Field(
        default=True,
        alias="apiWaf",
        description="an AWS WAF web ACL on the API with a per-IP rate rule (about USD 6/month plus USD 0.60 per "
        "million requests); false leaves it out",
    )
    api_waf_requests_per_ip: int = Field(
        default=1500,
        alias="apiWafRequestsPerIp",
        ge=100,
        le=2_000_000_000,
        description="requests one IP address may send the API in 5 minutes before the WAF blocks it (Twilio's own "
        "callbacks come from many addresses)",
    )
    max_live_calls_per_caller: int = Field(
        default=2,
        alias="maxLiveCallsPerCaller",
        ge=1,
        le=1000,
        description="live calls one caller number may have with the agent at once; more are answered busy",
    )
    max_live_withheld_calls: int = Field(
        default=1,
        alias="maxLiveWithheldCalls",
        ge=0,
        le=1000,
        description="live calls all withheld/anonymous callers together may have with the agent (0: none)",
    )
    daily_cost_budget_usd: int = Field(
        default=50,
        alias="dailyCostBudgetUsd",
        ge=1,
        le=1_000_000,
        description="alarm when the calls' estimated model cost in one UTC day exceeds this many US dollars",
    )
    # ---- personal data -------------------------------------------------------------------------------------------
    call_record_retention_days: int = Field(
        default=DEFAULT_CALL_RECORD_DAYS,
        alias="callRecordRetentionDays",
        ge=1,
        le=3650,
        description="days a call record stays in DynamoDB (TTL), from the call's start",
    )
    turn_retention_days: int = Field(
        default=DEFAULT_TURN_DAYS,
        alias="turnRetentionDays",
        ge=1,
        le=3650,
        description="days a transcript turn stays in DynamoDB (the transcript in S3 is the lasting copy)",
    )
    booking_retention_days: int = Field(
        default=DEFAULT_BOOKING_DAYS,
        alias="bookingRetentionDays",
        ge=1,
        le=3650,
        description="days a booking in the local booking store stays after the booked day",
    )
    caller_profile_retention_days: int = Field(
        default=365,
        alias="callerProfileRetentionDays",
        ge=1,
        le=3650,
        description="days a caller's profile stays after their last call",
    )
    transcript_retention_days: int = Field(
        default=365,
        alias="transcriptRetentionDays",
        ge=1,
        le=3650,
        description="days transcripts and call summaries stay in S3 (then 30 more as noncurrent versions)",
    )
    recording_retention_days: int = Field(
        default=90,
        alias="recordingRetentionDays",
        ge=1,
        le=3650,
        description="days call recordings (S3 prefix recordings/) stay in S3",
    )
    raw_number_retention_hours: int = Field(
        default=24,
        alias="rawNumberRetentionHours",
        ge=1,
        le=24,
        description="hours a finished call record keeps the caller's number before it is masked (its keyed hash stays)",
    )
    mask_caller_digits: bool = Field(
        default=True,
        alias="maskCallerDigits",
        description="store the caller's turns with every run of 3+ digits masked (card numbers said aloud)",
    )

    # ---- field checks ------------------------------------------------------------------------------------------------
    @property
    def metrics_namespace(self) -> str:
        """Each stack's metrics in a namespace of its own, named after the stack, so a staging and a production stack
        in one account and region never share autoscaling, alarms or dashboards. The default stack keeps the
        namespace a local run uses (`PhoneVoiceAgent`)."""
        return self.stack_name

    @field_validator("architecture", mode="before")
    @classmethod
    def _architecture_aliases(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            return {"arm": "arm64", "aarch64": "arm64", "amd64": "x86_64", "x86-64": "x86_64"}.get(lowered, lowered)
        return value

    @field_validator("domain_name", "hosted_zone_name", mode="before")
    @classmethod
    def _lower_host(cls, value: Any) -> Any:
        return value.strip().lower().rstrip(".") if isinstance(value, str) else value

    @field_validator("hosted_zone_id")
    @classmethod
    def _zone_id(cls, value: str | None) -> str | None:
        if value is not None and not _HOSTED_ZONE_ID.match(value):
            raise ValueError("must be a Route 53 hosted zone ID such as Z0123456789ABCDEFGHIJ")
        return value

    @field_validator("cloudfront_prefix_list_id")
    @classmethod
    def _prefix_list(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX_LIST_ID.match(value):
            raise ValueError("must be a managed prefix list ID such as pl-3b927c52")
        return value

    @field_validator("alarm_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("must be an e-mail address")
        return value

    @field_validator("openai_realtime_url")
    @classmethod
    def _wss(cls, value: str | None) -> str | None:
        if value is not None and (urlsplit(value).scheme != "wss" or not urlsplit(value).netloc):
            raise ValueError("must be a wss:// URL")
        return value

    @field_validator("relay_cpu")
    @classmethod
    def _cpu(cls, value: int) -> int:
        if value not in FARGATE_MEMORY_BY_CPU:
            raise ValueError(f"must be one of {', '.join(map(str, FARGATE_MEMORY_BY_CPU))}")
        return value

    # ---- cross-field checks ------------------------------------------------------------------------------------------
    @model_validator(mode="after")
    def _consistent(self) -> Self:
        domain = (self.domain_name, self.hosted_zone_id, self.hosted_zone_name)
        if any(domain) and not all(domain):
            missing = [
                key
                for key, value in zip(("domainName", "hostedZoneId", "hostedZoneName"), domain, strict=True)
                if not value
            ]
            raise ValueError(
                f"custom domain mode needs domainName, hostedZoneId and hostedZoneName; missing: {missing}"
            )
        if (
            self.domain_name
            and self.hosted_zone_name
            and not (
                self.domain_name == self.hosted_zone_name or self.domain_name.endswith("." + self.hosted_zone_name)
            )
        ):
            raise ValueError(f"domainName {self.domain_name} is not inside hostedZoneName {self.hosted_zone_name}")
        if self.relay_max_tasks < self.relay_min_tasks:
            raise ValueError(f"relayMaxTasks ({self.relay_max_tasks}) is below relayMinTasks ({self.relay_min_tasks})")
        allowed = FARGATE_MEMORY_BY_CPU.get(self.relay_cpu, ())
        if allowed and self.relay_memory_mib not in allowed:
            raise ValueError(
                f"relayMemoryMiB {self.relay_memory_mib} is not valid with relayCpu {self.relay_cpu}: "
                f"use {allowed[0]}..{allowed[-1]} in steps of {allowed[1] - allowed[0]}"
            )
        return self

    # ---- derived -----------------------------------------------------------------------------------------------------
    @property
    def custom_domain(self) -> bool:
        return self.domain_name is not None

    @classmethod
    def context_keys(cls) -> list[str]:
        return [field.alias or name for name, field in cls.model_fields.items()]

    @classmethod
    def from_context(
        cls, try_get_context: Callable[[str], Any], environ: Mapping[str, str] | None = None
    ) -> DeploySettings:
        """Read every known key through `node.try_get_context`; raise ContextError naming each bad key (and each
        retired one, with the profile key that replaced it)."""
        retired = [
            f"{key}: retired, a receptionist profile owns it now: set `{profile_key}` in profiles/<id>.toml "
            "(infra/DEPLOY.md, Receptionist profiles)"
            for key, profile_key in RETIRED_CONTEXT_KEYS.items()
            if try_get_context(key) not in (None, "")
        ]
        if retired:
            raise ContextError(retired)
        raw = {key: value for key in cls.context_keys() if (value := try_get_context(key)) not in (None, "")}
        environ = os.environ if environ is None else environ
        if "region" not in raw:
            raw["region"] = next(
                (environ[name] for name in REGION_ENVIRONMENT_VARIABLES if environ.get(name)), DEFAULT_REGION
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            problems = []
            for item in error.errors(include_url=False):
                key = str(item["loc"][0]) if item["loc"] else "(context)"
                message = str(item["msg"]).removeprefix("Value error, ")
                shown = f" (got {item['input']!r})" if item["loc"] and not isinstance(item["input"], dict) else ""
                problems.append(f"{key}: {message}{shown}")
            raise ContextError(problems) from None
