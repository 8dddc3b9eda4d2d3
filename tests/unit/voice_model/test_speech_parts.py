"""The offline speech parts, in process: μ-law and resampling with numpy, espeak-ng's speech, pocketsphinx's turn
detection and grammar-constrained recognition of the caller's script as the phone line carries it."""

from __future__ import annotations

import math

import pytest

np = pytest.importorskip("numpy", reason="the speech parts (.[voice]) are not installed")
pytest.importorskip("pocketsphinx", reason="the speech parts (.[voice]) are not installed")

from local.call import CALLER_VOICE, SPOKEN_SCRIPT  # noqa: E402
from local.voice_model.audio import BYTES_PER_MS, mulaw_decode, mulaw_encode, resample, silence  # noqa: E402
from local.voice_model.grammar import Vocabulary, build_grammar  # noqa: E402
from local.voice_model.recognition import dictionary_words, recogniser_for  # noqa: E402
from local.voice_model.server import AGENT_VOICES  # noqa: E402
from local.voice_model.synthesis import Voice, speak_afresh, synthesizer  # noqa: E402
from local.voice_model.turns import TurnDetector, TurnSettings  # noqa: E402
from tests.fakes.audio import encode_mulaw, mulaw_to_linear, tone  # noqa: E402

VOCABULARY = Vocabulary(business_name="Harbor Bistro")


def test_mulaw_matches_the_g711_reference_bit_for_bit() -> None:
    every_sample = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    assert mulaw_encode(every_sample) == encode_mulaw(every_sample.tolist())
    every_code = bytes(range(256))
    assert mulaw_decode(every_code).tolist() == mulaw_to_linear(every_code)


def test_resampling_keeps_the_pitch_and_the_duration() -> None:
    rate = 22050
    samples = (np.sin(2 * math.pi * 440 * np.arange(rate) / rate) * 12000).astype(np.int16)
    phone = resample(samples, rate, 8000)
    assert phone.size == 8000
    spectrum = np.abs(np.fft.rfft(phone.astype(np.float64)))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 s of audio: bin n is n Hz


def turns_in(audio: bytes) -> list[bytes]:
    detector = TurnDetector(TurnSettings.from_session({"type": "server_vad", "silence_duration_ms": 500}))
    segments, start = [], 0
    for event in detector.feed(audio):
        if event.kind == "started":
            start = event.audio_ms
        else:
            segments.append(audio[start * BYTES_PER_MS : event.audio_ms * BYTES_PER_MS])
    return segments


@pytest.mark.parametrize("line", [line.text for line in SPOKEN_SCRIPT])
def test_each_line_of_the_callers_script_is_one_turn_recognised_word_for_word(line: str) -> None:
    audio = silence(400) + speak_afresh(line, Voice(CALLER_VOICE)) + silence(900)
    segments = turns_in(audio)
    assert len(segments) == 1
    expected = " ".join(line.lower().replace(",", "").replace(".", "").replace("?", "").split())
    assert recogniser_for(VOCABULARY).transcribe(segments[0]) == expected


def test_the_agents_greeting_is_recognised_back_with_the_business_name() -> None:
    greeting = "Thanks for calling Harbor Bistro. This is the virtual assistant. How can I help you today?"
    audio = silence(300) + speak_afresh(greeting, AGENT_VOICES["marin"]) + silence(900)
    assert "thanks for calling harbor bistro" in recogniser_for(VOCABULARY).transcribe(turns_in(audio)[0])


def test_silence_and_a_steady_tone_are_no_turn() -> None:
    assert turns_in(silence(2000)) == []
    assert turns_in(silence(300) + tone(1500, 220, 0.6) + silence(900)) == []


def test_speech_is_telephone_audio_of_the_right_length() -> None:
    audio = synthesizer().speak("Goodbye!", AGENT_VOICES["marin"])
    assert 300 * BYTES_PER_MS < len(audio) < 2000 * BYTES_PER_MS


def test_the_grammar_keeps_only_words_the_dictionary_can_say() -> None:
    grammar = build_grammar(Vocabulary(business_name="Harbor Bistro Qxzzy"), dictionary_words())
    assert "harbor bistro" in grammar
    assert "qxzzy" not in grammar


def test_a_line_rendered_afresh_is_the_same_audio_every_time_though_the_synthesizer_drifts() -> None:
    voice = Voice(CALLER_VOICE)
    synthesizer().speak("Something else first.", voice)
    drifting = {synthesizer().speak("Yes please, my name is Ada.", voice) for _ in range(3)}
    assert len(drifting) > 1  # why speak_afresh exists: if espeak-ng stops drifting, it can go
    speak_afresh.cache_clear()
    first = speak_afresh("Yes please, my name is Ada.", voice)
    speak_afresh.cache_clear()
    assert speak_afresh("Yes please, my name is Ada.", voice) == first
