"""Telephone audio with numpy: G.711 μ-law at 8 kHz (what Twilio and `audio/pcmu` carry) to and from 16-bit linear
PCM, and resampling between the rates of the speech parts (espeak-ng speaks at 22.05 kHz, pocketsphinx's US English
model listens at 16 kHz). The standard library's `audioop` did this once; it is gone from Python 3.13."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PHONE_RATE = 8000  # Hz: μ-law telephone audio, one byte per sample, so 8 bytes = 1 ms
BYTES_PER_MS = PHONE_RATE // 1000
SILENCE_BYTE = 0xFF  # μ-law of 0

Pcm = npt.NDArray[np.int16]

_BIAS = 0x84
_CLIP_14BIT = 8159
_LOWPASS_TAPS = 101


def _decode_table() -> Pcm:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = ((((codes & 0x0F) << 3) + _BIAS) << exponent) - _BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


_DECODE = _decode_table()


def mulaw_decode(data: bytes) -> Pcm:
    """μ-law bytes to 16-bit linear samples (the G.711 table, as `audioop.ulaw2lin` had it)."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)]


def mulaw_encode(samples: Pcm) -> bytes:
    """16-bit linear samples to μ-law bytes, bit-exact with the ITU-T G.711 reference (and the old `audioop`): the
    sample taken to 14 bits, biased, then a 3-bit segment and 4-bit step, bits inverted."""
    value = samples.astype(np.int32) >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(value), _CLIP_14BIT) + (_BIAS >> 2)
    segment = np.maximum(np.floor(np.log2(value)).astype(np.int32) + 1 - 6, 0)
    code = np.where(
        segment > 7,
        0x7F ^ mask,
        ((np.minimum(segment, 7) << 4) | ((value >> (np.minimum(segment, 7) + 1)) & 0x0F)) ^ mask,
    )
    return code.astype(np.uint8).tobytes()


def _lowpass(signal: npt.NDArray[np.float64], cutoff: float) -> npt.NDArray[np.float64]:
    """A windowed-sinc FIR low-pass; `cutoff` is a fraction of the sampling rate (0..0.5)."""
    offsets = np.arange(_LOWPASS_TAPS) - (_LOWPASS_TAPS - 1) / 2
    taps = np.sinc(2 * cutoff * offsets) * np.hamming(_LOWPASS_TAPS)
    result: npt.NDArray[np.float64] = np.convolve(signal, taps / taps.sum(), mode="same")
    return result


def resample(samples: Pcm, source_rate: int, target_rate: int) -> Pcm:
    """Linear-interpolation resampling; going down, a low-pass first keeps what the lower rate cannot carry from
    folding back into the speech band."""
    if source_rate == target_rate or samples.size == 0:
        return samples.copy()
    signal = samples.astype(np.float64)
    if target_rate < source_rate:
        signal = _lowpass(signal, 0.45 * target_rate / source_rate)
    count = round(samples.size * target_rate / source_rate)
    positions = np.arange(count) * (source_rate / target_rate)
    resampled = np.interp(positions, np.arange(samples.size), signal)
    result: Pcm = np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
    return result


def silence(ms: int) -> bytes:
    """`ms` milliseconds of μ-law silence."""
    return bytes([SILENCE_BYTE]) * (ms * BYTES_PER_MS)


def peak_level(data: bytes) -> float:
    """The loudest sample of some μ-law audio as a fraction of full scale (0 for silence or nothing)."""
    if not data:
        return 0.0
    return float(np.abs(mulaw_decode(data).astype(np.int32)).max()) / 32768
