"""One model response on the wire: `response.created`, then the output items (speech streamed as audio deltas with
their transcript, or a function call with its arguments), then `response.done` with its usage. A cancelled response
(`response.cancel`, or the caller speaking over it) stops at its next event, closes what it had opened and ends
`cancelled`, as the service does."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from local.voice_model.audio import BYTES_PER_MS
from local.voice_model.conversation import Conversation, Item
from local.voice_model.protocol import (
    INPUT_AUDIO_TOKENS_PER_SECOND,
    OUTPUT_AUDIO_TOKENS_PER_SECOND,
    audio_tokens,
    new_id,
    split_words,
    text_tokens,
)

CHUNK_MS = 200  # audio per response.output_audio.delta

Send = Callable[[dict[str, Any]], Awaitable[None]]


class ResponseCancelled(Exception):
    """Unwinds a response at its next event once it was cancelled."""


@dataclass
class Response:
    id: str
    in_conversation: bool
    metadata: dict[str, Any] | None
    send: Send
    conversation_id: str | None = None  # set when the response belongs to the default conversation
    by_turn_detection: bool = False
    cancelled: bool = False
    cancel_reason: str = "client_cancelled"
    output: list[Item] = field(default_factory=list)
    open_parts: list[dict[str, Any]] = field(default_factory=list)  # closing events still owed for the open item
    task: asyncio.Task[None] | None = None
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    output_text: str = ""
    output_audio_bytes: int = 0

    async def emit(self, event: dict[str, Any]) -> None:
        if self.cancelled:
            raise ResponseCancelled
        await self.send(event)

    def wire(self, status: str, *, voice: str, output_format: dict[str, Any], details: Any = None) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": details,
            "output": [item.wire() for item in self.output],
            "conversation_id": self.conversation_id,
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": output_format, "voice": voice}},
            "usage": self.usage() if status != "in_progress" else None,
            "metadata": self.metadata,
        }

    def usage(self) -> dict[str, Any]:
        output_audio = audio_tokens(self.output_audio_bytes, OUTPUT_AUDIO_TOKENS_PER_SECOND)
        output_text = text_tokens(self.output_text)
        input_total = self.input_text_tokens + self.input_audio_tokens
        return {
            "total_tokens": input_total + output_audio + output_text,
            "input_tokens": input_total,
            "output_tokens": output_audio + output_text,
            "input_token_details": {
                "text_tokens": self.input_text_tokens,
                "audio_tokens": self.input_audio_tokens,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
        }

    def count_input(self, instructions: str, items: list[Item]) -> None:
        """What the model reads for this response: the instructions and the whole conversation, every turn."""
        self.input_text_tokens = text_tokens(instructions)
        for item in items:
            if item.type == "message" and item.role == "user" and item.audio:
                self.input_audio_tokens += audio_tokens(len(item.audio), INPUT_AUDIO_TOKENS_PER_SECOND)
            elif item.spoken:
                self.input_audio_tokens += audio_tokens(item.audio_ms * BYTES_PER_MS, OUTPUT_AUDIO_TOKENS_PER_SECOND)
            else:
                self.input_text_tokens += text_tokens(item.text)


class ResponseWriter:
    """Puts a response's output items on the wire, and into the conversation when the response belongs to it."""

    def __init__(self, response: Response, conversation: Conversation) -> None:
        self.response = response
        self.conversation = conversation

    def _add(self, item: Item) -> tuple[int, str | None]:
        self.response.output.append(item)
        previous = self.conversation.insert(item, None) if self.response.in_conversation else None
        return len(self.response.output) - 1, previous

    async def _added(self, item: Item, index: int, previous: str | None) -> None:
        response = self.response
        await response.emit({"type": "response.output_item.added", "response_id": response.id,
                             "output_index": index, "item": item.wire()})  # fmt: skip
        if response.in_conversation:
            await response.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item.wire()})

    async def _done(self, item: Item, index: int, previous: str | None) -> None:
        item.status = "completed"
        response = self.response
        await response.emit({"type": "response.output_item.done", "response_id": response.id,
                             "output_index": index, "item": item.wire()})  # fmt: skip
        if response.in_conversation:
            await response.emit({"type": "conversation.item.done", "previous_item_id": previous, "item": item.wire()})

    async def speak(self, text: str, audio: bytes) -> None:
        response = self.response
        item = Item(id=new_id("item"), type="message", role="assistant", status="in_progress", spoken=True)
        index, previous = self._add(item)
        await self._added(item, index, previous)
        where = {"response_id": response.id, "item_id": item.id, "output_index": index, "content_index": 0}
        await response.emit({"type": "response.content_part.added", **where,
                             "part": {"type": "audio", "transcript": ""}})  # fmt: skip
        response.open_parts = [
            {"type": "response.output_audio.done", **where},
            {"type": "response.output_audio_transcript.done", **where, "transcript": ""},
            {"type": "response.content_part.done", **where, "part": {"type": "audio", "transcript": ""}},
        ]
        chunk = CHUNK_MS * BYTES_PER_MS
        chunks = [audio[offset : offset + chunk] for offset in range(0, len(audio), chunk)]
        for piece, words in zip(chunks, split_words(text, len(chunks)), strict=True):
            await response.emit({"type": "response.output_audio.delta", **where,
                                 "delta": base64.b64encode(piece).decode("ascii")})  # fmt: skip
            item.audio += piece
            response.output_audio_bytes += len(piece)
            if words:
                await response.emit({"type": "response.output_audio_transcript.delta", **where, "delta": words})
                item.text += words
                response.output_text += words
            await asyncio.sleep(0)  # let a cancel or the caller's audio in between deltas
        item.text = text
        await self.close_open_parts(item)
        await self._done(item, index, previous)

    async def close_open_parts(self, item: Item) -> None:
        parts, self.response.open_parts = self.response.open_parts, []
        for event in parts:
            if "transcript" in event:
                event["transcript"] = item.text
            if "part" in event:
                event["part"]["transcript"] = item.text
            await self.response.send(event)

    async def call(self, name: str, arguments: dict[str, Any]) -> None:
        response = self.response
        text = json.dumps(arguments)
        item = Item(id=new_id("item"), type="function_call", status="in_progress", call_id=new_id("call"), name=name)
        index, previous = self._add(item)
        await self._added(item, index, previous)
        where = {"response_id": response.id, "item_id": item.id, "output_index": index, "call_id": item.call_id}
        await response.emit({"type": "response.function_call_arguments.delta", **where, "delta": text})
        item.text = text
        response.output_text += text
        await response.emit({"type": "response.function_call_arguments.done", **where, "name": name, "arguments": text})
        await self._done(item, index, previous)

    async def close_cancelled(self) -> None:
        """What the service sends for a cut-off item: its open parts closed, the item marked incomplete."""
        response = self.response
        if not response.output:
            return
        item = response.output[-1]
        if item.status != "in_progress":
            return
        await self.close_open_parts(item)
        item.status = "incomplete"
        index = len(response.output) - 1
        await response.send({"type": "response.output_item.done", "response_id": response.id,
                             "output_index": index, "item": item.wire()})  # fmt: skip
        if response.in_conversation:
            await response.send({"type": "conversation.item.done", "item": item.wire()})
