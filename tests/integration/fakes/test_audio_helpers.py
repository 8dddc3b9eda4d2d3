"""μ-law helpers: the encoding is G.711, tones have the energy their amplitude says, silence has none."""

from __future__ import annotations

import math

import pytest

from tests.fakes.audio import encode_mulaw, mulaw_to_linear, rms, silence, tone


def test_lengths_are_8_bytes_per_ms() -> None:
    assert len(tone(20)) == 160
    assert len(silence(1000)) == 8000
    assert silence(5) == b"\xff" * 40


def test_silence_decodes_to_zero_and_a_tone_to_its_amplitude() -> None:
    assert rms(silence(100)) == 0
    assert rms(b"") == 0
    expected = 0.5 * 32767 / math.sqrt(2)
    assert rms(tone(100, amplitude=0.5)) == pytest.approx(expected, rel=0.03)
    assert rms(tone(100, amplitude=0.05)) == pytest.approx(expected / 10, rel=0.05)


def test_g711_reference_points() -> None:
    # Expected bytes as the retired `audioop.lin2ulaw` / `ulaw2lin` (the G.711 reference code) produce them.
    assert encode_mulaw([0, 32767, -32768, -1, 1000, -1000, 8000]) == bytes.fromhex("ff8000" + "7e" + "ce4ea0")
    assert mulaw_to_linear(bytes([0xFF, 0x80, 0x00, 0x7E])) == [0, 32124, -32124, -8]


def test_round_trip_error_is_within_the_segment_step() -> None:
    samples = list(range(-32000, 32000, 97))
    decoded = mulaw_to_linear(encode_mulaw(samples))
    for original, restored in zip(samples, decoded, strict=True):
        assert abs(original - restored) <= max(8, abs(original) // 16)


def test_amplitude_is_checked() -> None:
    with pytest.raises(ValueError, match="amplitude"):
        tone(10, amplitude=1.5)
