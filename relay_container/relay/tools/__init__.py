"""The agent's tools: business hours, availability and booking, transfer to a human, ending the call.

The call session builds one `ToolRegistry.default(settings)` per process, puts `session_tools()` in its
`session.update`, and on `response.function_call_arguments.done` awaits `run(name, arguments, ctx)` off the audio
path. `run` never raises; its `ToolOutcome.action` (a transfer or a hang-up) is for the session to carry out.
"""

from relay.tools.base import (
    EndCallRequest,
    Tool,
    ToolContext,
    ToolError,
    ToolOutcome,
    TransferRequest,
)
from relay.tools.booking_backends import BusinessApiBookings, LocalBookingStore
from relay.tools.registry import ToolRegistry
from relay.tools.schedule import OpeningSchedule

__all__ = [
    "BusinessApiBookings",
    "EndCallRequest",
    "LocalBookingStore",
    "OpeningSchedule",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutcome",
    "ToolRegistry",
    "TransferRequest",
]
