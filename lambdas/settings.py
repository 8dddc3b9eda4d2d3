"""The Lambdas' settings: one pydantic model, read from the environment and validated at the handler boundary.

Secrets (`TWILIO_AUTH_TOKEN`, `TWILIO_ACCOUNT_SID`, `CALLER_HASH_SECRET`, `STREAM_TOKEN_SECRET`) come from the plain
variable locally, or in AWS from the Secrets Manager secret whose ARN is in `<NAME>_ARN`, read through Powertools
Parameters with a cache. Only the function that mints stream tokens (the voice webhook) is given the stream-token
secret; it asks for it with `LambdaSettings.token_secret`, which fails naming the setting when it is missing.
The model is rebuilt on every invocation (parsing the environment costs microseconds); the Parameters cache is what
keeps Secrets Manager calls to one per secret per `SECRET_CACHE_SECONDS`, and what lets a rotated secret reach a
warm container without a redeploy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from callcore.models import E164_PATTERN
from callcore.pricing import TextModelPrices
from callcore.settings import (
    CALLER_HASH_KEY_DESCRIPTION,
    SecretFetcher,
    SettingsError,
    StorageSettings,
    caller_hash_key,
)

SECRET_CACHE_SECONDS = 300
_ACCOUNT_SID_PATTERN = re.compile(r"^AC[0-9a-fA-F]{32}$")


class AnsweringMachineDetection(StrEnum):
    """What an outbound call does when Twilio's answering-machine detection hears a machine."""

    OFF = "off"  # no detection: the agent talks to whatever answers
    HANGUP = "hangup"  # hang up at once when a machine answers
    MESSAGE = "message"  # wait for the beep, leave VOICEMAIL_MESSAGE, hang up


DEFAULT_VOICEMAIL_MESSAGE = (
    "Hello, this is the automated assistant returning your call. "
    "Please call us back at your convenience. Thank you, goodbye."
)


def _http_base_url(value: str | None, env: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"https", "http"} or not parts.netloc:
        raise ValueError(f"{env} must be an http(s) URL such as https://api.example.com/prod")
    if parts.query or parts.fragment:
        raise ValueError(f"{env} must not carry a query string or fragment")
    return value.rstrip("/")


class LambdaSettings(StorageSettings):
    """Everything the call-handling Lambdas read from their environment."""

    relay_public_url: str = Field(
        alias="RELAY_PUBLIC_URL",
        description="the relay's public wss:// URL given to Twilio in <Stream url>, e.g. wss://relay.example.com/media-stream",
    )
    twilio_auth_token: SecretStr = Field(
        alias="TWILIO_AUTH_TOKEN", min_length=8, description="Twilio auth token: checks webhook signatures, calls REST"
    )
    twilio_account_sid: SecretStr = Field(
        alias="TWILIO_ACCOUNT_SID", description="Twilio account SID (AC + 32 hex) the REST calls are made for"
    )
    stream_token_secret: SecretStr | None = Field(
        default=None,
        alias="STREAM_TOKEN_SECRET",
        min_length=16,
        description="HMAC key of the per-call stream token, shared with the relay (at least 16 characters); "
        "required by the voice webhook (it mints the tokens), given to no other function",
    )
    caller_hash_secret: SecretStr | None = Field(
        default=None, alias="CALLER_HASH_SECRET", min_length=16, description=CALLER_HASH_KEY_DESCRIPTION
    )
    human_transfer_number: str | None = Field(
        default=None,
        alias="HUMAN_TRANSFER_NUMBER",
        pattern=E164_PATTERN.pattern,
        description="E.164 number of the human line: transfers, overflow and fallback dial it (without receptionist "
        "profiles; with them, each call's profile's transfer.human_number; the fallback URL always dials this one)",
    )
    twilio_phone_number: str | None = Field(
        default=None,
        alias="TWILIO_PHONE_NUMBER",
        pattern=E164_PATTERN.pattern,
        description="E.164 caller id of outbound calls (POST /calls needs it unless the call's profile lists a number)",
    )
    max_concurrent_calls: int = Field(
        default=50,
        alias="MAX_CONCURRENT_CALLS",
        ge=0,
        le=100_000,
        description="calls the agent takes at once over every line (each profile's limits.max_concurrent_calls "
        "applies too); above it callers go to the human line (0 sends every call there)",
    )
    max_live_calls_per_caller: int = Field(
        default=2,
        alias="MAX_LIVE_CALLS_PER_CALLER",
        ge=1,
        le=1000,
        description="live calls one caller number may have with the agent at once; more are answered busy",
    )
    max_live_withheld_calls: int = Field(
        default=1,
        alias="MAX_LIVE_WITHHELD_CALLS",
        ge=0,
        le=1000,
        description="live calls all withheld or anonymous callers together may have with the agent at once "
        "(they cannot be told apart); more are answered busy",
    )
    max_call_seconds: int = Field(
        default=1800,
        alias="MAX_CALL_SECONDS",
        ge=60,
        le=14400,
        description="the relay ends a call this long; the sweep asks Twilio about a call still open well after it",
    )
    raw_number_retention_hours: int = Field(
        default=24,
        alias="RAW_NUMBER_RETENTION_HOURS",
        ge=1,
        le=24,
        description="hours a finished call record keeps the caller's number before the sweep masks it (its keyed "
        "hash stays)",
    )
    stream_token_ttl_seconds: int = Field(
        default=120,
        alias="STREAM_TOKEN_TTL_SECONDS",
        ge=10,
        le=3600,
        description="lifetime of the stream token: Twilio must open the media stream within it",
    )
    public_api_base_url: str | None = Field(
        default=None,
        alias="PUBLIC_API_BASE_URL",
        description="the API's public base URL including the stage or base path; required behind a custom domain "
        "(routing and signature checks need its base path); default: the execute-api host and stage of each request",
    )
    answering_machine_detection: AnsweringMachineDetection = Field(
        default=AnsweringMachineDetection.OFF,
        alias="ANSWERING_MACHINE_DETECTION",
        description="outbound calls: off | hangup | message (leave VOICEMAIL_MESSAGE after the beep)",
    )
    voicemail_message: str = Field(
        default=DEFAULT_VOICEMAIL_MESSAGE,
        alias="VOICEMAIL_MESSAGE",
        min_length=1,
        max_length=1000,
        description="what an outbound call says to an answering machine when ANSWERING_MACHINE_DETECTION=message",
    )
    transcript_grace_seconds: float = Field(
        default=5.0,
        alias="TRANSCRIPT_GRACE_SECONDS",
        ge=0,
        le=12,
        description="on `completed`, how long to wait for the relay's own transcript before rebuilding it from turns",
    )
    call_recording_enabled: bool = Field(
        default=False,
        alias="CALL_RECORDING_ENABLED",
        description="record calls the agent answers (dual channel, started when the media stream opens; the relay's "
        "greeting announces it): the audio goes to the transcripts bucket and is deleted at Twilio; with receptionist "
        "profiles, each profile's recording.enabled decides for its calls instead",
    )
    twilio_api_base_url: str | None = Field(
        default=None,
        alias="TWILIO_API_BASE_URL",
        description="tests only: send Twilio REST requests to this base URL (a local fake) instead of api.twilio.com",
    )

    @field_validator("relay_public_url")
    @classmethod
    def _relay_url_is_wss(cls, value: str) -> str:
        parts = urlsplit(value)
        # Twilio refuses anything but wss (error 31922) and drops query strings: values go in <Parameter> instead.
        if parts.scheme != "wss" or not parts.netloc:
            raise ValueError("must be a wss:// URL, e.g. wss://relay.example.com/media-stream")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string (Twilio drops it; the token travels as a <Parameter>)")
        return value

    @field_validator("twilio_account_sid")
    @classmethod
    def _account_sid_shape(cls, value: SecretStr) -> SecretStr:
        if not _ACCOUNT_SID_PATTERN.match(value.get_secret_value()):
            raise ValueError("must be AC followed by 32 hex digits")
        return value

    @field_validator("public_api_base_url")
    @classmethod
    def _public_base(cls, value: str | None) -> str | None:
        return _http_base_url(value, "PUBLIC_API_BASE_URL")

    @field_validator("twilio_api_base_url")
    @classmethod
    def _twilio_base(cls, value: str | None) -> str | None:
        return _http_base_url(value, "TWILIO_API_BASE_URL")

    @model_validator(mode="after")
    def _can_hash_callers(self) -> LambdaSettings:
        caller_hash_key(self.caller_hash_secret, self.stream_token_secret)
        return self

    @property
    def caller_hash_key(self) -> bytes:
        """Key of the keyed hash of caller numbers, the same in every function and the relay."""
        return caller_hash_key(self.caller_hash_secret, self.stream_token_secret)

    def token_secret(self) -> str:
        """The stream-token secret, for the function that mints tokens; fails naming the setting when this function
        was not given it."""
        if self.stream_token_secret is None:
            raise SettingsError(
                type(self).__name__,
                [
                    "STREAM_TOKEN_SECRET is required to answer calls (it signs the stream token): "
                    "set STREAM_TOKEN_SECRET or STREAM_TOKEN_SECRET_ARN"
                ],
            )
        return self.stream_token_secret.get_secret_value()


def powertools_secret_fetcher(arn: str) -> str:
    """Secrets Manager through Powertools Parameters, cached for SECRET_CACHE_SECONDS per container."""
    # Imported here: only deployments that pass *_ARN pay for boto3's Secrets Manager client.
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

    # A secret stored as SecretBinary comes back as bytes whatever the annotation says.
    value: object = parameters.get_secret(arn, max_age=SECRET_CACHE_SECONDS)
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not value:
        raise ValueError("the secret has no string value yet (fill it as the README's deploy guide says)")
    return value


def load_settings(
    environ: Mapping[str, str] | None = None, *, secret_fetcher: SecretFetcher | None = None
) -> LambdaSettings:
    """Read and validate the settings; raises `callcore.settings.SettingsError` naming every bad variable."""
    return LambdaSettings.from_env(environ, secret_fetcher=secret_fetcher or powertools_secret_fetcher)


class AnalysisSettings(StorageSettings):
    """The post-call analysis function's environment (`lambdas.handlers.post_call_analysis`)."""

    analysis_enabled: bool = Field(
        default=True,
        alias="ANALYSIS_ENABLED",
        description="false: transcripts are not sent for analysis (events are taken and dropped)",
    )
    openai_api_key: SecretStr = Field(
        alias="OPENAI_API_KEY", min_length=8, description="OpenAI API key for the text model (secret)"
    )
    caller_hash_secret: SecretStr | None = Field(
        default=None, alias="CALLER_HASH_SECRET", min_length=16, description=CALLER_HASH_KEY_DESCRIPTION
    )
    stream_token_secret: SecretStr | None = Field(
        default=None,
        alias="STREAM_TOKEN_SECRET",
        min_length=16,
        description="local runs only: the caller-hash key is derived from it when CALLER_HASH_SECRET is unset",
    )
    analysis_model: str = Field(
        default="gpt-5-mini",
        alias="ANALYSIS_MODEL",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="OpenAI text model asked for the analysis (Responses API, structured output)",
    )
    openai_base_url: str | None = Field(
        default=None,
        alias="OPENAI_BASE_URL",
        description="OpenAI API base URL, e.g. https://api.openai.com/v1 (default); tests point it at a local fake",
    )
    analysis_timeout_seconds: float = Field(
        default=30.0,
        alias="ANALYSIS_TIMEOUT_SECONDS",
        gt=0,
        le=300,
        description="one request to the text model; the SDK retries twice, then the queue retries the event",
    )
    analysis_max_transcript_chars: int = Field(
        default=40_000,
        alias="ANALYSIS_MAX_TRANSCRIPT_CHARS",
        ge=1000,
        le=1_000_000,
        description="longer transcripts keep their beginning and end (the middle is cut) before they are sent",
    )
    analysis_price_input_per_m: Decimal = Field(
        default=Decimal("0.25"), alias="ANALYSIS_PRICE_INPUT_PER_M", ge=0, description="USD per 1M input tokens"
    )
    analysis_price_cached_input_per_m: Decimal = Field(
        default=Decimal("0.025"),
        alias="ANALYSIS_PRICE_CACHED_INPUT_PER_M",
        ge=0,
        description="USD per 1M cached input tokens",
    )
    analysis_price_output_per_m: Decimal = Field(
        default=Decimal(2), alias="ANALYSIS_PRICE_OUTPUT_PER_M", ge=0, description="USD per 1M output tokens"
    )

    @field_validator("openai_base_url")
    @classmethod
    def _openai_base(cls, value: str | None) -> str | None:
        return _http_base_url(value, "OPENAI_BASE_URL")

    @model_validator(mode="after")
    def _can_hash_callers(self) -> AnalysisSettings:
        caller_hash_key(self.caller_hash_secret, self.stream_token_secret)
        return self

    @property
    def caller_hash_key(self) -> bytes:
        """The key of the caller hash in the call summary this function rewrites (the same as every other part's)."""
        return caller_hash_key(self.caller_hash_secret, self.stream_token_secret)

    @property
    def prices(self) -> TextModelPrices:
        return TextModelPrices(
            input=self.analysis_price_input_per_m,
            cached_input=self.analysis_price_cached_input_per_m,
            output=self.analysis_price_output_per_m,
        )


def load_analysis_settings(
    environ: Mapping[str, str] | None = None, *, secret_fetcher: SecretFetcher | None = None
) -> AnalysisSettings:
    return AnalysisSettings.from_env(environ, secret_fetcher=secret_fetcher or powertools_secret_fetcher)
