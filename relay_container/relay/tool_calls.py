"""The model's tool calls, run off the audio path: each in its own task with a timeout, its result given back to the
model (through the conversation memory, so a session that replaces the current one has it too), then a response
asked for once no other tool is still running."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from callcore.metric_names import RelayMetric
from callcore.models import ToolCall
from callcore.transcripts import dumps_compact
from relay.responses import ResponseState
from relay.tools import EndCallRequest, ToolContext, ToolOutcome, TransferRequest

if TYPE_CHECKING:
    from relay.call_session import CallSession

log = logging.getLogger(__name__)

BOOKING_TOOL = "book_appointment"  # its `name` argument is kept on the caller's profile


class ToolCalls:
    def __init__(self, call: CallSession) -> None:
        self._call = call
        self.in_flight = 0
        self.booking_name: str | None = None

    def on_arguments_done(self, event: dict[str, Any]) -> None:
        call = self._call
        call_id, name = event.get("call_id", ""), event.get("name", "")
        arguments = event.get("arguments", "{}")
        state = call.responses.state(event.get("response_id", ""))
        state.tool_calls += 1
        self.in_flight += 1
        call.memory.function_call(call_id, name, arguments, call.link.generation)
        call.spawn(self._run(call_id, name, arguments, state), f"tool-{name}")

    async def _run(self, call_id: str, name: str, arguments: str, response: ResponseState) -> None:
        """Run one tool and give the model its result. Whatever fails here (the registry already turns a tool's own
        errors into results), the model still gets an error result and is asked to go on, and the in-flight count
        always drops: otherwise the caller would wait in dead air for an answer that never comes."""
        call = self._call
        action: TransferRequest | EndCallRequest | None = None
        try:
            started = time.monotonic()
            try:
                outcome = await self._call_tool(name, arguments)
                output, ok, action = dumps_compact(outcome.output), outcome.ok, outcome.action
            except Exception as error:
                log.error("tool %s failed outside the registry: %s", name, type(error).__name__)
                output = dumps_compact(
                    {"error": f"The {name} tool failed unexpectedly. Apologise briefly and offer to help another way."}
                )
                ok = False
            self._note(call_id, name, arguments, output, ok=ok, duration_s=time.monotonic() - started)
            call.memory.function_output(call_id, output)
            call.responses.expect_answer()
            await call.link.sync()
        finally:
            self.in_flight -= 1
            call.limits.activity()
        if action is not None:
            call.hand_off.begin(action, response)
        elif self.in_flight == 0:
            await call.responses.request()

    async def _call_tool(self, name: str, arguments: str) -> ToolOutcome:
        call = self._call
        ctx = ToolContext(
            call_sid=call.call_sid,
            caller_number=call.caller_number,
            store=call.deps.store,
            settings=call.deps.settings,
            http=call.deps.http,
            line=call.line,
            quota=call.booking_quota,
        )
        try:
            # The registry applies the tool timeout itself; this outer bound only guards against a tool that
            # ignores cancellation.
            async with asyncio.timeout(call.deps.settings.tool_timeout_seconds + 2.0):
                return await call.line_tools.run(name, arguments, ctx)
        except TimeoutError:
            return ToolOutcome(output={"error": f"{name} did not answer in time"}, ok=False)

    def _note(self, call_id: str, name: str, arguments: str, output: str, *, ok: bool, duration_s: float) -> None:
        """Metrics and the transcript's record of a tool call; a failure here never keeps the result from the model."""
        call = self._call
        try:
            duration = round(duration_s * 1000)
            call.deps.metrics.record(RelayMetric.TOOL_LATENCY, duration, "Milliseconds")
            if not ok:
                call.deps.metrics.record(RelayMetric.TOOL_ERRORS, 1, "Count")
            call.recorder.tool_call(
                ToolCall(call_id=call_id, name=name, arguments=arguments, result=output, ok=ok, duration_ms=duration)
            )
            if ok and name == BOOKING_TOOL:
                with contextlib.suppress(ValueError, AttributeError):
                    booked = json.loads(arguments).get("name")
                    if isinstance(booked, str) and booked.strip():
                        self.booking_name = booked
        except Exception:
            log.exception("could not record tool call %s", name)
