"""The call's watchdogs: its maximum length, silence on both sides, and a media stream gone quiet (a dead line).

* MAX_CALL_SECONDS: MAX_CALL_WARNING_SECONDS before it the agent is told to wrap up; at it the call ends through the
  hang-up endpoint (outcome max_duration).
* SILENCE_TIMEOUT_SECONDS: when nobody has spoken that long (no caller speech, nothing of the agent playing, no
  response or tool under way) the agent asks once whether the caller is still there; silent as long again, it says
  goodbye and the call ends through the hang-up endpoint (outcome silence). The caller speaking starts it over.
* STREAM_IDLE_TIMEOUT_SECONDS: Twilio sends a media frame every 20 ms for as long as the call lasts, so a stream that
  sends nothing that long has a dead peer (a half-open TCP connection never closes by itself). The twilio loop marks
  each frame with one attribute store (`CallSession.frame_seen`); this checks it four times per timeout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from callcore.metric_names import RelayMetric
from callcore.models import CallOutcome
from relay.tools import EndCallRequest
from relay.twilio_stream import CloseCode

if TYPE_CHECKING:
    from relay.call_session import CallSession

log = logging.getLogger(__name__)

WRAP_UP = "The call is about to reach its time limit. Wrap up politely in one or two sentences and say goodbye."
CHECK_IN = (
    "The caller has said nothing for a while. Ask briefly and kindly whether they are still there, in one short "
    "sentence, and nothing else."
)
SILENCE_GOODBYE = (
    "The caller has still said nothing. Say in one short sentence that you are ending the call since you cannot "
    "hear them, and that they are welcome to call back. Then stop."
)
IDLE_CHECKS = 4  # quarter timeouts without a frame, in a row, before the line counts as dead


class CallLimits:
    def __init__(self, call: CallSession) -> None:
        self._call = call
        self._activity = asyncio.Event()
        self._caller_spoke = False
        self.caller_speaking = False

    # ---- what the watchdogs hear about -----------------------------------------------------------------------------

    def activity(self) -> None:
        """Something happened that may end a silence (a turn, a tool result, a keypress, a new model session)."""
        self._activity.set()

    def speech_started(self) -> None:
        self.caller_speaking = self._caller_spoke = True
        self._activity.set()

    def speech_stopped(self) -> None:
        self.caller_speaking = False
        self._activity.set()

    # ---- maximum call length ---------------------------------------------------------------------------------------

    async def max_call_length(self) -> None:
        call = self._call
        limit = call.line.max_call_seconds
        # A line's own limit may be short: the wrap-up then starts half-way through at the latest.
        warn_after = limit - min(call.deps.settings.max_call_warning_seconds, limit / 2)
        await asyncio.sleep(warn_after)
        log.info("MAX_CALL_SECONDS is near: the agent is told to wrap up")
        await call.add_note(WRAP_UP)
        await call.responses.request()
        await asyncio.sleep(limit - warn_after)
        log.info("the call reached MAX_CALL_SECONDS")
        await call.hand_off.end_through_hangup("max_call_length", CallOutcome.MAX_DURATION)

    # ---- silence ---------------------------------------------------------------------------------------------------

    def _busy(self) -> bool:
        call = self._call
        return (
            call.responses.active
            or call.playback.has_pending
            or call.tools.in_flight > 0
            or self.caller_speaking
            or call.hand_off.started
            or not call.link.ready.is_set()
        )

    async def _until_quiet(self) -> None:
        call = self._call
        while True:
            if call.responses.active:
                await call.responses.idle.wait()
            elif call.playback.has_pending:
                await call.playback.wait_drained()
            elif self._busy():
                self._activity.clear()
                await self._activity.wait()
            else:
                return

    async def silence(self) -> None:
        call, timeout = self._call, self._call.line.silence_timeout_seconds
        checked_in = False
        while True:
            await self._until_quiet()
            self._activity.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._activity.wait()
            except TimeoutError:
                pass
            if self._caller_spoke:
                checked_in = self._caller_spoke = False
            if self._activity.is_set() or self._busy():
                continue
            if not checked_in:
                checked_in = True
                log.info("silence for %g s: the agent checks in", timeout)
                await call.responses.request(CHECK_IN)
                continue
            log.info("silence for %g s after the check-in: the agent says goodbye", timeout)
            call.deps.metrics.record(RelayMetric.SILENCE_ENDS, 1, "Count")
            await call.responses.request(SILENCE_GOODBYE)
            call.hand_off.begin(EndCallRequest(reason="silence"), None, outcome=CallOutcome.SILENCE)
            # Watching on: a caller who speaks over the goodbye cancels the hang-up and the call goes on.
            checked_in = False

    # ---- a dead line -----------------------------------------------------------------------------------------------

    async def stream_idle(self) -> None:
        call, timeout = self._call, self._call.deps.settings.stream_idle_timeout_seconds
        quiet = 0
        while quiet < IDLE_CHECKS:
            call.frame_seen = False
            await asyncio.sleep(timeout / IDLE_CHECKS)
            quiet = 0 if call.frame_seen else quiet + 1
        log.warning("no frame from Twilio for %g s: the line is dead; ending the call", timeout)
        call.recorder.error = f"the media stream sent nothing for {timeout:g} s (a dead line)"
        await call.end(CallOutcome.ERROR, code=CloseCode.GOING_AWAY, reason="stream idle")
