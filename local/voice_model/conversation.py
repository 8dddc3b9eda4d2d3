"""The session's conversation: items as the service keeps them, their wire form, and their order."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from local.voice_model.audio import BYTES_PER_MS
from local.voice_model.intent import Turn
from local.voice_model.protocol import new_id


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
