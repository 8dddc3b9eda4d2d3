"""What every tool shares: the request/outcome types the call session acts on, the per-call context, and the
base class that ties a tool's pydantic arguments model to the function definition the model sees."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from callcore.models import utc_now

if TYPE_CHECKING:
    import aiohttp

    from callcore.store import CallStore
    from relay.line import LineSettings
    from relay.settings import RelaySettings
    from relay.tools.booking_quota import BookingQuota


@dataclass(frozen=True)
class TransferRequest:
    """The model asked for a human: the session lets the hand-off sentence play, then calls the transfer endpoint."""

    reason: str
    summary: str


@dataclass(frozen=True)
class EndCallRequest:
    """The model is saying goodbye: the session waits until the goodbye has been heard, then hangs up."""

    reason: str


@dataclass
class ToolOutcome:
    output: dict[str, Any]  # JSON-able, sent to the model as function_call_output
    ok: bool = True  # False = the tool failed (counts as a ToolErrors metric); the output still explains it
    action: TransferRequest | EndCallRequest | None = None  # carried out by the session on the audio path


@dataclass
class ToolContext:
    call_sid: str
    caller_number: str  # personal data: never logged unmasked, never echoed to the model by a tool
    store: CallStore
    settings: RelaySettings
    http: aiohttp.ClientSession
    clock: Callable[[], datetime] = field(default=utc_now)  # aware UTC "now"; tests pin it
    line: LineSettings | None = None  # the call's line; None = the environment's (RelaySettings)
    quota: BookingQuota | None = None  # the line's caps on bookings; None = no caps

    @property
    def human_transfer_number(self) -> str | None:
        return self.line.human_transfer_number if self.line is not None else self.settings.human_transfer_number


class ToolError(Exception):
    """A failure the model should put into words for the caller. The message is written for the model."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_outcome(message: str) -> ToolOutcome:
    return ToolOutcome(output={"error": message}, ok=False)


ArgsT = TypeVar("ArgsT", bound=BaseModel)


class Tool(ABC, Generic[ArgsT]):
    """One function the model can call. Subclasses set `name`, `description`, `arguments` and implement `run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    arguments: type[ArgsT]
    # Said instead of the generic timeout text when a timeout leaves something the model must handle with care.
    timeout_message: ClassVar[str | None] = None

    @abstractmethod
    async def run(self, args: ArgsT, ctx: ToolContext) -> ToolOutcome:
        """Do the work. Raise ToolError for a failure the caller should hear about."""

    def definition(self) -> dict[str, Any]:
        """The GA function tool definition for `session.update`'s `tools` list."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": model_facing_schema(self.arguments),
        }


@functools.cache
def model_facing_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of an arguments model, trimmed to what helps the model: no pydantic titles, optional fields
    as their plain type (absent rather than null), no `default: null`. Built once per model: every call's
    `session.update` carries it, and pydantic's schema generation showed in the relay's profile at admission. The
    dict is shared: read it, never change it."""
    return _trim(model.model_json_schema())


def _trim(schema: dict[str, Any]) -> dict[str, Any]:
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        non_null = [s for s in any_of if s != {"type": "null"}]
        if len(non_null) == 1 and len(non_null) < len(any_of):
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            merged.update(non_null[0])
            schema = merged
    trimmed: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" or (key == "default" and value is None):
            continue
        if key == "properties" and isinstance(value, dict):
            trimmed[key] = {name: _trim(prop) for name, prop in value.items()}
        elif isinstance(value, dict):
            trimmed[key] = _trim(value)
        elif isinstance(value, list):
            trimmed[key] = [_trim(v) if isinstance(v, dict) else v for v in value]
        else:
            trimmed[key] = value
    return trimmed
