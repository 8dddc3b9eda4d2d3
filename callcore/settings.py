"""Settings: pydantic models read from the environment once, at start-up, failing with a message naming each bad
setting and what is wrong with it.

Each field's alias is its environment variable. Secret fields (`SecretStr`) come from `NAME` locally, or from the
Secrets Manager secret whose ARN is in `NAME_ARN` in AWS (read once, cached). Secret values never appear in a repr,
a log line or an error message.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from threading import Lock
from typing import Any, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from callcore.store import CallStore
from callcore.store.retention import (
    DEFAULT_BOOKING_DAYS,
    DEFAULT_CALL_RECORD_DAYS,
    DEFAULT_TURN_DAYS,
    Retention,
)

SecretFetcher = Callable[[str], str]


class SettingsError(Exception):
    """Start-up configuration is wrong. The message lists every problem, one per line, by environment name."""

    def __init__(self, owner: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"invalid {owner} settings:\n  - " + "\n  - ".join(problems))


def is_secret_field(annotation: Any) -> bool:
    """A `SecretStr` (or optional `SecretStr`) field: read from NAME, or from Secrets Manager through NAME_ARN."""
    return annotation is SecretStr or SecretStr in get_args(annotation)


class SecretsManagerFetcher:
    """Reads a secret string by ARN through boto3, caching it for `ttl_seconds` (rotation is picked up later)."""

    def __init__(self, ttl_seconds: float = 300.0) -> None:
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = Lock()

    def __call__(self, arn: str) -> str:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(arn)
            if cached and now - cached[0] < self._ttl:
                return cached[1]
        from botocore.exceptions import ClientError  # noqa: PLC0415

        from callcore.aws import secretsmanager_client  # noqa: PLC0415 - only AWS deployments need boto3 here

        try:
            value = secretsmanager_client().get_secret_value(SecretId=arn).get("SecretString")
        except ClientError as error:
            # A secret created empty by the stack has no AWSCURRENT version until someone fills it.
            if "staging label" in str(error):
                value = None
            else:
                raise
        if not value:
            raise ValueError("the secret has no string value yet (fill it as the README's deploy guide says)")
        with self._lock:
            self._cache[arn] = (now, value)
        return value


default_secret_fetcher = SecretsManagerFetcher()


class EnvSettings(BaseModel):
    """Base of every settings model. Subclasses declare fields with `alias="ENV_NAME"` and a description."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, secret_fetcher: SecretFetcher | None = None) -> Self:
        environ = os.environ if environ is None else environ
        fetch = secret_fetcher or default_secret_fetcher
        data: dict[str, Any] = {}
        problems: list[str] = []
        for name, field in cls.model_fields.items():
            env = field.alias or name.upper()
            raw = environ.get(env, "")
            if raw != "":
                data[env] = raw
            elif is_secret_field(field.annotation) and environ.get(f"{env}_ARN"):
                try:
                    data[env] = fetch(environ[f"{env}_ARN"])
                except Exception as error:
                    problems.append(f"{env}_ARN: could not read the secret ({type(error).__name__}: {error})")
        try:
            settings = cls.model_validate(data)
        except ValidationError as error:
            problems.extend(cls._describe(error))
            raise SettingsError(cls.__name__, problems) from None
        if problems:
            raise SettingsError(cls.__name__, problems)
        return settings

    @classmethod
    def _describe(cls, error: ValidationError) -> list[str]:
        by_alias = {(f.alias or n.upper()): f for n, f in cls.model_fields.items()}
        problems = []
        for item in error.errors(include_input=False, include_url=False):
            env = str(item["loc"][0]) if item["loc"] else "(settings)"
            field = by_alias.get(env)
            hint = f" ({field.description})" if field and field.description else ""
            if item["type"] == "missing":
                secret = field is not None and is_secret_field(field.annotation)
                how = f"set {env}" + (f" or {env}_ARN" if secret else "")
                problems.append(f"{env} is required{hint}: {how}")
            else:
                problems.append(f"{env}: {item['msg']}{hint}")
        return problems


class StorageSettings(EnvSettings):
    """Where call records and transcripts live. Shared by the Lambdas and the relay."""

    calls_table: str = Field(
        alias="CALLS_TABLE",
        min_length=3,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="the DynamoDB table of call records and transcript turns",
    )
    transcripts_bucket: str = Field(
        alias="TRANSCRIPTS_BUCKET",
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$",
        description="the S3 bucket transcripts are written to",
    )
    turn_retention_days: int = Field(
        default=DEFAULT_TURN_DAYS,
        alias="TURN_RETENTION_DAYS",
        ge=1,
        le=3650,
        description="days turn items stay in DynamoDB (the transcript in S3 is the lasting copy)",
    )
    call_record_retention_days: int = Field(
        default=DEFAULT_CALL_RECORD_DAYS,
        alias="CALL_RECORD_RETENTION_DAYS",
        ge=1,
        le=3650,
        description="days a call record stays in DynamoDB, from the call's start",
    )
    booking_retention_days: int = Field(
        default=DEFAULT_BOOKING_DAYS,
        alias="BOOKING_RETENTION_DAYS",
        ge=1,
        le=3650,
        description="days a booking in the local booking store stays in DynamoDB after the booked day",
    )

    @property
    def retention(self) -> Retention:
        """How long the store keeps what it writes (the table's TTL on each item)."""
        return Retention(
            call_record_days=self.call_record_retention_days,
            turn_days=self.turn_retention_days,
            booking_days=self.booking_retention_days,
        )

    def call_store(self) -> CallStore:
        """The store of CALLS_TABLE, writing every item with its retention."""
        return CallStore(self.calls_table, retention=self.retention)


CALLER_HASH_KEY_DESCRIPTION = (
    "key of the keyed hash of caller numbers (profiles, per-caller limits, analytics, erasure; at least 16 "
    "characters); unset = derived from STREAM_TOKEN_SECRET, for a local run where one secret serves both"
)


def caller_hash_key(caller_hash_secret: SecretStr | None, stream_token_secret: SecretStr | None) -> bytes:
    """The key every part hashes caller numbers with (`callcore.masking.caller_hash`): from CALLER_HASH_SECRET, so
    functions that never see a stream token can hash a number; locally, where it is unset, from the token secret."""
    secret = caller_hash_secret or stream_token_secret
    if secret is None:
        raise ValueError("set CALLER_HASH_SECRET (or STREAM_TOKEN_SECRET, from which it is then derived)")
    return hashlib.sha256(b"caller-hash:" + secret.get_secret_value().encode()).digest()
