"""One admitted call: the bridge between Twilio's media stream and the model.

Audio path (kept minimal, no parsing beyond `json.loads`, no re-encoding):
  caller  -> Twilio `media` payload          -> `input_audio_buffer.append` (same base64 string, `ModelLink`)
  model   -> `response.output_audio.delta`   -> Twilio `media` (same base64 string) + a `mark` after each chunk

The call is split by job, each part in its own module and reached through this session:
  `model_link.ModelLink`      the model side: first session, reconnect, rotation, caller audio while there is none
  `conversation.ConversationMemory`  the conversation as the caller heard it, to re-seed a new session
  `responses.ResponseTracker`  one model response at a time
  `tool_calls.ToolCalls`      tools, off the audio path
  `hand_off.HandOff`          transfer, hang-up, fail-over
  `call_limits.CallLimits`    maximum length, silence, a dead line
  `keypad.Keypad`             DTMF keys

Everything slow runs in tasks this session owns; teardown cancels them, closes both sockets at once (each within
`close_timeout_seconds`), waits for the tasks no longer than that, and writes the records. A task that ignores
cancellation therefore cannot keep a model session billing or a caller's line open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from callcore.masking import mask_phone
from callcore.metric_names import RelayMetric
from callcore.models import CallOutcome, utc_now
from callcore.store import CallStore
from callcore.store.booking_counts import CallerBookingCounts
from callcore.store.callers import CallerDirectory, caller_pk
from callcore.transcripts import TranscriptArchive
from relay.admission import Admitted
from relay.agent_audio import AgentAudio
from relay.call_control import CallControlClient
from relay.call_limits import CallLimits
from relay.conversation import ConversationMemory
from relay.greeting import RenderedGreeting
from relay.hand_off import HandOff
from relay.keypad import Keypad
from relay.line import LineSettings
from relay.metrics import RelayMetrics
from relay.model_link import LinkLost, ModelLink, SessionKind
from relay.model_pool import ModelSessionPool
from relay.playback import PlaybackTracker
from relay.prompt import FIRST_TIME, CallerHistory, render_instructions
from relay.realtime import AUDIO_DELTA, ServerEvent
from relay.records import CallRecorder, in_record_thread, usage_from_response_done
from relay.responses import RECOVERABLE_MODEL_ERRORS, ResponseTracker
from relay.settings import RelaySettings
from relay.shutdown import FINAL_WRITES_SECONDS, HAND_OVER_SECONDS
from relay.tool_calls import ToolCalls
from relay.tools import ToolRegistry
from relay.tools.booking_quota import BookingQuota
from relay.twilio_stream import (
    CloseCode,
    Dtmf,
    FrameRejected,
    MarkEcho,
    Media,
    Start,
    Stop,
    TwilioSide,
    parse_frame,
)

log = logging.getLogger(__name__)

_SOCKET_CLOSED = frozenset({aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED})
FILLER_AFTER_SECONDS = 1.5  # a model gap longer than this, with nothing playing, gets the cached "one moment"
# While the cached greeting plays, the model's instructions may wait this long for the caller's history, so they go
# out complete in one session.update; a slower read is sent as a second update when it arrives.
HISTORY_WAIT_SECONDS = 0.25
CARRY_ON = (
    "The line had a short break and is back. If you were in the middle of saying something, finish it briefly; "
    "otherwise answer what the caller said last."
)


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


class CallSession:
    def __init__(
        self,
        admitted: Admitted,
        twilio: TwilioSide,
        deps: CallDependencies,
        *,
        line: LineSettings,
        line_tools: ToolRegistry,
        instructions: str,
        greeting_text: str,
        greeting: RenderedGreeting | None,
        filler: RenderedGreeting | None,
        started_at: float,
    ) -> None:
        self.call_sid = admitted.start.call_sid
        self._record = admitted.record
        self.caller_number = admitted.record.caller_number
        self._twilio = twilio
        self.deps = deps
        self.line = line  # the line's settings for this call's whole life, even if its profile is redeployed
        self.line_tools = line_tools
        self._instructions = instructions
        self._greeting_text = greeting_text
        self._greeting = greeting
        self._filler = filler
        self._started_at = started_at
        settings = deps.settings
        self.playback = PlaybackTracker(mark_interval_ms=settings.mark_interval_ms)
        self.recorder = CallRecorder(
            admitted.record,
            store=deps.store,
            archive=deps.archive,
            prices=settings.prices,
            turn_retention_days=settings.turn_retention_days,
            mask_caller_digits=settings.mask_caller_digits,
        )
        self.memory = ConversationMemory()
        self.link = ModelLink(
            pool=deps.pool,
            settings=settings,
            line=line,
            tools=line_tools.session_tools(),
            metrics=deps.metrics,
            memory=self.memory,
            retry_first=greeting is not None,
        )
        self.tools = ToolCalls(self)
        self.booking_quota = self._booking_quota()
        self.responses = ResponseTracker(self.link.send, lambda: self.tools.in_flight > 0)
        self.hand_off = HandOff(self)
        self.limits = CallLimits(self)
        self.keypad = Keypad(self)
        self.audio = AgentAudio(self, twilio, started_at=started_at)
        self.on_audio_delta = self.audio.on_delta  # the model link's hot path, straight to the audio
        self.frame_seen = True  # set on every Twilio frame; the dead-line watchdog clears it
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ending = False
        self._outcome: CallOutcome | None = None
        self._transcripts_due: set[str] = set()  # caller turns committed, their transcription not yet in
        self._owe_answer = False  # a session went away with the agent mid-reply (or an input unanswered)
        self._caller_speech_started: datetime | None = None
        self._greeting_live_pending = greeting is None  # cold cache: the model greets as soon as it is ready
        # Whether the caller is known: read while the greeting plays, written once at the end of the call.
        self._callers = CallerDirectory(
            deps.store.table_name,
            hash_key=settings.caller_hash_key,
            retention_days=settings.caller_profile_retention_days,
        )
        self._history: CallerHistory = None
        self._history_task: asyncio.Task[Any] | None = None
        self._instructions_sent = False

    def _booking_quota(self) -> BookingQuota | None:
        caps = self.line.booking
        if caps is None:
            return None  # the environment's line: no caps, as before profiles
        trackable = CallerDirectory.tracks(self.caller_number)
        return BookingQuota(
            per_call=caps.max_bookings_per_call,
            per_caller_per_day=caps.max_bookings_per_caller_per_day,
            line=self.line.key[0],
            zone=self.line.timezone,
            counts=CallerBookingCounts(self.deps.store.table_name, self.deps.store.client),
            caller_pk=caller_pk(self.deps.settings.caller_hash_key, self.caller_number) if trackable else None,
        )

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def run(self) -> CallOutcome:
        log.info("call admitted (caller %s)", mask_phone(self.caller_number))
        try:
            if self._greeting is not None:
                await self.audio.play_greeting(self._greeting)
            # After the greeting's audio is on its way: the lookup must never delay the first words.
            self._history_task = self.spawn(self._load_caller_history(), "caller-history")
            self.spawn(self._model_main(), "model")
            self.spawn(self.limits.max_call_length(), "call-timer")
            self.spawn(self.limits.silence(), "silence-watchdog")
            self.spawn(self.limits.stream_idle(), "stream-watchdog")
            await self._twilio_loop()
        finally:
            await self._teardown()
        return self._outcome or CallOutcome.CALLER_HUNG_UP

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=f"{name}:{self.call_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    def settle_outcome(self, outcome: CallOutcome) -> None:
        if self._outcome is None:
            self._outcome = outcome

    async def end(self, outcome: CallOutcome, *, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        """End the call from the relay's side: closing Twilio's socket ends the twilio loop, then teardown runs."""
        self.settle_outcome(outcome)
        self._ending = True
        await self._twilio.close(code, reason)

    async def end_for_shutdown(self) -> None:
        """The process is stopping with this call still live (drain timed out): hand it to a human if possible."""
        await self.hand_off.fail_over("the agent's server is restarting", wait_for_hand_off=HAND_OVER_SECONDS)

    async def _teardown(self) -> None:
        self._ending = True
        under_way = self.hand_off.outcome_under_way()
        if under_way is not None:
            self.settle_outcome(under_way)
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        close_timeout = self.deps.settings.close_timeout_seconds
        # Both sockets close first and together: the model session bills until closed, and the caller must not sit
        # on an open line while the call's tasks wind down. Waiting for those tasks is bounded by the same timeout.
        await asyncio.gather(
            self._twilio.close(CloseCode.NORMAL, "call ended"),
            self.link.close(),
            self._wait_for_tasks(tasks, close_timeout),
            return_exceptions=True,
        )
        self.audio.record_open()
        self.recorder.model_reconnects, self.recorder.model_rotations = self.link.reconnects, self.link.rotations
        outcome = self._outcome or CallOutcome.CALLER_HUNG_UP
        self.deps.metrics.record(RelayMetric.CALL_DURATION, round(time.monotonic() - self._started_at, 3), "Seconds")
        try:
            async with asyncio.timeout(FINAL_WRITES_SECONDS):
                record = await self.recorder.finish(outcome)
                await self._count_caller_call(outcome)
        except TimeoutError:
            log.error("the call's records were not written within %g s", FINAL_WRITES_SECONDS)
            record = None
        if record is not None and record.estimated_cost_usd is not None:
            self.deps.metrics.record(RelayMetric.CALL_COST, float(record.estimated_cost_usd), "None")
        log.info("call ended: %s", outcome.value)

    async def _wait_for_tasks(self, tasks: list[asyncio.Task[Any]], timeout: float) -> None:  # noqa: ASYNC109
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=timeout)
        if stuck:
            names = ", ".join(sorted(task.get_name().split(":")[0] for task in stuck))
            log.error("%d task(s) ignored cancellation at teardown: %s", len(stuck), names)

    # ---- the caller's history ----------------------------------------------------------------------------------

    async def _load_caller_history(self) -> None:
        if not self._callers.tracks(self.caller_number) or not self._record.caller_id_verified:
            return  # a withheld or unattested number says nothing about who is calling: no history
        try:
            profile = await asyncio.to_thread(self._callers.get, self.caller_number)
        except Exception as error:
            # The call goes on without it: the prompt then simply does not say whether the caller is known.
            log.warning("caller profile not read (%s)", type(error).__name__)
            return
        self._history = profile if profile is not None else FIRST_TIME
        if self._instructions_sent:
            # The model session was ready first: complete its instructions now.
            await self.link.update_instructions(self._current_instructions())

    def _current_instructions(self) -> str:
        if self._history is None:
            return self._instructions
        return render_instructions(self.line, self._record, greeting=self._greeting_text, history=self._history)

    async def _count_caller_call(self, outcome: CallOutcome) -> None:
        if not self._record.caller_id_verified:
            return  # whoever spoofs a number must not write into its owner's profile either
        try:
            await in_record_thread(
                self._callers.record_call,
                self.caller_number,
                at=self._record.created_at,
                outcome=outcome,
                booking_name=self.tools.booking_name,
            )
        except Exception as error:
            log.warning("caller profile not updated (%s)", type(error).__name__)

    # ---- Twilio -> relay ---------------------------------------------------------------------------------------

    async def _twilio_loop(self) -> None:
        ws = self._twilio.ws
        # `ws.receive()` itself rather than `async for`: one call less per frame on the audio path.
        while (message := await ws.receive()).type not in _SOCKET_CLOSED:
            self.frame_seen = True
            if message.type is aiohttp.WSMsgType.TEXT:
                try:
                    frame = parse_frame(message.data)
                except FrameRejected as rejected:
                    log.warning("frame refused (%s); closing %d", rejected, rejected.code)
                    await self.end(CallOutcome.ERROR, code=rejected.code, reason=rejected.reason)
                    return
                if isinstance(frame, Media):
                    await self.link.append_audio(frame.payload)
                elif isinstance(frame, MarkEcho):
                    self.audio.on_mark_echo(frame.name)
                elif isinstance(frame, Stop):
                    log.info("Twilio stopped the stream")
                    return
                elif isinstance(frame, Start):
                    log.warning("second start frame; closing")
                    await self.end(CallOutcome.ERROR, code=CloseCode.POLICY, reason="duplicate start")
                    return
                elif isinstance(frame, Dtmf):
                    await self.keypad.pressed(frame.digit)
            elif message.type is aiohttp.WSMsgType.BINARY:
                log.warning("binary frame refused; closing 1003")
                await self.end(CallOutcome.ERROR, code=CloseCode.UNSUPPORTED, reason="binary frames not supported")
                return
            elif message.type is aiohttp.WSMsgType.ERROR:
                error = ws.exception()
                if isinstance(error, aiohttp.WebSocketError):
                    # aiohttp refused the frame itself (oversized: 1009, or a protocol violation) and closed the
                    # socket: a bad frame, like the ones refused above, not a caller who hung up.
                    log.warning("frame refused (%s); closed %s", error, ws.close_code)
                    self.settle_outcome(CallOutcome.ERROR)
                else:
                    log.warning("Twilio socket error (%s); closed %s", error, ws.close_code)
                return

    # ---- relay -> Twilio ---------------------------------------------------------------------------------------

    async def _play_filler_if_silent(self) -> None:
        """The model is away: past FILLER_AFTER_SECONDS with nothing playing, the caller hears "one moment" (cached
        audio, never the model's), once per gap."""
        await asyncio.sleep(FILLER_AFTER_SECONDS)
        await self.playback.wait_drained()
        filler = self._filler
        if filler is None or self.link.ready.is_set() or self._ending:
            return
        log.info("the model is still away: playing the filler")
        await self.audio.play_filler(filler)

    # ---- the model ---------------------------------------------------------------------------------------------

    async def _model_main(self) -> None:
        try:
            await self.link.run(self)
        except LinkLost as lost:
            log.error("no model session: %s", lost)
            self.deps.metrics.record(RelayMetric.MODEL_ERRORS, 1, "Count")
            await self.hand_off.fail_over("the agent's model session could not be restored")
        except Exception:
            # A bug or an event the relay cannot handle: without this the task would die quietly, leaving the
            # caller on an open line that no one answers (and the model session billing until they hang up).
            log.exception("handling the model session failed")
            self.deps.metrics.record(RelayMetric.MODEL_ERRORS, 1, "Count")
            await self.hand_off.fail_over("the agent hit an internal error")

    async def session_instructions(self, kind: SessionKind) -> str:
        history = self._history_task
        if kind is SessionKind.FIRST and self._greeting is not None and history is not None and not history.done():
            # The caller is listening to the cached greeting meanwhile: a short wait costs them nothing.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HISTORY_WAIT_SECONDS):
                    await asyncio.shield(history)
        self._instructions_sent = True  # from here a late caller history is sent as its own update
        return self._current_instructions()

    def on_session_gone(self, *, unexpected: bool) -> None:
        self._owe_answer = self.responses.reset() or self._owe_answer
        self._transcripts_due.clear()  # a transcription still coming from that session never will
        if unexpected:
            self.spawn(self._play_filler_if_silent(), "filler")

    async def on_session_ready(self, kind: SessionKind) -> None:
        self.limits.activity()
        if kind is SessionKind.FIRST:
            if self._greeting_live_pending:
                self._greeting_live_pending = False
                await self.responses.request(f'Greet the caller now by saying: "{self._greeting_text}"')
            return
        owed, self._owe_answer = self._owe_answer or self.responses.reset(), False
        if kind is SessionKind.RECONNECTED and owed:
            await self.responses.request(CARRY_ON)

    def at_turn_boundary(self) -> bool:
        return not (
            self.responses.active
            or self.playback.has_pending
            or self.tools.in_flight
            or self.limits.caller_speaking
            or self.hand_off.started
            or self._transcripts_due
        )

    async def add_note(self, text: str) -> None:
        """A system instruction the model must answer (it goes to whichever session the call has, now or next)."""
        self.memory.note(text)
        self.responses.expect_answer()
        await self.link.sync()

    async def on_model_event(self, event: ServerEvent) -> None:
        kind = event.get("type")
        if kind == AUDIO_DELTA:
            await self.audio.on_delta(event)
        elif kind == "input_audio_buffer.speech_started":
            await self._on_speech_started()
        elif kind == "input_audio_buffer.speech_stopped":
            self.audio.speech_stopped_at = time.monotonic()
            self.limits.speech_stopped()
        elif kind == "response.created":
            self.responses.on_created(event)
        elif kind == "response.output_audio_transcript.delta":
            self.audio.on_transcript_delta(event)
        elif kind == "response.output_audio_transcript.done":
            self.audio.on_transcript_done(event)
        elif kind == "response.output_audio.done":
            await self.audio.on_audio_done(event)
        elif kind == "input_audio_buffer.committed":
            item_id = event.get("item_id", "")
            self.memory.caller_turn(item_id, self.link.generation)
            self._transcripts_due.add(item_id)
        elif kind == "conversation.item.input_audio_transcription.completed":
            self._on_caller_transcript(event)
        elif kind == "conversation.item.input_audio_transcription.failed":
            self._transcripts_due.discard(event.get("item_id", ""))
        elif kind == "response.function_call_arguments.done":
            self.tools.on_arguments_done(event)
        elif kind == "response.done":
            await self._on_response_done(event)
        elif kind == "conversation.item.added":
            self.responses.on_item_added(event.get("item") or {})
        elif kind == "error":
            self._on_model_error(event)

    def _on_caller_transcript(self, event: ServerEvent) -> None:
        item_id, transcript = event.get("item_id", ""), event.get("transcript", "")
        self._transcripts_due.discard(item_id)
        self.memory.caller_said(item_id, transcript, self.link.generation)
        started_at = self._caller_speech_started or utc_now()
        self.recorder.caller_turn(transcript, started_at=started_at, item_id=item_id)

    async def _on_speech_started(self) -> None:
        self._caller_speech_started = utc_now()
        self.limits.speech_started()
        # First: the pending hang-up must not run on the drained playback that the clear below causes.
        await self.hand_off.cancel_goodbye_if_pending()
        await self.interrupt_agent()
        # Past the age limit with no turn boundary: the caller taking the turn is where the call changes session.
        await self.link.switch_if_due(self)

    async def interrupt_agent(self) -> None:
        await self.audio.interrupt()

    async def _on_response_done(self, event: ServerEvent) -> None:
        response = event.get("response") or {}
        self.recorder.add_usage(usage_from_response_done(event))
        if response.get("status") == "failed":
            self.deps.metrics.record(RelayMetric.MODEL_ERRORS, 1, "Count")
            log.warning("response failed: %s", response.get("status_details"))
        self.audio.on_response_output(response.get("output") or [])
        await self.responses.on_done(response.get("id", ""))

    def _on_model_error(self, event: ServerEvent) -> None:
        error = event.get("error") or {}
        code = error.get("code")
        self.responses.on_error(code)
        if code == "session_expired":
            log.warning("the model session expired before it was rotated: reconnecting")
            return  # the service closes the socket next; the link reconnects and re-seeds
        if code not in RECOVERABLE_MODEL_ERRORS:
            self.deps.metrics.record(RelayMetric.MODEL_ERRORS, 1, "Count")
        log.warning("model error %s: %s", code, str(error.get("message"))[:200])
