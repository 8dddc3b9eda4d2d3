"""A local call as one stereo WAV: the caller on the left, the agent on the right, each where it was on the line.

Both sides come from the fake Twilio's own record of the stream: the caller's `media` frames at their `timestamp`
(milliseconds since the stream started, as Twilio stamps them), and the agent's audio on the playback timeline, as
Twilio would have played it (a `clear` cuts what was still queued). Gaps are silence. 8 kHz, 16-bit linear PCM.
Standard library only, so the scripted call records too on a machine without the speech parts.
"""

from __future__ import annotations

import base64
import sys
import wave
from array import array
from pathlib import Path
from typing import TYPE_CHECKING

from tests.fakes.audio import BYTES_PER_MS, SAMPLE_RATE, mulaw_to_linear

if TYPE_CHECKING:
    from tests.fakes.twilio_media import FakeTwilioCall

NS_PER_SAMPLE = 1_000_000_000 // SAMPLE_RATE


def caller_track(phone: FakeTwilioCall) -> list[tuple[int, bytes]]:
    """(sample offset from the stream's start, μ-law) of every frame the caller sent."""
    frames = []
    for message in phone.events_sent:
        if message.get("event") == "media":
            media = message["media"]
            frames.append((int(media["timestamp"]) * BYTES_PER_MS, base64.b64decode(media["payload"])))
    return frames


def agent_track(phone: FakeTwilioCall) -> list[tuple[int, bytes]]:
    """(sample offset from the stream's start, μ-law) of every stretch of agent audio the caller heard."""
    if phone.start_sent_at is None:
        return []
    origin_ns = round(phone.start_sent_at * 1_000_000_000)
    return [
        (max(0, (segment.start_ns - origin_ns) // NS_PER_SAMPLE), segment.data[: segment.kept])
        for segment in phone.timeline.segments
        if segment.kept
    ]


def _lay(track: list[tuple[int, bytes]], length: int) -> array[int]:
    channel = array("h", bytes(2 * length))
    for offset, audio in track:
        samples = mulaw_to_linear(audio)[: max(0, length - offset)]
        channel[offset : offset + len(samples)] = array("h", samples)
    return channel


def write_stereo_wav(path: Path, caller: list[tuple[int, bytes]], agent: list[tuple[int, bytes]]) -> Path:
    length = max((offset + len(audio) for offset, audio in [*caller, *agent]), default=0)
    frames = array("h", bytes(4 * length))
    frames[0::2] = _lay(caller, length)
    frames[1::2] = _lay(agent, length)
    if sys.byteorder == "big":
        frames.byteswap()  # WAV samples are little-endian
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(frames.tobytes())
    return path


def read_stereo_wav(path: Path) -> tuple[array[int], array[int]]:
    """(caller, agent) samples of a recording written by `write_stereo_wav`."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 2 or wav.getsampwidth() != 2:
            raise ValueError(f"{path} is not a 16-bit stereo WAV")
        frames = array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        frames.byteswap()
    return frames[0::2], frames[1::2]
