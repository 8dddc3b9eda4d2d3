"""Speech recognition with pocketsphinx and the US English model that ships inside its wheel, constrained by the
call's JSGF grammar (see `grammar.py`), and voice activity detection with pocketsphinx's WebRTC-derived VAD.

Telephone audio is 8 kHz μ-law; the acoustic model listens at 16 kHz, so the decoded samples are resampled up first
(the model hears no energy above 4 kHz, as on any phone line).
"""

from __future__ import annotations

import threading
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from local.voice_model import SpeechUnavailable
from local.voice_model.audio import PHONE_RATE, mulaw_decode, resample
from local.voice_model.grammar import Vocabulary, build_grammar, words_of

RECOGNISER_RATE = 16000
_GRAMMAR_NAME = "call"


def _pocketsphinx() -> Any:
    try:
        import pocketsphinx  # noqa: PLC0415 - optional: only the spoken model needs it
    except ImportError as error:
        raise SpeechUnavailable(f"pocketsphinx is not installed ({error}); pip install pocketsphinx") from None
    return pocketsphinx


@cache
def dictionary_words() -> frozenset[str]:
    """Every word the bundled pronunciation dictionary (CMUdict) can say, alternates folded."""
    path = Path(_pocketsphinx().get_model_path("en-us/cmudict-en-us.dict"))
    with path.open(encoding="utf-8") as lines:
        return frozenset(line.split(" ", 1)[0].split("(", 1)[0] for line in lines if line.strip())


class Recogniser:
    """One pocketsphinx decoder searching one grammar. Decoding is serialised: a decoder is not thread-safe."""

    def __init__(self, grammar: str) -> None:
        pocketsphinx = _pocketsphinx()
        self.grammar = grammar
        # Cepstral mean normalisation over each whole turn ("batch"), not carried over from the turns before
        # ("live"): what a turn is heard as then depends on that turn alone.
        self._decoder = pocketsphinx.Decoder(samprate=RECOGNISER_RATE, lm=None, loglevel="FATAL", cmn="batch")
        self._decoder.add_jsgf_string(_GRAMMAR_NAME, grammar)
        self._decoder.activate_search(_GRAMMAR_NAME)
        self._lock = threading.Lock()

    def transcribe(self, mulaw: bytes) -> str:
        """What was said in some 8 kHz μ-law audio, as lower-case words of the grammar ('' for nothing)."""
        samples = resample(mulaw_decode(mulaw), PHONE_RATE, RECOGNISER_RATE)
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(samples.tobytes(), no_search=False, full_utt=True)
            self._decoder.end_utt()
            hypothesis = self._decoder.hyp()
        return " ".join(words_of(hypothesis.hypstr)) if hypothesis is not None else ""


@lru_cache(maxsize=8)
def _recogniser(grammar: str) -> Recogniser:
    return Recogniser(grammar)


def recogniser_for(vocabulary: Vocabulary) -> Recogniser:
    """A recogniser for a call's vocabulary; sessions with the same vocabulary share one (loading takes ~0.3 s)."""
    return _recogniser(build_grammar(vocabulary, dictionary_words()))


class VoiceActivity:
    """Speech / non-speech for 30 ms frames of 8 kHz audio. `aggressiveness` 0 (loose) to 3 (strict)."""

    FRAME_MS = 30

    def __init__(self, aggressiveness: int) -> None:
        pocketsphinx = _pocketsphinx()
        self._vad = pocketsphinx.Vad(
            mode=max(0, min(3, aggressiveness)), sample_rate=PHONE_RATE, frame_length=self.FRAME_MS / 1000
        )
        self.frame_samples = int(self._vad.frame_bytes) // 2

    def is_speech(self, mulaw_frame: bytes) -> bool:
        speech: bool = self._vad.is_speech(mulaw_decode(mulaw_frame).tobytes())
        return speech


def check_speech_parts() -> None:
    """Raises SpeechUnavailable (saying which part and why) unless synthesis and recognition both load here."""
    from local.voice_model.synthesis import synthesizer  # noqa: PLC0415

    synthesizer()
    recogniser_for(Vocabulary())
