"""One complete phone call on this machine, through every real part of the product, with no account anywhere.

    python -m local.call [--profile PATH] [--model spoken|scripted] [--audio PATH] [--quiet]

The stack (`local.stack`) runs the real Lambda handlers, the real relay and DynamoDB + S3; Twilio and the OpenAI
Realtime model are stood in for over real sockets on 127.0.0.1. This module is the call itself: Twilio's webhooks,
the caller's media stream at real time (a frame every 20 ms, silence between lines, as on a phone line), and what the
call left behind.

With the spoken model (the default), the caller talks: its lines are synthesized speech in a voice of its own, and
the agent is the offline stand-in voice model (`local.voice_model`), which hears them with a speech recogniser and
answers through the relay's tools in synthesized speech. The caller asks for the opening hours, talks over the long
answer to book a table, gives a name, and says goodbye; the transcript in S3 holds what the model recognised. With
the scripted model (the fast tests), the lines are tones and the model's answers are scripted.

Either way the run writes the call as a stereo WAV (left caller, right agent, as heard on the line) and prints
`audio: PATH` among its final lines.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from callcore.masking import mask_phone
from callcore.models import Booking, CallRecord, TranscriptTurn
from callcore.profiles.loader import DEFAULT_PROFILES_DIR, ProfileError
from callcore.transcripts import TranscriptArchive
from local.recording import agent_track, caller_track, write_stereo_wav
from local.stack import LocalStack, ModelKind, StackOptions, local_stack
from tests.fakes.audio import SILENCE_BYTE, tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FunctionCallResponse
from tests.fakes.twilio_media import FRAME_BYTES, FakeTwilioCall

CALLER_NUMBER = "+15550100123"
CALLER_VOICE = "en-us+f5"  # espeak-ng: a voice of its own, and the one the recogniser hears best
RECORDINGS_DIR = Path("build") / "local-calls"
DEFAULT_PROFILE = DEFAULT_PROFILES_DIR / "example.toml"


@dataclass(frozen=True)
class CallerLine:
    """What the caller says. Spoken: `text` in the caller's voice. Scripted: a tone of `tone_ms` that the scripted
    model "hears" as `text`. With `barge_in_after_ms`, the caller starts talking once that much of the agent's
    answer has played, instead of waiting for the agent to finish."""

    text: str
    tone_ms: int = 1200
    barge_in_after_ms: int | None = None


# Worded for what the offline recogniser hears reliably (see local/voice_model/grammar.py).
SPOKEN_SCRIPT = (
    CallerLine("Hello, what are your opening hours today?"),
    CallerLine("Sorry, I would like to book a table for two tomorrow at eight in the evening.", barge_in_after_ms=2500),
    CallerLine("Yes please, my name is Ada."),
    CallerLine("No thanks, that is all, goodbye."),
)


def scripted_conversation(now: datetime, timezone: str) -> tuple[list[CallerLine], list[Any]]:
    """The caller's lines and the scripted model's replies, in order (the fast tests' exact control)."""
    tomorrow = (now.astimezone(ZoneInfo(timezone)) + timedelta(days=1)).strftime("%Y-%m-%d")
    caller = [
        CallerLine("Hi, what are your opening hours today?", 1200),
        CallerLine("Great. Could I book a table for two tomorrow at seven? The name is Ada.", 1600),
        CallerLine("No, that's everything. Thanks!", 900),
    ]
    model: list[AudioResponse | FunctionCallResponse] = [
        FunctionCallResponse("get_business_hours", {}),
        AudioResponse(tone(1400, 520), "We're open every day from eleven in the morning until ten at night."),
        FunctionCallResponse("book_appointment", {"name": "Ada", "date": tomorrow, "time": "19:00", "party_size": 2}),
        AudioResponse(tone(1600, 560), "You're all set: a table for two tomorrow at seven, under Ada."),
        FunctionCallResponse("end_call", {"reason": "the caller has what they needed"}),
        AudioResponse(tone(900, 600), "Thanks for calling, Ada. Goodbye!"),
    ]
    return caller, model


# ---- the caller's line ----------------------------------------------------------------------------------------------


class CallerLineFeed:
    """The caller's side of the stream as a phone sends it: a 20 ms frame every 20 ms, silence unless the caller is
    speaking. `speak` queues audio and returns once it has all gone out."""

    def __init__(self, phone: FakeTwilioCall) -> None:
        self._phone = phone
        self._queued = bytearray()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="caller-line")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def speak(self, audio: bytes) -> None:
        self._queued += audio
        self._drained.clear()
        await self._drained.wait()

    async def _run(self) -> None:
        silence = bytes([SILENCE_BYTE]) * FRAME_BYTES
        while not self._phone.closed.is_set():
            if self._queued:
                frame = bytes(self._queued[:FRAME_BYTES])
                del self._queued[:FRAME_BYTES]
            else:
                frame = silence
                self._drained.set()
            await self._phone.send_audio(frame)
        self._drained.set()


async def wait_until_heard(
    phone: FakeTwilioCall, *, since_bytes: int, settle_ms: int = 400, limit_seconds: float = 30.0
) -> None:
    """Wait until the agent has answered (sent audio beyond `since_bytes`), everything it sent has played, and the
    line then stayed quiet a moment (a tool call may come before the spoken answer)."""
    deadline = time.monotonic() + limit_seconds
    quiet_since: float | None = None
    while time.monotonic() < deadline and not phone.closed.is_set():
        answered = len(phone.received_media) > since_bytes
        if answered and phone.queued_ms() == 0:
            quiet_since = quiet_since or time.monotonic()
            if (time.monotonic() - quiet_since) * 1000 >= settle_ms:
                return
        else:
            quiet_since = None
        await asyncio.sleep(0.05)


async def wait_until_playing(
    phone: FakeTwilioCall, *, since_bytes: int, played_ms: int, limit_seconds: float = 30.0
) -> None:
    """Wait until the agent's answer (audio beyond `since_bytes`) has played for `played_ms` (or has all played):
    the moment to talk over it."""
    deadline = time.monotonic() + limit_seconds
    answer_started_at_ms: float | None = None
    while time.monotonic() < deadline and not phone.closed.is_set():
        if answer_started_at_ms is None and len(phone.received_media) > since_bytes:
            answer_started_at_ms = phone.heard_ms()
        if answer_started_at_ms is not None and (
            phone.heard_ms() - answer_started_at_ms >= played_ms or phone.queued_ms() == 0
        ):
            return
        await asyncio.sleep(0.02)


# ---- the run --------------------------------------------------------------------------------------------------------


@dataclass
class CallResult:
    call_sid: str
    model: ModelKind
    record: CallRecord
    turns: list[TranscriptTurn]
    transcript_key: str | None
    transcripts_bucket: str
    calls_table: str
    aws_endpoint: str
    kept_data: bool  # the data stays at an endpoint of the user's (AWS_ENDPOINT_URL was set)
    ended_by: str | None
    stream_url: str
    greeting_heard_ms: float
    audio_path: Path
    bookings: list[Booking] = field(default_factory=list)  # made on this call, read back from the store
    run_seconds: float = 0.0  # the whole run: start-up, the call, the records read back
    violations: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)


async def run_call(
    *,
    model: ModelKind = "spoken",
    verbose: bool = True,
    audio_path: Path | None = None,
    options: StackOptions | None = None,
) -> CallResult:
    """Place one inbound call through the whole local stack and return what it left behind."""
    say: Callable[..., None] = print if verbose else (lambda *_: None)
    run_started = time.monotonic()
    options = options or StackOptions(model=model)
    if options.model != model:
        options = dataclasses.replace(options, model=model)
    async with local_stack(options, say=say) as stack:
        call_sid = "CA" + uuid.uuid4().hex
        if stack.model_kind == "spoken":
            say("model: the local stand-in voice model (offline speech recognition + synthesis), not OpenAI")
            lines = list(SPOKEN_SCRIPT)
        else:
            say("model: the scripted model (tones for speech, answers queued in advance)")
            lines, replies = scripted_conversation(datetime.now(ZoneInfo(options.business_timezone)),
                                                   options.business_timezone)  # fmt: skip
            scripted: FakeRealtimeServer = stack.model  # type: ignore[assignment]
            scripted.script(*replies)
            scripted.caller_transcripts.extend(line.text for line in lines)
        say(f"calling {mask_phone(options.agent_number)} from {mask_phone(CALLER_NUMBER)} ({call_sid})")
        stream_url, token = await stack.incoming_call(call_sid, caller=CALLER_NUMBER)
        phone = stack.media_stream(call_sid, stream_url, token, kind=FakeTwilioCall)
        started = time.monotonic()
        await phone.connect()
        line = CallerLineFeed(phone)
        line.start()
        try:
            await wait_until_heard(phone, since_bytes=0)
            greeting_heard_ms = phone.heard_ms()
            say(f"  agent: (greeting, {greeting_heard_ms / 1000:.1f} s of audio)")
            await _converse(stack, phone, line, lines, say)
            async with asyncio.timeout(30):
                ended_by = await stack.network.wait_ended(call_sid)
            await phone.stop()
        finally:
            await line.stop()
        await stack.call_completed(
            call_sid, caller=CALLER_NUMBER, duration_seconds=max(1, round(time.monotonic() - started))
        )
        from relay.app import STATE  # noqa: PLC0415 - imported with the stack's environment

        async with asyncio.timeout(10):
            await stack.relay_app[STATE].idle.wait()
        await phone.close()
        path = write_stereo_wav(
            audio_path or RECORDINGS_DIR / f"{call_sid}.wav", caller_track(phone), agent_track(phone)
        )
        result = _result(
            stack,
            call_sid=call_sid,
            phone=phone,
            ended_by=ended_by,
            stream_url=stream_url,
            greeting_heard_ms=greeting_heard_ms,
            audio_path=path,
        )
        result.run_seconds = time.monotonic() - run_started
        return result


async def _converse(
    stack: LocalStack, phone: FakeTwilioCall, line: CallerLineFeed, lines: list[CallerLine], say: Callable[..., None]
) -> None:
    voice = None
    if stack.model_kind == "spoken":
        from local.voice_model.synthesis import Voice, speak_afresh  # noqa: PLC0415 - needs the speech parts

        voice = Voice(CALLER_VOICE)
    answered_before = 0
    for caller_line in lines:
        if caller_line.barge_in_after_ms is not None:
            await wait_until_playing(phone, since_bytes=answered_before, played_ms=caller_line.barge_in_after_ms)
            say(f"  caller (talking over the agent): {caller_line.text}")
        else:
            await wait_until_heard(phone, since_bytes=answered_before, settle_ms=600)
            say(f"  caller: {caller_line.text}")
        if stack.network.ended:
            return
        if voice is not None:
            audio = await asyncio.to_thread(speak_afresh, caller_line.text, voice)
        else:
            audio = tone(caller_line.tone_ms, 220, 0.6)
        answered_before = len(phone.received_media)
        await line.speak(audio)


def _result(
    stack: LocalStack,
    *,
    call_sid: str,
    phone: FakeTwilioCall,
    ended_by: str,
    stream_url: str,
    greeting_heard_ms: float,
    audio_path: Path,
) -> CallResult:
    record = stack.store.require_call(call_sid)
    archive = TranscriptArchive(stack.transcripts_bucket, hash_key=stack.settings.caller_hash_key)
    turns = archive.read_transcript(call_sid, record.created_at) or []
    booked_days = {
        json.loads(tool.result).get("date")
        for turn in turns
        for tool in turn.tool_calls
        if tool.name == "book_appointment" and tool.ok
    }
    bookings = [
        booking
        for day in sorted(day for day in booked_days if day)
        for booking in stack.store.list_bookings(day)
        if booking.call_sid == call_sid
    ]
    metrics = [json.loads(text) for text in stack.metrics_out.getvalue().splitlines() if text.strip()]
    violations = [*phone.violations]
    if isinstance(stack.model, FakeRealtimeServer):
        violations += stack.model.violations
    return CallResult(
        call_sid=call_sid,
        model=stack.model_kind,
        record=record,
        turns=turns,
        transcript_key=record.transcript_key,
        transcripts_bucket=stack.transcripts_bucket,
        calls_table=stack.calls_table,
        aws_endpoint=stack.environment["AWS_ENDPOINT_URL"],
        kept_data=stack.external_aws,
        ended_by=ended_by,
        stream_url=stream_url,
        greeting_heard_ms=greeting_heard_ms,
        audio_path=audio_path,
        bookings=bookings,
        violations=violations,
        metrics=metrics,
    )


def report(result: CallResult) -> str:
    record = result.record
    lines = [
        "",
        f"call {record.call_sid}: {record.status.value}, outcome {record.outcome.value if record.outcome else '-'}"
        f" (ended by {result.ended_by or 'the caller'})",
        f"  greeting latency {record.latencies.greeting_ms} ms; turn latency p50 {record.latencies.turn_p50_ms} ms;"
        f" tools {record.tool_call_count}; barge-ins {record.barge_in_count}",
        f"  tokens in/out {record.usage.input_audio_tokens + record.usage.input_text_tokens}/"
        f"{record.usage.output_audio_tokens + record.usage.output_text_tokens};"
        f" estimated cost ${record.estimated_cost_usd}",
        f"  transcript: s3://{result.transcripts_bucket}/{result.transcript_key}",
    ]
    for turn in result.turns:
        tools = "".join(f" [{tool.name} -> {tool.result}]" for tool in turn.tool_calls)
        cut = f" (interrupted after {turn.heard_ms} ms)" if turn.interrupted else ""
        lines.append(f"    {turn.index:>2} {turn.role.value:>6}: {turn.text}{cut}{tools}")
    if result.kept_data:
        lines.append(
            f"  data kept at {result.aws_endpoint}: table {result.calls_table}, bucket {result.transcripts_bucket}"
        )
    if result.violations:
        lines.append("  PROTOCOL VIOLATIONS: " + "; ".join(result.violations))
    lines.append(f"run: {result.run_seconds:.1f} s from start-up to the records read back ({result.model} model)")
    lines.append(f"audio: {result.audio_path}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--model",
        choices=["spoken", "scripted"],
        default="spoken",
        help="spoken: the offline voice model and a talking caller (default); scripted: tones and scripted answers",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=DEFAULT_PROFILE,
        help=f"the receptionist profile the call runs on; the call dials its first number (default {DEFAULT_PROFILE})",
    )
    parser.add_argument("--audio", type=Path, help=f"where to write the call's stereo WAV (default {RECORDINGS_DIR}/)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    try:
        options = StackOptions.for_profile(args.profile, model=args.model)
    except ProfileError as error:
        parser.exit(2, f"{error}\n")
    result = asyncio.run(run_call(model=args.model, verbose=not args.quiet, audio_path=args.audio, options=options))
    print(report(result))
    return 1 if result.violations or result.record.outcome is None else 0


if __name__ == "__main__":
    sys.exit(main())
