"""What the agent says, on its way to the caller's ear, and what the caller actually heard of it.

Model audio deltas (and the relay's cached greeting and filler) go to Twilio as `media`, with a `mark` after every
MARK_INTERVAL_MS of audio and at the end of each utterance; the `PlaybackTracker` turns the echoed marks (and the
clock between them) into what was heard. Audio that stops coming mid-utterance is marked once it has waited an
interval and a half for more, so the tracker never waits for an echo that no mark will bring. An utterance is recorded
in the transcript once heard in full, or cut at the barge-in point, and that heard text is what the conversation
memory gives a new model session. On a barge-in the caller's line is cleared first, then the model's item truncated at
what was heard (at 0 when nothing was: the model must never believe it said what nobody heard).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from callcore.metric_names import RelayMetric
from callcore.models import utc_now
from relay import realtime
from relay.conversation import AgentUtterance
from relay.greeting import RenderedGreeting
from relay.realtime import ServerEvent
from relay.records import cut_text
from relay.twilio_stream import TwilioSide, clear_frame, mark_frame, media_frame

if TYPE_CHECKING:
    from relay.call_session import CallSession

log = logging.getLogger(__name__)

GREETING_ITEM = "greeting"
FILLER_ITEM = "filler"
# Less audio than this left to play is not worth a clear/truncate (and is within the mark/clock disagreement).
BARGE_IN_MIN_REMAINING_MS = 20
MARK_WAIT_FACTOR = 1.5


class AgentAudio:
    def __init__(self, call: CallSession, twilio: TwilioSide, *, started_at: float) -> None:
        self._call = call
        self._twilio = twilio
        self._started_at = started_at
        self._utterances: dict[str, AgentUtterance] = {}
        self._cut_items: set[str] = set()
        self.speech_stopped_at: float | None = None  # the caller's last turn ended here: the turn latency's start
        # Audio arriving in real time fills an interval just in time: the wait for more is longer, so that a steady
        # stream is marked by the interval alone and only audio that really stopped is marked by the wait.
        self._mark_wait_seconds = MARK_WAIT_FACTOR * call.deps.settings.mark_interval_ms / 1000

    # ---- to Twilio -------------------------------------------------------------------------------------------------

    async def _send(self, item_id: str, payload: str, size: int) -> None:
        twilio = self._twilio
        if not await twilio.send(media_frame(twilio.stream_sid, payload)):
            return
        playback = self._call.playback
        mark = playback.sent(item_id, size)
        if mark is not None:
            await twilio.send(mark_frame(twilio.stream_sid, mark))
        elif playback.unmarked_bytes == size:
            # The first unmarked audio since the last mark: if nothing marks it within an interval, this will.
            asyncio.get_running_loop().call_later(self._mark_wait_seconds, self._mark_if_waiting, playback.marks)

    def _mark_if_waiting(self, marks_then: int) -> None:
        playback = self._call.playback
        if playback.marks == marks_then and playback.unmarked_bytes and not self._twilio.ws.closed:
            self._call.spawn(self.mark_sent_audio(), "mark")

    async def mark_sent_audio(self) -> None:
        """A mark after everything sent so far (the end of an utterance): its echo says all of it was played."""
        mark = self._call.playback.flush()
        if mark is not None:
            await self._twilio.send(mark_frame(self._twilio.stream_sid, mark))

    async def on_delta(self, event: ServerEvent) -> None:
        item_id = event.get("item_id", "")
        if item_id in self._cut_items:
            return  # in flight when the caller barged in: never play it
        call = self._call
        payload = event.get("delta", "")
        if item_id not in self._utterances:
            utterance = self._utterances[item_id] = AgentUtterance(
                started_at=utc_now(), generation=call.link.generation
            )
            call.memory.agent_item(item_id, utterance)
            call.responses.state(event.get("response_id", "")).had_audio = True
        await self._send(item_id, payload, realtime.decoded_length(payload))
        if self.speech_stopped_at is not None:
            latency = round((time.monotonic() - self.speech_stopped_at) * 1000)
            self.speech_stopped_at = None
            call.recorder.turn_ms.append(latency)
            call.deps.metrics.record(RelayMetric.TURN_LATENCY, latency, "Milliseconds")
        if call.recorder.greeting_ms is None:
            self.greeting_latency()

    def greeting_latency(self) -> None:
        recorder = self._call.recorder
        if recorder.greeting_ms is None:
            recorder.greeting_ms = round((time.monotonic() - self._started_at) * 1000)
            self._call.deps.metrics.record(RelayMetric.GREETING_LATENCY, recorder.greeting_ms, "Milliseconds")

    async def play_greeting(self, greeting: RenderedGreeting) -> None:
        """The cached greeting, from memory: the model is told what the caller heard of it once that is known."""
        utterance = AgentUtterance(
            started_at=utc_now(), generation=-1, text=greeting.text, text_final=True, generation_done=True
        )
        self._utterances[GREETING_ITEM] = utterance
        self._call.memory.greeting(utterance)
        for index, chunk in enumerate(greeting.chunks):
            await self._send(GREETING_ITEM, chunk, realtime.decoded_length(chunk))
            if index == 0:
                self.greeting_latency()
        await self.mark_sent_audio()
        self._call.spawn(self._record_greeting_when_heard(), "greeting-heard")

    async def _record_greeting_when_heard(self) -> None:
        await self._call.playback.wait_drained()
        utterance = self._utterances[GREETING_ITEM]
        if not utterance.recorded:
            heard = self._call.playback.heard_ms(GREETING_ITEM)
            self._record(GREETING_ITEM, utterance, heard_ms=heard, interrupted=False)

    async def play_filler(self, filler: RenderedGreeting) -> None:
        """The relay's own "one moment": in no model session and no transcript."""
        for chunk in filler.chunks:
            await self._send(FILLER_ITEM, chunk, realtime.decoded_length(chunk))
        await self.mark_sent_audio()

    # ---- what was heard --------------------------------------------------------------------------------------------

    def on_mark_echo(self, name: str) -> None:
        playback = self._call.playback
        if not playback.mark_echoed(name):
            return
        for item_id, utterance in self._utterances.items():
            if utterance.recorded or not utterance.generation_done or not utterance.text_final:
                continue
            heard = playback.heard_ms(item_id) or 0
            if heard >= playback.sent_ms(item_id):
                self._record(item_id, utterance, heard_ms=heard, interrupted=False)

    def on_transcript_delta(self, event: ServerEvent) -> None:
        utterance = self._utterances.get(event.get("item_id", ""))
        if utterance is not None and not utterance.text_final:
            utterance.text += event.get("delta", "")

    def on_transcript_done(self, event: ServerEvent) -> None:
        item_id = event.get("item_id", "")
        utterance = self._utterances.get(item_id)
        if utterance is None:
            return
        utterance.text, utterance.text_final = event.get("transcript", ""), True
        if utterance.interrupted and not utterance.recorded:
            self._record(item_id, utterance, heard_ms=utterance.heard_ms, interrupted=True)

    async def on_audio_done(self, event: ServerEvent) -> None:
        utterance = self._utterances.get(event.get("item_id", ""))
        if utterance is not None:
            utterance.generation_done = True
        await self.mark_sent_audio()

    def on_response_output(self, items: list[object]) -> None:
        for item in items:
            item_id = item.get("id", "") if isinstance(item, dict) else ""
            utterance = self._utterances.get(item_id)
            if utterance is not None:
                utterance.generation_done = utterance.text_final = True
                if utterance.interrupted:
                    self._record(item_id, utterance, heard_ms=utterance.heard_ms, interrupted=True)

    async def interrupt(self) -> None:
        """Barge-in: silence the caller's line first, then make the model's memory match what was heard."""
        call = self._call
        playback = call.playback
        unplayed = playback.unplayed_items(min_remaining_ms=BARGE_IN_MIN_REMAINING_MS)
        if not unplayed:
            return
        await self._twilio.send(clear_frame(self._twilio.stream_sid))
        playback.clear()
        self._cut_items.update(unplayed)
        call.recorder.barge_ins += 1
        call.deps.metrics.record(RelayMetric.BARGE_INS, 1, "Count")
        for item_id in unplayed:
            heard = playback.heard_ms(item_id)
            utterance = self._utterances.get(item_id)
            if utterance is None:
                continue  # the filler: the relay's own, in no session
            utterance.interrupted, utterance.heard_ms = True, heard
            # What a new model session is told it said, until the full transcript allows the final cut.
            utterance.said = cut_text(utterance.text, heard, playback.sent_ms(item_id))
            if utterance.generation == call.link.generation:
                # Only the session that made the item can cut it; an item the caller heard none of is cut at 0.
                await call.link.send(realtime.truncate(item_id, heard or 0))
            if item_id == GREETING_ITEM or utterance.text_final or utterance.generation_done:
                self._record(item_id, utterance, heard_ms=heard, interrupted=True)
        log.info("barge-in over %d item(s)", len(unplayed))

    def _record(self, item_id: str, utterance: AgentUtterance, *, heard_ms: int | None, interrupted: bool) -> None:
        if utterance.recorded:
            return
        call = self._call
        utterance.recorded = True
        total = call.playback.sent_ms(item_id)
        text = cut_text(utterance.text, heard_ms, total) if interrupted else utterance.text
        utterance.said = text
        if item_id == GREETING_ITEM:
            call.spawn(call.link.sync(), "greeting-seed")  # the model is told what the caller heard of it
        call.recorder.agent_turn(
            text,
            started_at=utterance.started_at,
            item_id=None if item_id == GREETING_ITEM else item_id,
            interrupted=interrupted,
            heard_ms=heard_ms,
        )

    def record_open(self) -> None:
        """At the end of the call: every utterance not yet in the transcript, with what was heard of it."""
        playback = self._call.playback
        for item_id, utterance in self._utterances.items():
            if not utterance.recorded:
                heard = playback.heard_ms(item_id)
                interrupted = utterance.interrupted or (heard or 0) < playback.sent_ms(item_id)
                self._record(item_id, utterance, heard_ms=heard, interrupted=interrupted)
