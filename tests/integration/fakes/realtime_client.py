"""A tiny ad-hoc Realtime client for the fake's own tests (never the relay: the fakes are tested on their own)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.fakes.openai_realtime import FakeRealtimeServer

PCMU_SESSION: dict[str, Any] = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "instructions": "Answer the phone for the test clinic.",
        "audio": {
            "input": {"format": {"type": "audio/pcmu"}, "transcription": {"model": "gpt-4o-transcribe"}},
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
        },
    },
}


class RealtimeTestClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.received.append(json.loads(message.data))
                self._arrived.set()
        self._arrived.set()

    async def send(self, event: dict[str, Any] | str) -> None:
        await self.ws.send_str(event if isinstance(event, str) else json.dumps(event))

    async def append(self, audio: bytes) -> None:
        await self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()})

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.received if event["type"] == event_type]

    async def next(
        self, event_type: str, predicate: Callable[[dict[str, Any]], bool] | None = None, *, nth: int = 1
    ) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                matches = [e for e in self.of_type(event_type) if predicate is None or predicate(e)]
                if len(matches) >= nth:
                    return matches[nth - 1]
                if self.ws.closed and self._reader.done():
                    raise AssertionError(f"socket closed before {event_type} #{nth}; got {self.types()}")
                self._arrived.clear()
                await self._arrived.wait()

    def types(self) -> list[str]:
        return [event["type"] for event in self.received]

    async def closed(self) -> None:
        async with asyncio.timeout(5):
            await self._reader


async def open_client(
    http: aiohttp.ClientSession, server: FakeRealtimeServer, *, configure: bool = True
) -> RealtimeTestClient:
    ws = await http.ws_connect(server.url, headers={"Authorization": f"Bearer {server.api_key}"})
    client = RealtimeTestClient(ws)
    await client.next("session.created")
    if configure:
        await client.send(PCMU_SESSION)
        await client.next("session.updated")
    return client
