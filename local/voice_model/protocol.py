"""The service side of the OpenAI Realtime GA protocol, as data and small rules both the offline voice model and the
tests' fake Realtime server follow: the session a connection starts with, how `session.update` merges into it, ids,
token accounting, and how a transcript is cut into deltas. Standard library only (the fake loads it without the
speech parts)."""

from __future__ import annotations

import copy
import math
import re
import secrets
import time
from typing import Any

SESSION_MAX_SECONDS = 3600
DEFAULT_INSTRUCTIONS = "You are a helpful, witty, and friendly AI. Your voice and personality should be warm."
PCMU_BYTES_PER_MS = 8  # audio/pcmu: 8 kHz, one byte a sample

# Token accounting published by OpenAI: caller audio ≈ 600 tokens/min, model audio ≈ 1200 tokens/min.
INPUT_AUDIO_TOKENS_PER_SECOND = 10
OUTPUT_AUDIO_TOKENS_PER_SECOND = 20
CHARS_PER_TEXT_TOKEN = 4

SERVER_VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: dict[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
# session.update merges these objects field by field; any other field is replaced whole.
_MERGED_SESSION_PATHS = frozenset({("audio",), ("audio", "input"), ("audio", "output")})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def default_session(session_id: str, model: str) -> dict[str, Any]:
    """The session object of a new connection, as `session.created` carries it."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "expires_at": int(time.time()) + SESSION_MAX_SECONDS,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
        },
    }


def _merge(base: dict[str, Any], update: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        child = (*path, key)
        if child in _MERGED_SESSION_PATHS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, child)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_session(session: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`session` after a partial `session.update`; a turn detection given in part gets its type's defaults."""
    merged = _merge(session, update, ())
    turn_detection = merged["audio"]["input"].get("turn_detection")
    if turn_detection is not None:
        defaults = SEMANTIC_VAD_DEFAULTS if turn_detection.get("type") == "semantic_vad" else SERVER_VAD_DEFAULTS
        merged["audio"]["input"]["turn_detection"] = {**defaults, **turn_detection}
    return merged


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TEXT_TOKEN)


def audio_tokens(size_bytes: int, tokens_per_second: int) -> int:
    """Tokens of `size_bytes` of pcmu audio."""
    return math.ceil(size_bytes / PCMU_BYTES_PER_MS / 1000 * tokens_per_second)


def split_words(text: str, parts: int) -> list[str]:
    """`text` cut at word boundaries into `parts` pieces (some may be empty) that join back to `text`."""
    words = re.findall(r"\S+\s*", text)
    if parts <= 1 or not words:
        return [text] + [""] * max(parts - 1, 0)
    return ["".join(words[len(words) * i // parts : len(words) * (i + 1) // parts]) for i in range(parts)]
