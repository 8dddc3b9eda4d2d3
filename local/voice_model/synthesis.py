"""Speech synthesis with espeak-ng, loaded from the `espeakng-loader` wheel (the library and its voice data ship
inside it) or, failing that, from the system's `libespeak-ng` (Debian's `espeak-ng` package).

The binding is a small ctypes adapter over espeak-ng's documented C API (`speak_lib.h`): initialise for synchronous
synthesis, collect the 22.05 kHz samples through the synth callback, then resample to 8 kHz μ-law for the phone.
espeak-ng keeps one voice and one callback per process, so every synthesis runs under one lock.

espeak-ng also carries state from one utterance to the next: within a process the same text comes out a little
different each time (neither `espeak_ng_SetRandSeed` nor re-initialising resets it), while a new process always
starts the same. About one rendering in thirty of a caller's line is then heard wrong by the recogniser. Audio that
must be the same on every run (the caller's lines in the local call and the tests) is therefore rendered by
`speak_afresh`, as the first utterance of a process of its own, and kept for the rest of the run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from local.voice_model import SpeechUnavailable
from local.voice_model.audio import PHONE_RATE, Pcm, mulaw_encode, resample

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAMETER_RATE = 1
_PARAMETER_PITCH = 3
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice (`language+variant`) at a speaking rate (words per minute) and pitch (0-99)."""

    name: str
    words_per_minute: int = 160
    pitch: int = 50


def _library_and_data() -> tuple[str, bytes | None]:
    try:
        import espeakng_loader  # noqa: PLC0415 - optional: only the spoken model needs it

        return str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path()).encode()
    except ImportError:
        system = ctypes.util.find_library("espeak-ng")
        if system is None:
            raise SpeechUnavailable(
                "espeak-ng is not installed (pip install espeakng-loader, or apt-get install espeak-ng)"
            ) from None
        return system, None  # the system library finds its own data


class Synthesizer:
    """Text to 8 kHz μ-law speech. Thread-safe; build it once with `synthesizer()`."""

    def __init__(self) -> None:
        library_path, data_path = _library_and_data()
        try:
            self._lib = ctypes.CDLL(library_path)
        except OSError as error:
            raise SpeechUnavailable(f"espeak-ng cannot be loaded: {error}") from None
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise SpeechUnavailable(f"espeak-ng did not initialise (data at {data_path!r})")
        self._lock = threading.Lock()
        self._chunks: list[Pcm] = []
        self._callback = _SynthCallback(self._collect)  # kept referenced: the library calls it later
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples: ctypes._Pointer[ctypes.c_short], count: int, _events: int | None) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).astype(np.int16))
        return 0  # 0 = go on

    def speak(self, text: str, voice: Voice) -> bytes:
        """`text` spoken in `voice`, as 8 kHz μ-law (Twilio's and `audio/pcmu`'s format)."""
        encoded = text.encode("utf-8")
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.name.encode()) != _EE_OK:
                raise SpeechUnavailable(f"espeak-ng has no voice {voice.name!r}")
            self._lib.espeak_SetParameter(_PARAMETER_RATE, voice.words_per_minute, 0)
            self._lib.espeak_SetParameter(_PARAMETER_PITCH, voice.pitch, 0)
            self._chunks = []
            status = self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if status != _EE_OK:
            raise RuntimeError(f"espeak-ng could not speak {text[:40]!r} (status {status})")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return mulaw_encode(resample(samples, self.sample_rate, PHONE_RATE))


@cache
def synthesizer() -> Synthesizer:
    """The process's one synthesizer (espeak-ng's state is global). Raises SpeechUnavailable."""
    return Synthesizer()


_PROJECT_ROOT = Path(__file__).resolve().parents[2]


@cache
def speak_afresh(text: str, voice: Voice) -> bytes:
    """`text` in `voice` as `Synthesizer.speak` gives it, but the same bytes on every run: rendered as the first
    utterance of a new process (about 0.3 s), then cached for this one. Raises SpeechUnavailable."""
    command = [sys.executable, "-m", "local.voice_model.synthesis", voice.name, str(voice.words_per_minute),
               str(voice.pitch)]  # fmt: skip
    result = subprocess.run(  # noqa: S603 - this interpreter, this module; the text goes on stdin
        command, input=text.encode("utf-8"), capture_output=True, cwd=_PROJECT_ROOT, timeout=60, check=False
    )
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SpeechUnavailable(f"espeak-ng could not render {text[:40]!r}: {reason[-1] if reason else 'no reason'}")
    return result.stdout


def _speak_once(arguments: list[str]) -> int:
    """`python -m local.voice_model.synthesis VOICE WPM PITCH`: text on stdin, its μ-law speech on stdout."""
    name, words_per_minute, pitch = arguments
    text = sys.stdin.buffer.read().decode("utf-8")
    sys.stdout.buffer.write(synthesizer().speak(text, Voice(name, int(words_per_minute), int(pitch))))
    return 0


if __name__ == "__main__":
    sys.exit(_speak_once(sys.argv[1:]))
