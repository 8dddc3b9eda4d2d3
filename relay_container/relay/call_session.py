"""One admitted call: the bridge between Twilio's media stream and one model session.

Audio path (kept minimal, no parsing beyond `json.loads`, no re-encoding):
  caller  -> Twilio `media` payload          -> `input_audio_buffer.append` (same base64 string)
  model   -> `response.output_audio.delta`   -> Twilio `media` (same base64 string) + a `mark` after each chunk

Everything slow (tools, call control, store writes) runs in tasks this session owns; teardown cancels them, closes
both sockets at once (each within `close_timeout_seconds`), waits for the tasks no longer than that, and writes the
records. A task that ignores cancellation therefore cannot keep a model session billing or a caller's line open.

Seams for resilience work: the model connection is `self._model` (replaceable), timers live in `_call_timer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from callcore.masking import mask_phone
from callcore.metric_names import RelayMetric
from callcore.models import CallOutcome, ToolCall, utc_now
from callcore.store import CallStore
from callcore.store.callers import CallerDirectory
from callcore.transcripts import TranscriptArchive, dumps_compact
from relay import realtime
from relay.admission import Admitted
from relay.call_control import CallControlClient, CallControlError
from relay.greeting import RenderedGreeting
from relay.metrics import RelayMetrics
from relay.model_pool import ModelSessionPool
from relay.playback import PlaybackTracker
from relay.prompt import FIRST_TIME, CallerHistory, render_instructions
from relay.realtime import RealtimeConnectError, RealtimeConnection
from relay.records import CallRecorder, cut_text, usage_from_response_done
from relay.settings import RelaySettings
from relay.tools import EndCallRequest, ToolContext, ToolOutcome, ToolRegistry, TransferRequest
from relay.twilio_stream import (
    CloseCode,
    Dtmf,
    FrameRejected,
    MarkEcho,
    Media,
    Start,
    Stop,
    clear_frame,
    mark_frame,
    media_frame,
    parse_frame,
)

log = logging.getLogger(__name__)

GREETING_ITEM = "greeting"
MAX_BUFFERED_CALLER_FRAMES = 500  # 10 s of 20 ms frames while the model session gets ready
HANDOFF_WAIT_SECONDS = 20.0  # bound on waiting for the goodbye / hand-off sentence to be heard
# The one deliberate exception to closing Twilio's side within CLOSE_TIMEOUT_SECONDS of the model going away: the
# stream must stay open while the fail-over transfer is requested, because closing a <Connect><Stream> ends the call
# (no TwiML follows it) and the caller would be dropped instead of handed to a human. The transfer endpoint answers in
# well under a second when warm and about 1.5 s on a Lambda cold start; past 2 s the caller has sat in silence long
# enough, and Twilio's side is closed as soon as the attempt ends, whatever its result.
FAILOVER_TRANSFER_SECONDS = 2.0
# A pending end_call hang-up is cancelled when the caller speaks over the goodbye; the model is told so.
GOODBYE_INTERRUPTED = (
    "The caller started speaking during your goodbye, so the call was not ended. Listen to them and continue the "
    "conversation; call end_call again only after a new goodbye."
)
# Less audio than this left to play is not worth a clear/truncate (and is within the mark/clock disagreement).
BARGE_IN_MIN_REMAINING_MS = 20
# While the cached greeting plays, the model's instructions may wait this long for the caller's history, so they go
# out complete in one session.update; a slower read is sent as a second update when it arrives.
HISTORY_WAIT_SECONDS = 0.25
BOOKING_TOOL = "book_appointment"  # its `name` argument is kept on the caller's profile
RECOVERABLE_MODEL_ERRORS = frozenset({"conversation_already_has_active_response", "response_cancel_not_active"})


@dataclass(frozen=True)
class CallDependencies:
    """What a call needs from the process: built once by the app, shared by every call."""

    settings: RelaySettings
    store: CallStore
    archive: TranscriptArchive
    pool: ModelSessionPool
    tools: ToolRegistry
    metrics: RelayMetrics
    http: aiohttp.ClientSession
    call_control: CallControlClient | None


@dataclass
class _AgentUtterance:
    """An assistant audio item on its way to the caller's ear."""

    started_at: datetime
    text: str = ""
    text_final: bool = False
    generation_done: bool = False
    interrupted: bool = False
    heard_ms: int | None = None
    recorded: bool = False


@dataclass
class _ResponseState:
    had_audio: bool = False
    tool_calls: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class TwilioSide:
    """The Twilio socket: guarded sends, bounded close."""

    def __init__(self, ws: web.WebSocketResponse, stream_sid: str, *, close_timeout: float) -> None:
        self.ws = ws
        self.stream_sid = stream_sid
        self._close_timeout = close_timeout

    async def send(self, frame: str) -> bool:
        if self.ws.closed:
            return False
        try:
            await self.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            async with asyncio.timeout(self._close_timeout):
                await self.ws.close(code=code, message=reason.encode()[:120])


class CallSession:
    def __init__(
        self,
        admitted: Admitted,
        twilio: TwilioSide,
        deps: CallDependencies,
        *,
        instructions: str,
        greeting_text: str,
        greeting: RenderedGreeting | None,
        started_at: float,
    ) -> None:
        self.call_sid = admitted.start.call_sid
        self._record = admitted.record
        self._twilio = twilio
        self._deps = deps
        self._settings = deps.settings
        self._instructions = instructions
        self._greeting_text = greeting_text
        self._greeting = greeting
        self._started_at = started_at
        self.playback = PlaybackTracker()
        self.recorder = CallRecorder(
            admitted.record,
            store=deps.store,
            archive=deps.archive,
            prices=self._settings.prices,
            turn_retention_days=self._settings.turn_retention_days,
            mask_caller_digits=self._settings.mask_caller_digits,
        )
        self._model: RealtimeConnection | None = None
        self._model_ready = asyncio.Event()
        self._caller_backlog: deque[str] = deque(maxlen=MAX_BUFFERED_CALLER_FRAMES)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ending = False
        self._outcome: CallOutcome | None = None
        self._utterances: dict[str, _AgentUtterance] = {}
        self._cut_items: set[str] = set()
        self._responses: dict[str, _ResponseState] = {}
        self._response_active = False
        self._response_idle = asyncio.Event()
        self._response_idle.set()
        self._response_wanted = False
        self._tools_in_flight = 0
        self._speech_stopped_at: float | None = None
        self._caller_speech_started: datetime | None = None
        self._greeting_seed: str | None = None
        self._greeting_seeded = False
        self._greeting_live_pending = greeting is None  # cold cache: the model greets as soon as it is ready
        # Whether the caller is known: read while the greeting plays, written once at the end of the call.
        self._callers = CallerDirectory(
            deps.store.table_name,
            hash_key=self._settings.caller_hash_key,
            retention_days=self._settings.caller_profile_retention_days,
        )
        self._history: CallerHistory = None
        self._history_task: asyncio.Task[Any] | None = None
        self._instructions_sent = False
        self._booking_name: str | None = None
        self._handoff_started = False
        self._handoff_task: asyncio.Task[Any] | None = None
        self._handoff_action: TransferRequest | EndCallRequest | None = None
        self._handoff_committed = False  # the transfer/hang-up request is on its way: too late to cancel
        # Items the relay added that the model has not answered yet (function outputs, system instructions): sent but
        # not yet confirmed by the server, or confirmed before the latest response.created (which then reads them).
        # The server's event order decides, so a response that crossed the relay's response.create on the wire is
        # known to have answered them.
        self._inputs_unconfirmed = 0
        self._input_unanswered = False

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def run(self) -> CallOutcome:
        log.info("call %s admitted (caller %s)", self.call_sid, mask_phone(self._record.caller_number))
        try:
            if self._greeting is not None:
                await self._play_cached_greeting(self._greeting)
            # After the greeting's audio is on its way: the lookup must never delay the first words.
            self._history_task = self._spawn(self._load_caller_history(), "caller-history")
            self._spawn(self._model_main(), "model")
            self._spawn(self._call_timer(), "call-timer")
            await self._twilio_loop()
        finally:
            await self._teardown()
        return self._outcome or CallOutcome.CALLER_HUNG_UP

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=f"{name}:{self.call_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: task %s failed", self.call_sid, task.get_name(), exc_info=task.exception())

    async def end(self, outcome: CallOutcome, *, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        """End the call from the relay's side: closing Twilio's socket ends the twilio loop, then teardown runs."""
        if self._outcome is None:
            self._outcome = outcome
        self._ending = True
        await self._twilio.close(code, reason)

    async def end_for_shutdown(self) -> None:
        """The process is stopping with this call still live (drain timed out): hand it to a human if possible."""
        await self._fail_over("the agent's server is restarting")

    async def _teardown(self) -> None:
        self._ending = True
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        close_timeout = self._settings.close_timeout_seconds
        # Both sockets close first and together: the model session bills until closed, and the caller must not sit
        # on an open line while the call's tasks wind down. Waiting for those tasks is bounded by the same timeout.
        model = self._model
        closes: list[Coroutine[Any, Any, Any]] = [self._twilio.close(CloseCode.NORMAL, "call ended")]
        if model is not None:
            closes.append(model.close(close_timeout))
        await asyncio.gather(*closes, self._wait_for_tasks(tasks, close_timeout), return_exceptions=True)
        if self._model is not None and self._model is not model:
            await self._model.close(close_timeout)  # acquired while the call ended: never leave it open
        self._record_open_utterances()
        outcome = self._outcome or CallOutcome.CALLER_HUNG_UP
        self._deps.metrics.record(RelayMetric.CALL_DURATION, round(time.monotonic() - self._started_at, 3), "Seconds")
        record = await self.recorder.finish(outcome)
        await self._count_caller_call(outcome)
        if record is not None and record.estimated_cost_usd is not None:
            self._deps.metrics.record(RelayMetric.CALL_COST, float(record.estimated_cost_usd), "None")
        log.info("call %s ended: %s", self.call_sid, outcome.value)

    async def _wait_for_tasks(self, tasks: list[asyncio.Task[Any]], timeout: float) -> None:  # noqa: ASYNC109
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=timeout)
        if stuck:
            names = ", ".join(sorted(task.get_name().split(":")[0] for task in stuck))
            log.error("call %s: %d task(s) ignored cancellation at teardown: %s", self.call_sid, len(stuck), names)

    # ---- the caller's history ----------------------------------------------------------------------------------

    async def _load_caller_history(self) -> None:
        number = self._record.caller_number
        if not self._callers.tracks(number) or not self._record.caller_id_verified:
            return  # a withheld or unattested number says nothing about who is calling: no history
        try:
            profile = await asyncio.to_thread(self._callers.get, number)
        except Exception as error:
            # The call goes on without it: the prompt then simply does not say whether the caller is known.
            log.warning("call %s: caller profile not read (%s)", self.call_sid, type(error).__name__)
            return
        self._history = profile if profile is not None else FIRST_TIME
        if self._instructions_sent and self._model is not None:
            # The model session was ready first: complete its instructions now.
            await self._model.send(realtime.instructions_update(self._current_instructions()))

    def _current_instructions(self) -> str:
        if self._history is None:
            return self._instructions
        return render_instructions(self._settings, self._record, greeting=self._greeting_text, history=self._history)

    async def _count_caller_call(self, outcome: CallOutcome) -> None:
        if not self._record.caller_id_verified:
            return  # whoever spoofs a number must not write into its owner's profile either
        try:
            await asyncio.to_thread(
                self._callers.record_call,
                self._record.caller_number,
                at=self._record.created_at,
                outcome=outcome,
                booking_name=self._booking_name,
            )
        except Exception as error:
            log.warning("call %s: caller profile not updated (%s)", self.call_sid, type(error).__name__)

    def _note_booking_name(self, arguments: str) -> None:
        with contextlib.suppress(ValueError, AttributeError):
            name = json.loads(arguments).get("name")
            if isinstance(name, str) and name.strip():
                self._booking_name = name

    # ---- Twilio -> relay ---------------------------------------------------------------------------------------

    async def _twilio_loop(self) -> None:
        ws = self._twilio.ws
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                try:
                    frame = parse_frame(message.data)
                except FrameRejected as rejected:
                    log.warning("call %s: frame refused (%s); closing %d", self.call_sid, rejected, rejected.code)
                    await self.end(CallOutcome.ERROR, code=rejected.code, reason=rejected.reason)
                    return
                if isinstance(frame, Media):
                    await self._on_caller_audio(frame.payload)
                elif isinstance(frame, MarkEcho):
                    self._on_mark_echo(frame.name)
                elif isinstance(frame, Stop):
                    log.info("call %s: Twilio stopped the stream", self.call_sid)
                    return
                elif isinstance(frame, Start):
                    log.warning("call %s: second start frame; closing", self.call_sid)
                    await self.end(CallOutcome.ERROR, code=CloseCode.POLICY, reason="duplicate start")
                    return
                elif isinstance(frame, Dtmf):
                    # Never the digit itself: callers key in card numbers and PINs.
                    log.info("call %s: a DTMF digit was ignored (voice only)", self.call_sid)
            elif message.type is aiohttp.WSMsgType.BINARY:
                log.warning("call %s: binary frame refused; closing 1003", self.call_sid)
                await self.end(CallOutcome.ERROR, code=CloseCode.UNSUPPORTED, reason="binary frames not supported")
                return
            elif message.type is aiohttp.WSMsgType.ERROR:
                error = ws.exception()
                if isinstance(error, aiohttp.WebSocketError):
                    # aiohttp refused the frame itself (oversized: 1009, or a protocol violation) and closed the
                    # socket: a bad frame, like the ones refused above, not a caller who hung up.
                    log.warning("call %s: frame refused (%s); closed %s", self.call_sid, error, ws.close_code)
                    self._outcome = self._outcome or CallOutcome.ERROR
                else:
                    log.warning("call %s: Twilio socket error (%s); closed %s", self.call_sid, error, ws.close_code)
                return

    async def _on_caller_audio(self, payload: str) -> None:
        model = self._model
        if model is None or not self._model_ready.is_set():
            self._caller_backlog.append(payload)
            return
        await model.send(realtime.append_audio(payload))

    def _on_mark_echo(self, name: str) -> None:
        if not self.playback.mark_echoed(name):
            return
        for item_id, utterance in self._utterances.items():
            if utterance.recorded or not utterance.generation_done or not utterance.text_final:
                continue
            heard = self.playback.heard_ms(item_id) or 0
            if heard >= self.playback.sent_ms(item_id):
                self._record_utterance(item_id, utterance, heard_ms=heard, interrupted=False)

    # ---- relay -> Twilio ---------------------------------------------------------------------------------------

    async def _send_audio(self, item_id: str, payload: str, size: int) -> None:
        if not await self._twilio.send(media_frame(self._twilio.stream_sid, payload)):
            return
        mark = self.playback.sent(item_id, size)
        await self._twilio.send(mark_frame(self._twilio.stream_sid, mark))

    async def _play_cached_greeting(self, greeting: RenderedGreeting) -> None:
        self._utterances[GREETING_ITEM] = _AgentUtterance(
            started_at=utc_now(), text=greeting.text, text_final=True, generation_done=True
        )
        for index, chunk in enumerate(greeting.chunks):
            await self._send_audio(GREETING_ITEM, chunk, realtime.decoded_length(chunk))
            if index == 0:
                self._greeting_latency()
        self._spawn(self._seed_greeting_when_heard(), "greeting-heard")

    def _greeting_latency(self) -> None:
        if self.recorder.greeting_ms is None:
            self.recorder.greeting_ms = round((time.monotonic() - self._started_at) * 1000)
            self._deps.metrics.record(RelayMetric.GREETING_LATENCY, self.recorder.greeting_ms, "Milliseconds")

    async def _seed_greeting_when_heard(self) -> None:
        await self.playback.wait_drained()
        utterance = self._utterances[GREETING_ITEM]
        if not utterance.recorded:
            heard = self.playback.heard_ms(GREETING_ITEM)
            self._record_utterance(GREETING_ITEM, utterance, heard_ms=heard, interrupted=False)
        await self._seed_greeting()

    async def _seed_greeting(self) -> None:
        """Tell the model what it already said (what the caller heard of the cached greeting), once."""
        if self._greeting_seeded or self._greeting_seed is None or not self._model_ready.is_set():
            return
        self._greeting_seeded = True
        if self._greeting_seed and self._model is not None:
            # At the root: the greeting came first, even when the caller's first turn was committed before this.
            await self._model.send(realtime.assistant_message(self._greeting_seed, previous_item_id="root"))

    # ---- the model ---------------------------------------------------------------------------------------------

    async def _model_main(self) -> None:
        try:
            model = await self._deps.pool.acquire()
        except RealtimeConnectError as error:
            log.error("call %s: no model session (%s)", self.call_sid, error)
            self._deps.metrics.record(RelayMetric.MODEL_ERRORS, 1, "Count")
            await self._fail_over("the agent could not start")
            return
        if self._ending:
            # The call ended while the session was being acquired (teardown may already have run).
            await model.close(self._settings.close_timeout_seconds)
            return
        self._model = model
        try:
            await self._bridge_model(model)
        except Exception:
            # A bug or an event the relay cannot handle: without this the task would die quietly, leaving the
            # caller on an open line that no one answers (and the model session billing until they hang up).
            log.exception("call %s: handling the model session failed", self.call_sid)
            self._deps.metrics.record(RelayMetric.MODEL_ERRORS, 1, "Count")
            await self._fail_over("the agent hit an internal error")
            return
        if not self._ending:
            log.error("call %s: model session closed unexpectedly (code %s)", self.call_sid, model.close_code)
            self._deps.metrics.record(RelayMetric.MODEL_ERRORS, 1, "Count")
            await self._fail_over("the agent's model session ended")

    async def _bridge_model(self, model: RealtimeConnection) -> None:
        """Configure the acquired session for this call, then handle its events until it closes."""
        history = self._history_task
        if self._greeting is not None and history is not None and not history.done():
            # The caller is listening to the cached greeting meanwhile: a short wait costs them nothing.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HISTORY_WAIT_SECONDS):
                    await asyncio.shield(history)
        self._instructions_sent = True  # from here a late caller history is sent as its own update
        await model.send(realtime.instructions_update(self._current_instructions()))
        while self._caller_backlog:
            await model.send(realtime.append_audio(self._caller_backlog.popleft()))
        self._model_ready.set()
        await self._seed_greeting()
        if self._greeting_live_pending:
            self._greeting_live_pending = False
            await self._request_response(f'Greet the caller now by saying: "{self._greeting_text}"')
        while (event := await model.receive()) is not None:
            await self._on_model_event(event)

    async def _fail_over(self, why: str) -> None:
        """The model is gone for good: hand the caller to a human if possible, else end; never leave dead air.

        Twilio's side is closed as soon as the transfer attempt ends, whatever happened to it (see
        FAILOVER_TRANSFER_SECONDS for why it stays open during the attempt)."""
        control = self._deps.call_control
        transferred = False
        try:
            if control is not None and self._settings.human_transfer_number and not self._ending:
                try:
                    async with asyncio.timeout(FAILOVER_TRANSFER_SECONDS):
                        await control.transfer(self.call_sid, reason="agent_unavailable", summary=why)
                except Exception as error:
                    # The call-control errors say what happened; anything else is named by its type only.
                    said = error if isinstance(error, CallControlError | TimeoutError) else type(error).__name__
                    log.error("call %s: fail-over transfer failed: %s", self.call_sid, said)
                else:
                    transferred = True
                    self._deps.metrics.record(RelayMetric.TRANSFERS, 1, "Count")
        finally:
            if transferred:
                await self.end(CallOutcome.TRANSFERRED)
            else:
                await self.end(CallOutcome.ERROR, code=CloseCode.GOING_AWAY, reason="model unavailable")

    async def _on_model_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            await self._on_audio_delta(event)
        elif kind == "input_audio_buffer.speech_started":
            await self._on_speech_started()
        elif kind == "input_audio_buffer.speech_stopped":
            self._speech_stopped_at = time.monotonic()
        elif kind == "response.created":
            self._response_active = True
            self._response_idle.clear()
            self._input_unanswered = False  # this response reads every item the server confirmed before it
            response_id = (event.get("response") or {}).get("id")
            if response_id:
                self._responses.setdefault(response_id, _ResponseState())
        elif kind == "response.output_audio_transcript.delta":
            utterance = self._utterances.get(event.get("item_id", ""))
            if utterance is not None and not utterance.text_final:
                utterance.text += event.get("delta", "")
        elif kind == "response.output_audio_transcript.done":
            self._on_transcript_done(event.get("item_id", ""), event.get("transcript", ""))
        elif kind == "response.output_audio.done":
            utterance = self._utterances.get(event.get("item_id", ""))
            if utterance is not None:
                utterance.generation_done = True
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.recorder.caller_turn(
                event.get("transcript", ""),
                started_at=self._caller_speech_started or utc_now(),
                item_id=event.get("item_id"),
            )
        elif kind == "response.function_call_arguments.done":
            self._on_function_call(event)
        elif kind == "response.done":
            await self._on_response_done(event)
        elif kind == "conversation.item.added":
            item = event.get("item") or {}
            if item.get("type") == "function_call_output" or (
                item.get("type") == "message" and item.get("role") == "system"
            ):
                self._inputs_unconfirmed = max(0, self._inputs_unconfirmed - 1)
                self._input_unanswered = True
        elif kind == "error":
            self._on_model_error(event)

    async def _on_audio_delta(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id", "")
        if item_id in self._cut_items:
            return  # in flight when the caller barged in: never play it
        payload = event.get("delta", "")
        if item_id not in self._utterances:
            self._utterances[item_id] = _AgentUtterance(started_at=utc_now())
        response = self._responses.get(event.get("response_id", ""))
        if response is not None:
            response.had_audio = True
        await self._send_audio(item_id, payload, realtime.decoded_length(payload))
        if self._speech_stopped_at is not None:
            latency = round((time.monotonic() - self._speech_stopped_at) * 1000)
            self._speech_stopped_at = None
            self.recorder.turn_ms.append(latency)
            self._deps.metrics.record(RelayMetric.TURN_LATENCY, latency, "Milliseconds")
        if self.recorder.greeting_ms is None:
            self._greeting_latency()

    async def _on_speech_started(self) -> None:
        self._caller_speech_started = utc_now()
        # First: the pending hang-up must not run on the drained playback that the clear below causes.
        await self._cancel_goodbye_if_pending()
        unplayed = self.playback.unplayed_items(min_remaining_ms=BARGE_IN_MIN_REMAINING_MS)
        if not unplayed:
            return
        # Barge-in: silence the caller's line first, then make the model's memory match what was heard.
        await self._twilio.send(clear_frame(self._twilio.stream_sid))
        self.playback.clear()
        self._cut_items.update(unplayed)
        self.recorder.barge_ins += 1
        self._deps.metrics.record(RelayMetric.BARGE_INS, 1, "Count")
        for item_id in unplayed:
            heard = self.playback.heard_ms(item_id)
            utterance = self._utterances.get(item_id)
            if utterance is not None:
                utterance.interrupted = True
                utterance.heard_ms = heard
            if item_id == GREETING_ITEM:
                # A local item the model never had: record what was heard and seed the model with exactly that.
                if utterance is not None:
                    self._record_utterance(item_id, utterance, heard_ms=heard, interrupted=True)
                continue
            if heard and self._model is not None:
                await self._model.send(realtime.truncate(item_id, heard))
            if utterance is not None and (utterance.text_final or utterance.generation_done):
                self._record_utterance(item_id, utterance, heard_ms=heard, interrupted=True)
        log.info("call %s: barge-in over %s", self.call_sid, ", ".join(unplayed))

    async def _cancel_goodbye_if_pending(self) -> None:
        """The caller speaks while the end_call goodbye is still to be heard: do not hang up on them."""
        task, action = self._handoff_task, self._handoff_action
        if task is None or task.done() or self._handoff_committed or not isinstance(action, EndCallRequest):
            return
        task.cancel()  # synchronous: the hand-off cannot reach its hang-up after this
        self._handoff_task = self._handoff_action = None
        self._handoff_started = False
        log.info("call %s: the caller spoke over the goodbye; the call continues", self.call_sid)
        # The server's turn detection answers the caller's new turn; this note makes that answer carry on the call.
        if self._model is not None:
            await self._send_input(self._model, realtime.system_message(GOODBYE_INTERRUPTED))

    def _on_transcript_done(self, item_id: str, transcript: str) -> None:
        utterance = self._utterances.get(item_id)
        if utterance is None:
            return
        utterance.text, utterance.text_final = transcript, True
        if utterance.interrupted and not utterance.recorded:
            self._record_utterance(item_id, utterance, heard_ms=utterance.heard_ms, interrupted=True)

    def _record_utterance(
        self, item_id: str, utterance: _AgentUtterance, *, heard_ms: int | None, interrupted: bool
    ) -> None:
        if utterance.recorded:
            return
        utterance.recorded = True
        total = self.playback.sent_ms(item_id)
        text = cut_text(utterance.text, heard_ms, total) if interrupted else utterance.text
        if item_id == GREETING_ITEM:
            self._greeting_seed = text
            if self._model_ready.is_set() and not self._greeting_seeded:
                self._spawn(self._seed_greeting(), "greeting-seed")
        self.recorder.agent_turn(
            text,
            started_at=utterance.started_at,
            item_id=None if item_id == GREETING_ITEM else item_id,
            interrupted=interrupted,
            heard_ms=heard_ms,
        )

    def _record_open_utterances(self) -> None:
        for item_id, utterance in self._utterances.items():
            if not utterance.recorded:
                heard = self.playback.heard_ms(item_id)
                interrupted = utterance.interrupted or (heard or 0) < self.playback.sent_ms(item_id)
                self._record_utterance(item_id, utterance, heard_ms=heard, interrupted=interrupted)

    async def _on_response_done(self, event: dict[str, Any]) -> None:
        response = event.get("response") or {}
        self.recorder.add_usage(usage_from_response_done(event))
        if response.get("status") == "failed":
            self._deps.metrics.record(RelayMetric.MODEL_ERRORS, 1, "Count")
            log.warning("call %s: response failed: %s", self.call_sid, response.get("status_details"))
        for item in response.get("output") or []:
            utterance = self._utterances.get(item.get("id", "")) if isinstance(item, dict) else None
            if utterance is not None:
                utterance.generation_done = True
                utterance.text_final = True
                if utterance.interrupted:
                    self._record_utterance(item["id"], utterance, heard_ms=utterance.heard_ms, interrupted=True)
        state = self._responses.get(response.get("id", ""))
        if state is not None:
            state.done.set()
        self._response_active = False
        if self._response_wanted and self._tools_in_flight == 0:
            self._response_wanted = False
            # Only when something the relay added is still unanswered: a response the server's turn detection
            # started after the function output already answered it, and asking again would make the agent talk
            # twice.
            if self._input_unanswered or self._inputs_unconfirmed:
                await self._request_response()
        if not self._response_active:
            self._response_idle.set()

    def _on_model_error(self, event: dict[str, Any]) -> None:
        error = event.get("error") or {}
        code = error.get("code")
        if code == "conversation_already_has_active_response":
            self._response_wanted = True  # asked while the server's VAD started one: ask again when it is done
        if code not in RECOVERABLE_MODEL_ERRORS:
            self._deps.metrics.record(RelayMetric.MODEL_ERRORS, 1, "Count")
        log.warning("call %s: model error %s: %s", self.call_sid, code, str(error.get("message"))[:200])

    async def _send_input(self, model: RealtimeConnection, event: dict[str, Any]) -> None:
        """Add an item the model must answer (a function output or a system instruction)."""
        self._inputs_unconfirmed += 1
        await model.send(event)

    async def _request_response(self, instructions: str | None = None) -> None:
        """`response.create`, never while a response is active (then it is sent when that one is done)."""
        if self._model is None:
            return
        if self._response_active:
            self._response_wanted = True
            return
        self._response_active = True
        self._response_idle.clear()
        await self._model.send(realtime.response_create(instructions))

    # ---- tools -------------------------------------------------------------------------------------------------

    def _on_function_call(self, event: dict[str, Any]) -> None:
        response_id = event.get("response_id", "")
        state = self._responses.setdefault(response_id, _ResponseState())
        state.tool_calls += 1
        self._tools_in_flight += 1
        self._spawn(
            self._run_tool(event.get("call_id", ""), event.get("name", ""), event.get("arguments", "{}"), state),
            f"tool-{event.get('name')}",
        )

    async def _run_tool(self, call_id: str, name: str, arguments: str, response: _ResponseState) -> None:
        """Run one tool off the audio path and give the model its result. Whatever fails here (the registry already
        turns a tool's own errors into results), the model still gets an error result and is asked to go on, and the
        in-flight count always drops: otherwise the caller would wait in dead air for an answer that never comes."""
        action: TransferRequest | EndCallRequest | None = None
        try:
            started = time.monotonic()
            try:
                outcome = await self._call_tool(name, arguments)
                output, ok, action = dumps_compact(outcome.output), outcome.ok, outcome.action
            except Exception as error:
                log.error("call %s: tool %s failed outside the registry: %s", self.call_sid, name, type(error).__name__)
                output = dumps_compact(
                    {"error": f"The {name} tool failed unexpectedly. Apologise briefly and offer to help another way."}
                )
                ok = False
            self._note_tool_call(call_id, name, arguments, output, ok=ok, duration_s=time.monotonic() - started)
            model = self._model
            if model is not None:
                await self._send_input(model, realtime.function_call_output(call_id, output))
        finally:
            self._tools_in_flight -= 1
        if action is not None:
            if not self._handoff_started:  # one hand-off at a time; the one under way stays the one to cancel
                self._handoff_action = action
                self._handoff_task = self._spawn(self._hand_off(action, response), "hand-off")
        elif self._tools_in_flight == 0:
            await self._request_response()

    async def _call_tool(self, name: str, arguments: str) -> ToolOutcome:
        ctx = ToolContext(
            call_sid=self.call_sid,
            caller_number=self._record.caller_number,
            store=self._deps.store,
            settings=self._settings,
            http=self._deps.http,
        )
        try:
            # The registry applies the tool timeout itself; this outer bound only guards against a tool that
            # ignores cancellation.
            async with asyncio.timeout(self._settings.tool_timeout_seconds + 2.0):
                return await self._deps.tools.run(name, arguments, ctx)
        except TimeoutError:
            return ToolOutcome(output={"error": f"{name} did not answer in time"}, ok=False)

    def _note_tool_call(
        self, call_id: str, name: str, arguments: str, output: str, *, ok: bool, duration_s: float
    ) -> None:
        """Metrics and the transcript's record of a tool call; a failure here never keeps the result from the model."""
        try:
            duration = round(duration_s * 1000)
            self._deps.metrics.record(RelayMetric.TOOL_LATENCY, duration, "Milliseconds")
            if not ok:
                self._deps.metrics.record(RelayMetric.TOOL_ERRORS, 1, "Count")
            self.recorder.tool_call(
                ToolCall(call_id=call_id, name=name, arguments=arguments, result=output, ok=ok, duration_ms=duration)
            )
            if ok and name == BOOKING_TOOL:
                self._note_booking_name(arguments)
        except Exception:
            log.exception("call %s: could not record tool call %s", self.call_sid, name)

    async def _hand_off(self, action: TransferRequest | EndCallRequest, response: _ResponseState) -> None:
        """Transfer or hang up once the agent's last words have been heard. Until the request goes out, an end_call
        hand-off is cancelled if the caller speaks (see `_cancel_goodbye_if_pending`)."""
        if self._handoff_started:
            return
        self._handoff_started = True
        self._handoff_committed = False
        transfer = isinstance(action, TransferRequest)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HANDOFF_WAIT_SECONDS):
                await response.done.wait()
                if not response.had_audio:
                    # The model called the tool before saying anything: the tool's output (already sent) tells it
                    # what to say, so let it speak, then wait for those words to be heard.
                    await self._request_response()
                    await self._response_idle.wait()
                await self.playback.wait_drained()
        self._handoff_committed = True
        control = self._deps.call_control
        if control is None:
            log.error("call %s: no CALL_CONTROL_URL; closing the stream instead", self.call_sid)
            await self.end(CallOutcome.TRANSFERRED if transfer else CallOutcome.COMPLETED_BY_AGENT)
            return
        try:
            if isinstance(action, TransferRequest):
                await control.transfer(self.call_sid, reason=action.reason, summary=action.summary)
                self._deps.metrics.record(RelayMetric.TRANSFERS, 1, "Count")
                self._outcome = self._outcome or CallOutcome.TRANSFERRED
            else:
                await control.hangup(self.call_sid, reason=action.reason)
                self._outcome = self._outcome or CallOutcome.COMPLETED_BY_AGENT
        except CallControlError as error:
            log.error("call %s: call control failed: %s", self.call_sid, error)
            self._handoff_started = False
            self._handoff_committed = False
            model = self._model
            if model is not None:
                await self._send_input(
                    model,
                    realtime.system_message(
                        "The transfer could not be completed. Apologise briefly and offer to take a message."
                        if transfer
                        else "The call could not be ended automatically; the caller may hang up."
                    ),
                )
            if transfer:
                await self._request_response()

    # ---- limits ------------------------------------------------------------------------------------------------

    async def _call_timer(self) -> None:
        """Maximum call length: ask the agent to wrap up, then end the call."""
        settings = self._settings
        warn_after = max(0, settings.max_call_seconds - settings.max_call_warning_seconds)
        await asyncio.sleep(warn_after)
        await self._model_ready.wait()
        if self._model is not None:
            await self._send_input(
                self._model,
                realtime.system_message(
                    "The call is about to reach its time limit. "
                    "Wrap up politely in one or two sentences and say goodbye."
                ),
            )
            await self._request_response()
        await asyncio.sleep(settings.max_call_seconds - warn_after)
        log.info("call %s reached MAX_CALL_SECONDS", self.call_sid)
        self._outcome = self._outcome or CallOutcome.MAX_DURATION
        if self._deps.call_control is not None:
            with contextlib.suppress(CallControlError, TimeoutError):
                async with asyncio.timeout(FAILOVER_TRANSFER_SECONDS):
                    await self._deps.call_control.hangup(self.call_sid, reason="max_call_length")
        await self.end(CallOutcome.MAX_DURATION)
