"""G.711 μ-law audio helpers for tests: 8 kHz, one byte per sample, so 8 bytes = 1 ms and a Twilio frame (20 ms) is
160 bytes. Pure Python because `audioop` is gone from Python 3.13."""

from __future__ import annotations

import math

SAMPLE_RATE = 8000
BYTES_PER_MS = SAMPLE_RATE // 1000
SILENCE_BYTE = 0xFF  # μ-law of 0: what Twilio sends for a silent line

_BIAS = 0x84
_CLIP_14BIT = 8159


def _encode_sample(sample: int) -> int:
    """One 16-bit linear sample to μ-law, bit-exact with the ITU-T G.711 reference (and the old `audioop`)."""
    value = sample >> 2  # G.711 works on 14-bit samples
    mask = 0xFF
    if value < 0:
        value = -value
        mask = 0x7F
    value = min(value, _CLIP_14BIT) + (_BIAS >> 2)
    segment = max(value.bit_length() - 6, 0)
    if segment > 7:  # full scale: the top code of the top segment
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def _decode_byte(byte: int) -> int:
    inverted = ~byte & 0xFF
    exponent = (inverted >> 4) & 0x07
    magnitude = (((inverted & 0x0F) << 3) + _BIAS) << exponent
    magnitude -= _BIAS
    return -magnitude if inverted & 0x80 else magnitude


# Decoding is on the fake VAD's hot path (every appended byte): a lookup table keeps it cheap.
_DECODE_TABLE: tuple[int, ...] = tuple(_decode_byte(byte) for byte in range(256))


def ms_to_bytes(ms: float) -> int:
    return round(ms * BYTES_PER_MS)


def bytes_to_ms(size: int) -> float:
    return size / BYTES_PER_MS


def encode_mulaw(samples: list[int]) -> bytes:
    """16-bit linear PCM samples (clipped to the μ-law range) to μ-law bytes."""
    return bytes(_encode_sample(max(-32768, min(32767, sample))) for sample in samples)


def mulaw_to_linear(data: bytes) -> list[int]:
    """μ-law bytes to 16-bit linear PCM samples."""
    table = _DECODE_TABLE
    return [table[byte] for byte in data]


def rms(data: bytes) -> float:
    """Root mean square of the decoded samples (0 for empty input); full scale is 32767."""
    if not data:
        return 0.0
    table = _DECODE_TABLE
    return math.sqrt(sum(table[byte] * table[byte] for byte in data) / len(data))


def tone(ms: float, freq: float = 440.0, amplitude: float = 0.5) -> bytes:
    """A sine wave of `ms` milliseconds at `freq` Hz; `amplitude` is a fraction of full scale (0..1)."""
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError(f"amplitude must be between 0 and 1, got {amplitude}")
    count = ms_to_bytes(ms)
    peak = amplitude * 32767
    step = 2 * math.pi * freq / SAMPLE_RATE
    return encode_mulaw([round(peak * math.sin(step * index)) for index in range(count)])


def silence(ms: float) -> bytes:
    return bytes([SILENCE_BYTE]) * ms_to_bytes(ms)
