"""How a call leaves the agent: a transfer or a hang-up once the agent's last words were heard, the relay's own
hang-ups (time limit, silence), and the fail-over when the model is gone for good.

Two ways out exist, and each exit uses exactly one of them:
* the call-control API (transfer: Twilio redirects the live call to the human line with a whisper; hang-up: Twilio
  completes it). Twilio then stops the stream itself;
* closing the stream: Twilio runs the TwiML after `<Connect>`, which dials the human line (or apologises and hangs up
  without one). That is the fail-over: it needs nothing that can fail, and the transfer endpoint is never also asked,
  so the human line cannot ring twice. An agent transfer already on its way when the model fails is waited for
  instead: it redirects the call itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from callcore.metric_names import RelayMetric
from callcore.models import CallOutcome
from relay.call_control import CallControlError
from relay.responses import ResponseState
from relay.tools import EndCallRequest, TransferRequest
from relay.twilio_stream import CloseCode

if TYPE_CHECKING:
    from relay.call_session import CallSession

log = logging.getLogger(__name__)

HANDOFF_WAIT_SECONDS = 20.0  # bound on waiting for the goodbye / hand-off sentence to be heard
# A pending end_call hang-up is cancelled when the caller speaks over the goodbye; the model is told so.
GOODBYE_INTERRUPTED = (
    "The caller started speaking during your goodbye, so the call was not ended. Listen to them and continue the "
    "conversation; call end_call again only after a new goodbye."
)
TRANSFER_FAILED = "The transfer could not be completed. Apologise briefly and offer to take a message."
HANGUP_FAILED = "The call could not be ended automatically; the caller may hang up."

Action = TransferRequest | EndCallRequest


class HandOff:
    def __init__(self, call: CallSession) -> None:
        self._call = call
        self.started = False  # one hand-off at a time
        self.handed_over = False  # call control transferred or completed the call: Twilio stops the stream itself
        self._committed = False  # the request is on its way: too late to cancel
        self._task: asyncio.Task[None] | None = None
        self._action: Action | None = None
        self._outcome = CallOutcome.COMPLETED_BY_AGENT  # of an EndCallRequest: the relay's own hang-ups differ

    def begin(
        self,
        action: Action,
        response: ResponseState | None,
        *,
        outcome: CallOutcome = CallOutcome.COMPLETED_BY_AGENT,
        wait_for_words: bool = True,
    ) -> None:
        """Carry out `action` once the agent's words were heard: those of `response`, or (None) of whatever it is
        saying now; at once without `wait_for_words`."""
        if self.started:
            return  # the hand-off under way stays the one to carry out (or to cancel)
        self.started, self._committed = True, False
        self._action, self._outcome = action, outcome
        self._task = self._call.spawn(self._run(action, response, wait_for_words), "hand-off")

    def outcome_under_way(self) -> CallOutcome | None:
        """The outcome of a transfer or hang-up whose request is on its way to call control: when the stream ends
        meanwhile, Twilio has carried it out before its answer arrived (it stops the stream as it acts), so the end
        is the agent's doing, not the caller hanging up."""
        if not self._committed or self._task is None or self._task.done() or self._action is None:
            return None
        return CallOutcome.TRANSFERRED if isinstance(self._action, TransferRequest) else self._outcome

    async def cancel_goodbye_if_pending(self) -> None:
        """The caller speaks while a goodbye is still to be heard: do not hang up on them."""
        task, action = self._task, self._action
        if task is None or task.done() or self._committed or not isinstance(action, EndCallRequest):
            return
        task.cancel()  # synchronous: the hand-off cannot reach its hang-up after this
        self._task = self._action = None
        self.started = False
        log.info("the caller spoke over the goodbye; the call continues")
        # The server's turn detection answers the caller's new turn; this note makes that answer carry on the call.
        await self._call.add_note(GOODBYE_INTERRUPTED)

    async def _run(self, action: Action, response: ResponseState | None, wait_for_words: bool) -> None:
        call = self._call
        if wait_for_words:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANDOFF_WAIT_SECONDS):
                    await self._words_heard(response)
        self._committed = True
        transfer = isinstance(action, TransferRequest)
        control = call.deps.call_control
        if control is None:
            log.error("no CALL_CONTROL_URL; closing the stream instead")
            await call.end(CallOutcome.TRANSFERRED if transfer else self._outcome)
            return
        try:
            if isinstance(action, TransferRequest):
                await control.transfer(call.call_sid, reason=action.reason, summary=action.summary)
                self.handed_over = True
                call.deps.metrics.record(RelayMetric.TRANSFERS, 1, "Count")
                call.settle_outcome(CallOutcome.TRANSFERRED)
            else:
                await control.hangup(call.call_sid, reason=action.reason)
                self.handed_over = True
                await call.end(self._outcome)  # completed over REST: nothing after <Connect> runs any more
        except CallControlError as error:
            log.error("call control failed: %s", error)
            self.started = self._committed = False
            await call.add_note(TRANSFER_FAILED if transfer else HANGUP_FAILED)
            if transfer:
                await call.responses.request()

    async def _words_heard(self, response: ResponseState | None) -> None:
        call = self._call
        if response is None:
            await call.responses.idle.wait()
        else:
            await response.done.wait()
            if not response.had_audio:
                # The model called the tool before saying anything: the tool's output (already sent) tells it what
                # to say, so let it speak, then wait for those words to be heard.
                await call.responses.request()
                await call.responses.idle.wait()
        await call.playback.wait_drained()

    async def end_through_hangup(self, reason: str, outcome: CallOutcome) -> None:
        """The relay ends the call (time limit, silence) the way the agent's hang-up does: Twilio completes it, so
        nothing after `<Connect>` runs. Only if that fails does closing the stream remain (the TwiML fallback)."""
        call = self._call
        call.settle_outcome(outcome)
        control = call.deps.call_control
        if control is not None:
            try:
                await control.hangup(call.call_sid, reason=reason)
            except CallControlError as error:
                log.error("hang-up (%s) failed: %s; closing the stream", reason, error)
        await call.end(outcome)

    async def fail_over(self, why: str, *, wait_for_hand_off: float | None = None) -> None:
        """The agent is gone for good (or the process stops): close the stream and let the TwiML fallback take the
        caller to the human line. A transfer or hang-up already on its way to call control is waited for instead
        (bounded by `wait_for_hand_off`): closing now would let Twilio dial the human line as well."""
        call = self._call
        task = self._task
        if task is not None and not task.done() and self._committed:
            kind = "transfer" if isinstance(self._action, TransferRequest) else "hang-up"
            log.info("the agent's %s is under way: it ends the agent's part of the call", kind)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_for_hand_off):
                    await asyncio.shield(task)
        if self.handed_over:
            return  # transferred or completed over REST: Twilio stops the stream itself
        human = bool(call.line.human_transfer_number)
        fallback = "dials the human line" if human else "apologises and hangs up"
        log.error("agent unavailable (%s): closing the stream; Twilio's fallback %s", why, fallback)
        call.recorder.error = f"agent unavailable: {why}"
        if human:
            call.deps.metrics.record(RelayMetric.TRANSFERS, 1, "Count")
        await call.end(
            CallOutcome.TRANSFERRED if human else CallOutcome.ERROR,
            code=CloseCode.GOING_AWAY,
            reason="agent unavailable",
        )
