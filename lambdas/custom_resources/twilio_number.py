"""CloudFormation custom resource (CDK Provider framework): point a Twilio number at this stack's webhooks, and put
back what was there when the resource is deleted.

Create   look the number up, remember its voice URL, fallback URL, status callback (with their methods) and TwiML App,
         then point them at the stack's /twilio/incoming, /twilio/fallback and /twilio/status.
Update   same number: apply the new URLs, keep what was remembered. Another number: wire it under a new physical
         ID; CloudFormation then deletes the old physical ID, which restores the old number.
Delete   restore each remembered setting that still points at the stack (a setting someone changed since is theirs
         and stays). A number released from the account meanwhile needs nothing.

The remembered settings travel in the physical resource ID (CloudFormation hands it back on every later event), so
the handler needs no store of its own. Twilio is reached with the twilio REST client; its credentials come from the
stack's Secrets Manager secrets (`TWILIO_ACCOUNT_SID_ARN`, `TWILIO_AUTH_TOKEN_ARN`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from callcore.masking import mask_phone
from callcore.models import E164_PATTERN
from callcore.settings import EnvSettings

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

PHYSICAL_ID_PREFIX = "twilio-number"
MAX_PHYSICAL_ID_LENGTH = 1024  # CloudFormation's limit
TWILIO_TIMEOUT_SECONDS = 10.0
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_NUMBER_SID = re.compile(r"^PN[0-9a-fA-F]{32}$")
_HTTP_NOT_FOUND = 404
_HTTP_UNAUTHORIZED = 401


class WiringError(Exception):
    """The number cannot be wired (or restored). The message is what CloudFormation shows the operator."""


@dataclass(frozen=True, slots=True)
class VoiceConfig:
    """The settings of an IncomingPhoneNumber this resource changes (Twilio's parameter names, "" = unset)."""

    voice_url: str = ""
    voice_method: str = "POST"
    voice_fallback_url: str = ""
    voice_fallback_method: str = "POST"
    status_callback: str = ""
    status_callback_method: str = "POST"
    # A TwiML App on the number wins over its voice URL: it is cleared while the stack owns the number.
    voice_application_sid: str = ""

    @classmethod
    def from_twilio(cls, values: Mapping[str, Any]) -> VoiceConfig:
        defaults = cls()
        return cls(**{f.name: values.get(f.name) or getattr(defaults, f.name) for f in fields(cls)})

    def as_params(self) -> dict[str, str]:
        return asdict(self)


# Settings restored together on delete: a URL and its method; the TwiML App on its own.
RESTORE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("voice_url", "voice_method"),
    ("voice_fallback_url", "voice_fallback_method"),
    ("status_callback", "status_callback_method"),
    ("voice_application_sid",),
)


class WiringProperties(BaseModel):
    """The custom resource's properties (set by infra/constructs/twilio_number.py)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    phone_number: str = Field(alias="PhoneNumber", pattern=E164_PATTERN.pattern)
    voice_url: str = Field(alias="VoiceUrl")
    fallback_url: str = Field(alias="FallbackUrl")
    status_callback_url: str = Field(alias="StatusCallbackUrl")

    @field_validator("voice_url", "fallback_url", "status_callback_url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError("must be an https:// URL")
        return value

    @property
    def target(self) -> VoiceConfig:
        return VoiceConfig(
            voice_url=self.voice_url,
            voice_fallback_url=self.fallback_url,
            status_callback=self.status_callback_url,
        )


@dataclass(frozen=True, slots=True)
class NumberState:
    sid: str
    phone_number: str
    config: VoiceConfig
    trunk_sid: str = ""


class NumberDirectory(Protocol):
    """What the handler needs from Twilio: find a number, read it, change it."""

    def find(self, phone_number: str) -> NumberState | None: ...

    def get(self, sid: str) -> NumberState | None: ...

    def update(self, sid: str, config: VoiceConfig) -> None: ...


def _page_error(error: TwilioException) -> TwilioRestException:
    """twilio raises a bare TwilioException("Unable to fetch page", response) when a list page fails: make it the
    TwilioRestException (status, code, message) every other call raises."""
    response = error.args[1] if len(error.args) > 1 else None
    status = getattr(response, "status_code", 0)
    try:
        body = json.loads(getattr(response, "text", "") or "{}")
    except ValueError:
        body = {}
    return TwilioRestException(status, "IncomingPhoneNumbers", str(body.get("message", error)), body.get("code"))


class TwilioNumberDirectory:
    """IncomingPhoneNumbers of one account through the twilio REST client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @staticmethod
    def _state(instance: Any) -> NumberState:
        return NumberState(
            sid=instance.sid,
            phone_number=instance.phone_number,
            config=VoiceConfig.from_twilio({f.name: getattr(instance, f.name, None) for f in fields(VoiceConfig)}),
            trunk_sid=instance.trunk_sid or "",
        )

    def find(self, phone_number: str) -> NumberState | None:
        try:
            instances = self._client.incoming_phone_numbers.list(phone_number=phone_number, limit=50)
        except TwilioRestException:
            raise
        except TwilioException as error:
            raise _page_error(error) from None
        # Twilio's PhoneNumber filter also matches partially: keep the exact match only.
        for instance in instances:
            if instance.phone_number == phone_number:
                return self._state(instance)
        return None

    def get(self, sid: str) -> NumberState | None:
        try:
            return self._state(self._client.incoming_phone_numbers(sid).fetch())
        except TwilioRestException as error:
            if error.status == _HTTP_NOT_FOUND:
                return None
            raise

    def update(self, sid: str, config: VoiceConfig) -> None:
        self._client.incoming_phone_numbers(sid).update(**config.as_params())


# ---- the physical resource ID carries what to restore
def encode_physical_id(sid: str, previous: VoiceConfig) -> str:
    packed = zlib.compress(json.dumps(previous.as_params(), separators=(",", ":")).encode(), 9)
    physical_id = f"{PHYSICAL_ID_PREFIX}:{sid}:{base64.urlsafe_b64encode(packed).decode().rstrip('=')}"
    if len(physical_id) > MAX_PHYSICAL_ID_LENGTH:
        raise WiringError(
            "the number's current webhook URLs are too long to remember for restoring on delete; "
            "shorten or clear them in the Twilio console and deploy again"
        )
    return physical_id


def decode_physical_id(physical_id: str) -> tuple[str, VoiceConfig] | None:
    """`(number SID, settings to restore)`, or None for an ID this handler did not write."""
    prefix, _, rest = physical_id.partition(":")
    sid, _, packed = rest.partition(":")
    if prefix != PHYSICAL_ID_PREFIX or not _NUMBER_SID.match(sid) or not packed:
        return None
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
        values = json.loads(raw)
    except (ValueError, zlib.error):
        return None
    if not isinstance(values, dict):
        return None
    return sid, VoiceConfig.from_twilio(values)


# ---- the lifecycle
def _properties(event: Mapping[str, Any], key: str = "ResourceProperties") -> WiringProperties:
    try:
        return WiringProperties.model_validate(event.get(key) or {})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False))
        raise WiringError(f"invalid custom resource properties: {problems}") from None


def _wire(numbers: NumberDirectory, properties: WiringProperties) -> dict[str, Any]:
    number = numbers.find(properties.phone_number)
    if number is None:
        raise WiringError(
            f"{mask_phone(properties.phone_number)} is not a phone number of this Twilio account "
            "(listed in a receptionist profile's numbers): buy or port it in the Twilio console first"
        )
    if number.trunk_sid:
        raise WiringError(
            f"{mask_phone(properties.phone_number)} belongs to Elastic SIP trunk {number.trunk_sid}, which overrides "
            "its voice URL; remove it from the trunk in the Twilio console first"
        )
    physical_id = encode_physical_id(number.sid, number.config)  # before changing anything: fails cleanly if too long
    numbers.update(number.sid, properties.target)
    logger.info("wired %s (%s) to %s", mask_phone(properties.phone_number), number.sid, properties.voice_url)
    return {"PhysicalResourceId": physical_id, "Data": {"PhoneNumberSid": number.sid}}


def _rewire(numbers: NumberDirectory, event: Mapping[str, Any]) -> dict[str, Any]:
    properties = _properties(event)
    old = _properties(event, "OldResourceProperties")
    remembered = decode_physical_id(str(event.get("PhysicalResourceId", "")))
    if remembered is None or old.phone_number != properties.phone_number:
        # Another number (or nothing remembered): wire it under a new ID; CloudFormation deletes the old ID next,
        # which restores the old number.
        return _wire(numbers, properties)
    sid, _previous = remembered
    numbers.update(sid, properties.target)
    logger.info("re-pointed %s (%s) to %s", mask_phone(properties.phone_number), sid, properties.voice_url)
    return {"PhysicalResourceId": event["PhysicalResourceId"], "Data": {"PhoneNumberSid": sid}}


def _restore(numbers: NumberDirectory, event: Mapping[str, Any]) -> dict[str, Any]:
    physical_id = str(event.get("PhysicalResourceId", ""))
    remembered = decode_physical_id(physical_id)
    if remembered is None:
        logger.info("nothing to restore for physical ID %r", physical_id)
        return {"PhysicalResourceId": physical_id}
    sid, previous = remembered
    current = numbers.get(sid)
    if current is None:
        logger.info("number %s is no longer in the account: nothing to restore", sid)
        return {"PhysicalResourceId": physical_id}
    ours = _properties(event).target
    restored = current.config
    for group in RESTORE_GROUPS:
        head = group[0]
        if getattr(current.config, head) == getattr(ours, head):
            restored = replace(restored, **{name: getattr(previous, name) for name in group})
        else:
            logger.info("%s of %s was changed by someone else since: left as it is", head, sid)
    if restored != current.config:
        numbers.update(sid, restored)
    logger.info("restored %s (%s)", mask_phone(current.phone_number), sid)
    return {"PhysicalResourceId": physical_id}


def handle(event: Mapping[str, Any], numbers: NumberDirectory) -> dict[str, Any]:
    """The Provider framework's onEvent contract: returns PhysicalResourceId (+ Data); raising fails the event."""
    request_type = event.get("RequestType")
    try:
        if request_type == "Create":
            return _wire(numbers, _properties(event))
        if request_type == "Update":
            return _rewire(numbers, event)
        if request_type == "Delete":
            return _restore(numbers, event)
    except TwilioRestException as error:
        if error.status == _HTTP_UNAUTHORIZED:
            raise WiringError(
                "Twilio refused the credentials in the TwilioAccountSid/TwilioAuthToken secrets (HTTP 401): fill them "
                "with the commands in infra/DEPLOY.md and deploy again"
            ) from None
        raise WiringError(f"Twilio answered HTTP {error.status} (code {error.code}): {error.msg}") from None
    raise WiringError(f"unknown RequestType {request_type!r}")


# ---- the Lambda entry point ---------------------------------------------------------------------------------------
class TwilioCredentials(EnvSettings):
    account_sid: SecretStr = Field(alias="TWILIO_ACCOUNT_SID", description="Twilio account SID (AC + 32 hex)")
    auth_token: SecretStr = Field(alias="TWILIO_AUTH_TOKEN", min_length=8, description="Twilio auth token")

    @field_validator("account_sid")
    @classmethod
    def _account_sid_shape(cls, value: SecretStr) -> SecretStr:
        if not _ACCOUNT_SID.match(value.get_secret_value()):
            raise ValueError(
                "must be AC followed by 32 hex digits: fill the secret first, deploying with -c wireNumbers=false "
                "until it is filled (infra/DEPLOY.md)"
            )
        return value


def twilio_directory(credentials: TwilioCredentials) -> TwilioNumberDirectory:
    client = Client(
        credentials.account_sid.get_secret_value(),
        credentials.auth_token.get_secret_value(),
        http_client=TwilioHttpClient(timeout=TWILIO_TIMEOUT_SECONDS),
    )
    return TwilioNumberDirectory(client)


def on_event(event: Mapping[str, Any], _context: object) -> dict[str, Any]:
    logger.info("%s %s", event.get("RequestType"), event.get("LogicalResourceId"))
    return handle(event, twilio_directory(TwilioCredentials.from_env()))
