"""The spoken local call, as a test: the caller talks (synthesized speech, paced at real time through the fake Twilio
stream), the offline voice model hears it, answers through the relay's real tools and speaks. Recognition is noisy,
so the test checks outcomes, not exact words: what was recognised holds the script's key words, the booking exists
for the day and name that were spoken, the answer the caller talked over was cut where they did, and the recording
has speech on both sides, the agent's recognised back as naming the business."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("pocketsphinx", reason="the speech parts (.[voice]) are not installed")
pytest.importorskip("espeakng_loader", reason="the speech parts (.[voice]) are not installed")

import numpy as np

from callcore.models import CallOutcome, TurnRole
from local.call import SPOKEN_SCRIPT, report, run_call
from local.recording import read_stereo_wav
from local.stack import StackOptions
from local.voice_model.audio import mulaw_encode
from local.voice_model.grammar import Vocabulary
from local.voice_model.recognition import recogniser_for
from local.voice_model.turns import TurnDetector, TurnSettings


def speech_segments(samples: np.ndarray) -> list[bytes]:
    """The stretches of speech in one channel, as the model's own turn detection finds them (μ-law)."""
    audio = mulaw_encode(samples.astype(np.int16))
    detector = TurnDetector(TurnSettings.from_session({"type": "server_vad"}))
    segments, start = [], 0
    for event in detector.feed(audio):
        if event.kind == "started":
            start = event.audio_ms
        else:
            segments.append(audio[start * 8 : event.audio_ms * 8])
    return segments


async def test_a_spoken_call_is_heard_answered_booked_and_recorded(tmp_path: Path) -> None:
    options = StackOptions(model="spoken")
    result = await run_call(model="spoken", verbose=False, audio_path=tmp_path / "call.wav", options=options)
    assert result.model == "spoken", "the speech parts are installed, so the spoken model must have run"
    assert result.violations == []
    assert result.ended_by == "hangup"
    assert result.record.outcome is CallOutcome.COMPLETED_BY_AGENT

    # What the model recognised of the caller (the transcript in S3 holds that, not the script).
    heard = " ".join(turn.text for turn in result.turns if turn.role is TurnRole.CALLER)
    for key_word in ("hours", "book", "tomorrow", "ada", "goodbye"):
        assert key_word in heard.split(), f"{key_word!r} not recognised in {heard!r}"
    assert heard != " ".join(line.text for line in SPOKEN_SCRIPT)

    # The booking exists, for the spoken day (tomorrow, in the business's calendar) and name.
    tomorrow = (datetime.now(ZoneInfo(options.business_timezone)) + timedelta(days=1)).date().isoformat()
    assert [(booking.day, booking.name) for booking in result.bookings] == [(tomorrow, "Ada")]
    tools = [tool.name for turn in result.turns for tool in turn.tool_calls]
    assert tools[0] == "get_business_hours"
    assert "book_appointment" in tools
    assert tools[-1] == "end_call"

    # The caller talked over the long hours answer: that turn is marked and cut where they came in.
    interrupted = [turn for turn in result.turns if turn.interrupted]
    assert len(interrupted) == 1
    cut = interrupted[0]
    assert cut.role is TurnRole.AGENT
    assert cut.heard_ms is not None
    assert 0 < cut.heard_ms < 8000
    assert "how many people" not in cut.text
    assert result.record.barge_in_count == 1

    # The recording: speech on both sides; the agent's side, recognised back, names the business.
    assert report(result).splitlines()[-1] == f"audio: {result.audio_path}"
    caller, agent = (np.array(channel, dtype=np.int16) for channel in read_stereo_wav(result.audio_path))
    caller_speech, agent_speech = speech_segments(caller), speech_segments(agent)
    assert len(caller_speech) >= len(SPOKEN_SCRIPT)
    assert len(agent_speech) >= 4
    recogniser = recogniser_for(Vocabulary(business_name=options.business_name))
    greeting = recogniser.transcribe(agent_speech[0])
    assert "harbor bistro" in greeting, greeting
