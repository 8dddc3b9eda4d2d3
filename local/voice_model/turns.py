"""Server turn detection, as `server_vad` describes it: speech starts after enough voiced frames in a row (reported
`prefix_padding_ms` earlier), and ends after `silence_duration_ms` of unvoiced ones. Frames are classified by
pocketsphinx's VAD; positions count the audio received (8 bytes = 1 ms), never the wall clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from local.voice_model.audio import BYTES_PER_MS
from local.voice_model.recognition import VoiceActivity

MIN_SPEECH_MS = 120  # voiced audio in a row before it counts as the caller speaking (a click or a cough does not)
# semantic_vad has no silence setting; its eagerness says how long a pause ends the turn.
SEMANTIC_SILENCE_MS = {"low": 1200, "medium": 800, "high": 400, "auto": 800}


@dataclass(frozen=True)
class TurnEvent:
    kind: Literal["started", "stopped"]
    audio_ms: int  # audio_start_ms (prefix padding included) or audio_end_ms (the closing silence included)


@dataclass(frozen=True)
class TurnSettings:
    aggressiveness: int
    prefix_padding_ms: int
    silence_duration_ms: int

    @classmethod
    def from_session(cls, turn_detection: dict[str, Any]) -> TurnSettings:
        """From a session's `audio.input.turn_detection`: the threshold (0..1) picks the VAD's aggressiveness."""
        if turn_detection.get("type") == "semantic_vad":
            eagerness = str(turn_detection.get("eagerness") or "auto")
            return cls(2, 300, SEMANTIC_SILENCE_MS.get(eagerness, 800))
        threshold = float(turn_detection.get("threshold") or 0.5)
        return cls(
            aggressiveness=min(3, int(threshold * 4)),
            prefix_padding_ms=int(turn_detection.get("prefix_padding_ms") or 300),
            silence_duration_ms=int(turn_detection.get("silence_duration_ms") or 500),
        )


class TurnDetector:
    def __init__(self, settings: TurnSettings, *, position_ms: int = 0) -> None:
        self.settings = settings
        self.speaking = False
        self._vad = VoiceActivity(settings.aggressiveness)
        self._frame_bytes = self._vad.frame_samples  # μ-law: one byte per sample
        self._frame_ms = self._frame_bytes // BYTES_PER_MS
        self._pending = b""
        self._position_ms = position_ms
        self._voiced_since_ms: int | None = None
        self._silence_ms = 0

    def feed(self, audio: bytes) -> list[TurnEvent]:
        data = self._pending + audio
        usable = len(data) - len(data) % self._frame_bytes
        self._pending = data[usable:]
        events: list[TurnEvent] = []
        for offset in range(0, usable, self._frame_bytes):
            voiced = self._vad.is_speech(data[offset : offset + self._frame_bytes])
            frame_start = self._position_ms
            self._position_ms += self._frame_ms
            if not self.speaking:
                if not voiced:
                    self._voiced_since_ms = None
                    continue
                if self._voiced_since_ms is None:
                    self._voiced_since_ms = frame_start
                if self._position_ms - self._voiced_since_ms >= MIN_SPEECH_MS:
                    self.speaking = True
                    self._silence_ms = 0
                    events.append(TurnEvent("started", max(0, self._voiced_since_ms - self.settings.prefix_padding_ms)))
            elif voiced:
                self._silence_ms = 0
            else:
                self._silence_ms += self._frame_ms
                if self._silence_ms >= self.settings.silence_duration_ms:
                    self.speaking = False
                    self._voiced_since_ms = None
                    events.append(TurnEvent("stopped", self._position_ms))
        return events
