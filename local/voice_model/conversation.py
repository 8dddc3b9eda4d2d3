"""The session's conversation: items as the service keeps them, their wire form, and the session configuration
with the GA defaults (`session.update` is partial: `audio.input` and `audio.output` merge field by field)."""

from __future__ import annotations

import copy
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from local.voice_model.audio import BYTES_PER_MS
from local.voice_model.intent import Turn

SESSION_MAX_SECONDS = 3600
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
_MERGED = frozenset({("audio",), ("audio", "input"), ("audio", "output")})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def default_session(session_id: str, model: str) -> dict[str, Any]:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
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


def merge_session(base: dict[str, Any], update: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        child = (*path, key)
        if child in _MERGED and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_session(merged[key], value, child)
        else:
            merged[key] = copy.deepcopy(value)
    if path:
        return merged
    turn_detection = merged["audio"]["input"].get("turn_detection")
    if turn_detection is not None:
        defaults = SEMANTIC_VAD_DEFAULTS if turn_detection.get("type") == "semantic_vad" else SERVER_VAD_DEFAULTS
        merged["audio"]["input"]["turn_detection"] = {**defaults, **turn_detection}
    return merged


@dataclass
class Item:
    """One conversation item. `text` is what the stand-in reads: a user's recognised words, the assistant's
    transcript (cut at a truncation), a system or text message, a tool's arguments or output."""

    id: str
    type: str  # message | function_call | function_call_output
    role: str | None = None
    status: str = "completed"
    text: str = ""
    audio: bytes = b""
    content: list[dict[str, Any]] | None = None  # a client-created message's content, kept as sent
    call_id: str | None = None
    name: str | None = None
    truncated_ms: int | None = None
    recognised: bool = True  # False while a user turn is still being recognised
    spoken: bool = False  # an assistant item with an audio part (one the client may truncate)

    @property
    def audio_ms(self) -> int:
        heard = len(self.audio) // BYTES_PER_MS
        return heard if self.truncated_ms is None else min(heard, self.truncated_ms)

    def wire(self) -> dict[str, Any]:
        """The item as the service sends it."""
        wire: dict[str, Any] = {"id": self.id, "object": "realtime.item", "type": self.type, "status": self.status}
        if self.type == "message":
            wire["role"] = self.role
            if self.content is not None:
                wire["content"] = copy.deepcopy(self.content)
            elif self.role == "user":
                wire["content"] = [{"type": "input_audio", "transcript": self.text if self.recognised else None}]
            else:
                wire["content"] = [{"type": "output_audio", "transcript": self.text}] if self.spoken else []
        elif self.type == "function_call":
            wire.update(call_id=self.call_id, name=self.name, arguments=self.text)
        else:
            wire.update(call_id=self.call_id, output=self.text)
        return wire

    @classmethod
    def from_client(cls, sent: dict[str, Any]) -> Item:
        """An item a client created (`conversation.item.create`, or a response's out-of-band `input`)."""
        kind = sent["type"]
        item = cls(id=sent.get("id") or new_id("item"), type=kind)
        if kind == "message":
            item.role = sent["role"]
            item.content = copy.deepcopy(sent["content"])
            item.text = " ".join(
                str(part.get("text") or part.get("transcript") or "") for part in sent["content"]
            ).strip()
        elif kind == "function_call":
            item.call_id, item.name, item.text = sent["call_id"], sent["name"], sent["arguments"]
        else:
            item.call_id, item.text = sent["call_id"], sent["output"]
        return item


@dataclass
class Conversation:
    items: list[Item] = field(default_factory=list)

    def find(self, item_id: str) -> Item | None:
        return next((item for item in self.items if item.id == item_id), None)

    def insert(self, item: Item, previous_item_id: str | None) -> str | None:
        """Adds `item` after `previous_item_id` ("root": first; None: last); returns the id it now follows."""
        if previous_item_id == "root":
            self.items.insert(0, item)
            return None
        anchor = self.find(previous_item_id) if previous_item_id else None
        if anchor is None:
            previous = self.items[-1].id if self.items else None
            self.items.append(item)
            return previous
        self.items.insert(self.items.index(anchor) + 1, item)
        return anchor.id

    def call_ids(self) -> set[str]:
        return {item.call_id for item in self.items if item.type == "function_call" and item.call_id}

    def turns(self, items: list[Item] | None = None) -> tuple[Turn, ...]:
        """The items as the intent layer reads them; a tool's output carries the name of the call it answers."""
        names = {item.call_id: item.name or "" for item in self.items if item.type == "function_call"}
        turns: list[Turn] = []
        for item in self.items if items is None else items:
            if item.type == "function_call":
                turns.append(Turn("function_call", item.text, item.name or ""))
            elif item.type == "function_call_output":
                turns.append(Turn("function_call_output", item.text, names.get(item.call_id, "")))
            elif item.role in {"user", "assistant", "system"}:
                turns.append(Turn(item.role, item.text))  # type: ignore[arg-type]
        return tuple(turns)
