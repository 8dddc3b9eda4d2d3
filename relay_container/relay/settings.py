"""The relay's settings: every environment variable it reads, validated once at start-up (`python -m relay`).

Each field's alias is its environment name; the README's settings table is generated from these descriptions.
Secrets (`OPENAI_API_KEY`, `TWILIO_AUTH_TOKEN`, `STREAM_TOKEN_SECRET`, `CALLER_HASH_SECRET`) come from `NAME`
locally or from Secrets Manager through `NAME_ARN` (ECS injects the plain values in AWS).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from callcore.business_hours import WeeklyHours
from callcore.models import E164_PATTERN
from callcore.pricing import ModelPrices
from callcore.profiles.model import TurnDetection, VadEagerness
from callcore.settings import CALLER_HASH_KEY_DESCRIPTION, StorageSettings, caller_hash_key
from relay.shutdown import (
    CONTAINER_STOP_TIMEOUT_SECONDS,
    DEFAULT_CLOSE_TIMEOUT_SECONDS,
    DEFAULT_DRAIN_TIMEOUT_SECONDS,
    max_drain_seconds,
)

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
DEFAULT_PROMPT_FILE = PROMPTS_DIR / "system.md"
MEDIA_STREAM_PATH = "/media-stream"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


def _websocket_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"ws", "wss"} or not parts.netloc:
        raise ValueError("must be a full ws:// or wss:// URL")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be a full http:// or https:// URL")
    return value.rstrip("/")


WebSocketUrl = Annotated[str, AfterValidator(_websocket_url)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Price = Annotated[Decimal, Field(ge=0)]


class RelaySettings(StorageSettings):
    """Everything `python -m relay` needs. Built once; passed to the app factory; never read from os.environ later."""

    # ---- wiring --------------------------------------------------------------------------------------------------
    port: int = Field(default=8080, alias="PORT", ge=1, le=65535, description="TCP port the relay listens on")
    openai_realtime_url: WebSocketUrl = Field(
        default="wss://api.openai.com/v1/realtime?model=gpt-realtime",
        alias="OPENAI_REALTIME_URL",
        description="the OpenAI Realtime (GA) WebSocket URL, model in the query",
    )
    openai_api_key: SecretStr = Field(alias="OPENAI_API_KEY", description="OpenAI API key (secret)")
    twilio_auth_token: SecretStr = Field(
        alias="TWILIO_AUTH_TOKEN", description="Twilio auth token that signs the WebSocket upgrade (secret)"
    )
    stream_token_secret: SecretStr = Field(
        alias="STREAM_TOKEN_SECRET", description="HMAC secret of the per-call stream token (secret)"
    )
    caller_hash_secret: SecretStr | None = Field(
        default=None, alias="CALLER_HASH_SECRET", min_length=16, description=CALLER_HASH_KEY_DESCRIPTION
    )
    relay_public_url: WebSocketUrl = Field(
        alias="RELAY_PUBLIC_URL",
        description="the public wss://host/media-stream URL Twilio is given; upgrade signatures are checked on it",
    )
    call_control_url: HttpUrl | None = Field(
        default=None,
        alias="CALL_CONTROL_URL",
        description="base URL of the call-control API ({base}/calls/{callSid}/transfer|hangup); SigV4 on API Gateway",
    )
    business_api_base: HttpUrl | None = Field(
        default=None,
        alias="BUSINESS_API_BASE",
        description="base URL of the business's booking API; unset = bookings kept in the call table",
    )
    human_transfer_number: str | None = Field(
        default=None,
        alias="HUMAN_TRANSFER_NUMBER",
        pattern=E164_PATTERN.pattern,
        description="E.164 number of the human line; unset = the agent cannot transfer",
    )
    metrics_namespace: str = Field(
        default="PhoneVoiceAgent", alias="METRICS_NAMESPACE", min_length=1, description="CloudWatch EMF namespace"
    )
    ecs_agent_uri: str | None = Field(
        default=None,
        alias="ECS_AGENT_URI",
        description="set by ECS; used for task scale-in protection while calls are live (unset locally)",
    )
    log_level: LogLevel = Field(
        default=LogLevel.INFO,
        alias="LOG_LEVEL",
        description="DEBUG|INFO|WARNING|ERROR|CRITICAL (any case); the relay's log on stderr (stdout carries metrics)",
    )
    task_protection_minutes: int = Field(
        default=60,
        alias="TASK_PROTECTION_MINUTES",
        ge=1,
        le=2880,
        description="length of each scale-in protection lease, renewed while calls last",
    )

    # ---- the model session -----------------------------------------------------------------------------------------
    openai_voice: str = Field(
        default="marin", alias="OPENAI_VOICE", min_length=1, description="voice of the agent (fixed per session)"
    )
    turn_detection: TurnDetection = Field(
        default=TurnDetection.SERVER_VAD, alias="TURN_DETECTION", description="server_vad or semantic_vad"
    )
    vad_threshold: float = Field(
        default=0.5, alias="VAD_THRESHOLD", ge=0.0, le=1.0, description="server_vad: speech probability threshold"
    )
    vad_prefix_padding_ms: int = Field(
        default=300, alias="VAD_PREFIX_PADDING_MS", ge=0, le=2000, description="server_vad: audio kept before speech"
    )
    vad_silence_duration_ms: int = Field(
        default=500,
        alias="VAD_SILENCE_DURATION_MS",
        ge=100,
        le=5000,
        description="server_vad: silence that ends the caller's turn",
    )
    vad_eagerness: VadEagerness = Field(
        default=VadEagerness.AUTO, alias="VAD_EAGERNESS", description="semantic_vad: low|medium|high|auto"
    )
    transcription_model: str = Field(
        default="gpt-4o-transcribe",
        alias="INPUT_TRANSCRIPTION_MODEL",
        min_length=1,
        description="model transcribing the caller (for records; the agent hears the audio itself)",
    )
    prompt_file: Path = Field(
        default=DEFAULT_PROMPT_FILE,
        alias="RELAY_PROMPT_FILE",
        description="the system prompt template (str.format fields: business_name, local_time, ...)",
    )
    business_name: str = Field(
        default="the office", alias="BUSINESS_NAME", min_length=1, max_length=100, description="said in greetings"
    )
    business_timezone: str = Field(
        default="America/New_York", alias="BUSINESS_TIMEZONE", description="IANA time zone of the business"
    )
    business_hours: str = Field(
        default="mon-fri 09:00-17:00",
        alias="BUSINESS_HOURS",
        description='opening hours, e.g. "mon-fri 09:00-17:00; sat 10:00-14:00" (local time)',
    )

    # ---- greeting ------------------------------------------------------------------------------------------------
    greeting_inbound: str = Field(
        default="Thanks for calling {business_name}. This is the virtual assistant. How can I help you today?",
        alias="GREETING_INBOUND",
        min_length=1,
        max_length=500,
        description="first words on an inbound call ({business_name} is filled in)",
    )
    greeting_outbound: str = Field(
        default="Hello, this is the virtual assistant calling from {business_name}. Do you have a moment?",
        alias="GREETING_OUTBOUND",
        min_length=1,
        max_length=500,
        description="first words on an outbound call",
    )
    recording_enabled: bool = Field(
        default=False,
        alias="CALL_RECORDING_ENABLED",
        description="the call is recorded: the greeting announces it",
    )
    recording_announcement: str = Field(
        default="This call may be recorded.",
        alias="RECORDING_ANNOUNCEMENT",
        min_length=1,
        max_length=300,
        description="sentence put before the greeting when recording is on",
    )
    greeting_cache_enabled: bool = Field(
        default=True,
        alias="GREETING_CACHE",
        description="render the greeting once with the model and replay it from memory (off = the model greets live)",
    )
    filler_phrase: str = Field(
        default="One moment, please.",
        alias="FILLER_PHRASE",
        min_length=1,
        max_length=200,
        description="said from the cache (not the model) when the model connection is being restored and the caller "
        "would otherwise hear silence for more than about 1.5 s",
    )

    # ---- capacity and timing -------------------------------------------------------------------------------------
    model_pool_size: int = Field(
        default=2,
        alias="MODEL_POOL_SIZE",
        ge=0,
        le=50,
        description="warm, configured model sessions kept ready for the next calls (0 = connect per call)",
    )
    model_pool_max_age_seconds: int = Field(
        default=600,
        alias="MODEL_POOL_MAX_AGE_SECONDS",
        ge=10,
        le=3000,
        description="a warm session older than this is replaced (sessions expire after 60 minutes)",
    )
    model_session_max_seconds: float = Field(
        default=3300,
        alias="MODEL_SESSION_MAX_SECONDS",
        ge=2,
        le=3540,
        description="a call moves to a fresh model session (re-seeded with the conversation, at a pause) before its "
        "session is this old; OpenAI ends a session at 60 minutes. A pooled session's age counts from its creation",
    )
    model_reconnect_seconds: float = Field(
        default=8.0,
        alias="MODEL_RECONNECT_SECONDS",
        gt=0,
        le=30,
        description="after an unexpected loss of the model session, keep trying to get a new one this long (jittered "
        "backoff, the first try at once) before handing the caller over",
    )
    tool_timeout_seconds: float = Field(
        default=8.0, alias="TOOL_TIMEOUT_SECONDS", gt=0, le=60, description="a tool taking longer fails gracefully"
    )
    close_timeout_seconds: float = Field(
        default=DEFAULT_CLOSE_TIMEOUT_SECONDS,
        alias="CLOSE_TIMEOUT_SECONDS",
        gt=0,
        le=10,
        description="bound on each socket close at teardown",
    )
    mark_interval_ms: int = Field(
        default=200,
        alias="MARK_INTERVAL_MS",
        ge=0,
        le=500,
        description="agent audio sent to Twilio between two `mark`s (0: a mark after every chunk); the play-out "
        "between echoes is interpolated by the clock, and an utterance's end is always marked",
    )
    max_call_seconds: float = Field(
        default=1800,
        alias="MAX_CALL_SECONDS",
        ge=2,
        le=14400,
        description="the agent wraps up and ends a call this long (through the hang-up endpoint)",
    )
    max_call_warning_seconds: float = Field(
        default=60,
        alias="MAX_CALL_WARNING_SECONDS",
        ge=1,
        le=600,
        description="seconds before MAX_CALL_SECONDS when the agent is told to wrap up",
    )
    silence_timeout_seconds: float = Field(
        default=20,
        alias="SILENCE_TIMEOUT_SECONDS",
        ge=1,
        le=600,
        description="when neither side has spoken this long, the agent asks whether the caller is still there; as "
        "long again and it says goodbye and ends the call (outcome silence)",
    )
    stream_idle_timeout_seconds: float = Field(
        default=30,
        alias="STREAM_IDLE_TIMEOUT_SECONDS",
        ge=1,
        le=55,
        description="Twilio sends audio every 20 ms: a media stream silent this long is a dead (half-open) line and "
        "the call ends",
    )
    dtmf_transfer_digit: str | None = Field(
        default=None,
        alias="DTMF_TRANSFER_DIGIT",
        pattern=r"^[0-9*#]$",
        description="a keypad key (0-9, * or #) that transfers the caller to the human line at once; unset = every "
        "key goes to the agent as text",
    )
    max_pending_streams: int = Field(
        default=32,
        alias="MAX_PENDING_STREAMS",
        ge=1,
        le=1000,
        description="WebSockets allowed to wait for their `start` frame at once; more are refused (1013)",
    )
    readiness_deadline_seconds: float = Field(
        default=20,
        alias="READINESS_DEADLINE_SECONDS",
        ge=0,
        le=120,
        description="a starting relay answers /healthz 200 once its greetings are rendered, its model pool is full "
        "and the call table answered, or at this deadline whatever is missing (then calls greet live or fail over)",
    )
    drain_timeout_seconds: float = Field(
        default=DEFAULT_DRAIN_TIMEOUT_SECONDS,
        alias="DRAIN_TIMEOUT_SECONDS",
        ge=0,
        le=3600,
        description=f"on SIGTERM: wait this long for live calls to end; with the hand-over and final writes after it "
        f"it must fit the container's stop timeout ({CONTAINER_STOP_TIMEOUT_SECONDS} s on Fargate)",
    )
    max_frame_bytes: int = Field(
        default=64 * 1024,
        alias="MAX_FRAME_BYTES",
        ge=1024,
        le=1024 * 1024,
        description="a Twilio frame larger than this closes the stream (1009)",
    )

    caller_profile_retention_days: int = Field(
        default=365,
        alias="CALLER_PROFILE_RETENTION_DAYS",
        ge=1,
        le=3650,
        description="a caller's profile (call count, last call; keyed by a hash of the number) expires this long "
        "after their last call",
    )
    mask_caller_digits: bool = Field(
        default=True,
        alias="MASK_CALLER_DIGITS",
        description="store the caller's turns with every run of 3+ digits masked (card numbers, codes said aloud); "
        "the live conversation is unaffected",
    )

    # ---- cost ----------------------------------------------------------------------------------------------------
    price_audio_input: Price = Field(
        default=Decimal(32), alias="PRICE_AUDIO_INPUT_PER_M", description="USD per 1M audio input tokens"
    )
    price_audio_output: Price = Field(
        default=Decimal(64), alias="PRICE_AUDIO_OUTPUT_PER_M", description="USD per 1M audio output tokens"
    )
    price_text_input: Price = Field(
        default=Decimal(4), alias="PRICE_TEXT_INPUT_PER_M", description="USD per 1M text input tokens"
    )
    price_text_output: Price = Field(
        default=Decimal(16), alias="PRICE_TEXT_OUTPUT_PER_M", description="USD per 1M text output tokens"
    )
    price_cached_input: Price = Field(
        default=Decimal("0.4"), alias="PRICE_CACHED_INPUT_PER_M", description="USD per 1M cached input tokens"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_call_warning_seconds >= self.max_call_seconds:
            raise ValueError("MAX_CALL_WARNING_SECONDS must be shorter than MAX_CALL_SECONDS")
        if self.model_pool_size and self.model_pool_max_age_seconds >= self.model_session_max_seconds:
            raise ValueError(
                "MODEL_POOL_MAX_AGE_SECONDS must be below MODEL_SESSION_MAX_SECONDS: a pooled session would have to "
                "be rotated as soon as a call takes it"
            )
        if self.dtmf_transfer_digit and not self.human_transfer_number:
            raise ValueError("DTMF_TRANSFER_DIGIT needs HUMAN_TRANSFER_NUMBER (the line the key transfers to)")
        limit = max_drain_seconds(self.close_timeout_seconds)
        if self.drain_timeout_seconds > limit:
            raise ValueError(
                f"DRAIN_TIMEOUT_SECONDS must be at most {limit:g} with CLOSE_TIMEOUT_SECONDS="
                f"{self.close_timeout_seconds:g}: the hand-over and final writes after the drain must fit the "
                f"{CONTAINER_STOP_TIMEOUT_SECONDS} s stop timeout"
            )
        return self

    @field_validator("relay_public_url")
    @classmethod
    def _public_url_is_the_media_stream(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.path != MEDIA_STREAM_PATH or parts.query or parts.fragment:
            raise ValueError(f"must be ws(s)://<host>{MEDIA_STREAM_PATH} with no query (the URL Twilio signs)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("business_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA time zone (e.g. America/New_York)") from None
        return value

    @field_validator("business_hours")
    @classmethod
    def _parsable_hours(cls, value: str) -> str:
        WeeklyHours.parse(value)  # raises ValueError with what is wrong
        return value

    @field_validator("prompt_file")
    @classmethod
    def _prompt_exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"no prompt file at {value}")
        return value

    @field_validator("greeting_inbound", "greeting_outbound")
    @classmethod
    def _greeting_template(cls, value: str) -> str:
        try:
            value.format(business_name="x")
        except (KeyError, IndexError, ValueError):
            raise ValueError("only the {business_name} field may appear in a greeting") from None
        return value

    # ---- derived values ---------------------------------------------------------------------------------------------

    @property
    def prices(self) -> ModelPrices:
        return ModelPrices(
            audio_input=self.price_audio_input,
            audio_output=self.price_audio_output,
            text_input=self.price_text_input,
            text_output=self.price_text_output,
            cached_input=self.price_cached_input,
        )

    @property
    def model_name(self) -> str:
        """The model named in OPENAI_REALTIME_URL's query (what the greeting cache is keyed on)."""
        return parse_qs(urlsplit(self.openai_realtime_url).query).get("model", ["gpt-realtime"])[0]

    @property
    def caller_hash_key(self) -> bytes:
        """Key of the caller-number hash (profiles, S3 call summaries), the same as the Lambdas' (see callcore)."""
        return caller_hash_key(self.caller_hash_secret, self.stream_token_secret)

    @property
    def weekly_hours(self) -> WeeklyHours:
        return WeeklyHours.parse(self.business_hours)

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.business_timezone)
