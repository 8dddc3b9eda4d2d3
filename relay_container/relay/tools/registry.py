"""The tools of a call, by name: their definitions for `session.update`, and `run`, which never raises.

Whatever goes wrong (unknown tool, arguments that are not JSON or break the schema, a slow backend, a bug), the
model gets a short `{"error": ...}` it can put into words, so the caller never waits in silence for a tool.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from relay.line import LineSettings
from relay.tools.base import Tool, ToolContext, ToolError, ToolOutcome, error_outcome
from relay.tools.booking import BookAppointment, BookingRules, CheckAvailability
from relay.tools.booking_backends import BookingBackend, BusinessApiBookings, LocalBookingStore
from relay.tools.call_tools import EndCall, TransferToHuman
from relay.tools.credentials import CredentialsHeader, SecretValues
from relay.tools.hours import GetBusinessHours
from relay.tools.schedule import SLOT_MINUTES, OpeningSchedule

if TYPE_CHECKING:
    from pydantic import BaseModel

    from relay.settings import RelaySettings

logger = logging.getLogger(__name__)

MAX_ARGUMENTS_CHARS = 16_000  # the model's arguments for these tools are a few hundred characters at most
_MAX_PROBLEMS = 5


def _describe_validation(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False, include_input=False)[:_MAX_PROBLEMS]:
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


class ToolRegistry:
    def __init__(self, tools: list[Tool[Any]]) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools named {tool.name!r}")
            self._tools[tool.name] = tool

    @classmethod
    def default(cls, settings: RelaySettings) -> ToolRegistry:
        """The product's tools on the environment's line. Opening hours are parsed here, once per process."""
        return cls.for_line(LineSettings.from_environment(settings), SecretValues())

    @classmethod
    def for_line(cls, line: LineSettings, secrets: SecretValues) -> ToolRegistry:
        """The tools a line enables, on its hours, holidays, slot length, party size and business API."""
        booking = line.booking
        schedule = OpeningSchedule(
            line.weekly_hours,
            line.timezone,
            holidays=line.holidays,
            slot_minutes=booking.slot_minutes if booking else SLOT_MINUTES,
        )
        api = line.business_api
        backend: BookingBackend = (
            BusinessApiBookings(
                api.base_url,
                CredentialsHeader(api.credentials_secret, api.header, secrets) if api.credentials_secret else None,
            )
            if api
            else LocalBookingStore(schedule)
        )
        rules = BookingRules(schedule, max_party_size=booking.max_party_size if booking else None)
        tools: list[Tool[Any]] = [
            GetBusinessHours(schedule),
            CheckAvailability(rules, backend),
            BookAppointment(rules, backend),
            TransferToHuman(),
            EndCall(),
        ]
        return cls([tool for tool in tools if tool.name in line.tools])

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def session_tools(self) -> list[dict[str, Any]]:
        """The GA `tools` list for `session.update`."""
        return [tool.definition() for tool in self._tools.values()]

    async def run(self, name: str, arguments_json: str, ctx: ToolContext) -> ToolOutcome:
        tool = self._tools.get(name)
        if tool is None:
            logger.warning("model called unknown tool %r on call %s", name[:64], ctx.call_sid)
            return error_outcome(f"There is no tool named {name!r}. Available tools: {', '.join(self._tools)}.")
        arguments = self._parse_arguments(tool, arguments_json)
        if isinstance(arguments, ToolOutcome):
            logger.info("tool %s got invalid arguments on call %s", name, ctx.call_sid)
            return arguments
        try:
            async with asyncio.timeout(ctx.settings.tool_timeout_seconds):
                return await tool.run(arguments, ctx)
        except TimeoutError:
            logger.warning(
                "tool %s timed out after %ss on call %s", name, ctx.settings.tool_timeout_seconds, ctx.call_sid
            )
            return error_outcome(
                tool.timeout_message
                or f"The {name} tool timed out. Apologise briefly and offer to try again or to help another way."
            )
        except ToolError as error:
            return error_outcome(error.message)
        except Exception as error:
            # Type only: messages can carry the caller's details, and a stack per call would drown the log.
            logger.error("tool %s failed on call %s: %s", name, ctx.call_sid, type(error).__name__)
            return error_outcome(
                f"The {name} tool failed unexpectedly. Apologise briefly and offer to help another way."
            )

    @staticmethod
    def _parse_arguments(tool: Tool[Any], arguments_json: str) -> BaseModel | ToolOutcome:
        if len(arguments_json) > MAX_ARGUMENTS_CHARS:
            return error_outcome(f"The arguments for {tool.name} are too long.")
        try:
            raw = json.loads(arguments_json) if arguments_json.strip() else {}
        except json.JSONDecodeError as error:
            return error_outcome(f"The arguments for {tool.name} are not valid JSON ({error.msg}). Call it again.")
        if not isinstance(raw, dict):
            return error_outcome(f"The arguments for {tool.name} must be a JSON object. Call it again.")
        try:
            arguments: BaseModel = tool.arguments.model_validate(raw)
        except ValidationError as error:
            return error_outcome(
                f"Invalid arguments for {tool.name}: {_describe_validation(error)}. Fix them and call it again."
            )
        return arguments
