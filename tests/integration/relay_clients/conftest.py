from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakePeer:
    """A scripted HTTP peer on 127.0.0.1: answers each request with the next scripted reply (the last one repeats)
    and records what it received."""

    replies: list[web.StreamResponse | Any] = field(default_factory=list)
    received: list[Recorded] = field(default_factory=list)
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Recorded(request.method, request.path, dict(request.query), dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.replies[min(len(self.received), len(self.replies)) - 1] if self.replies else None
        if callable(reply):
            result: web.StreamResponse = reply(request)
            return result
        if isinstance(reply, web.StreamResponse):
            return reply
        return web.json_response({"ok": True})


def json_reply(body: Any, status: int = 200) -> Any:
    # A fresh response per request: aiohttp responses cannot be sent twice.
    return lambda _request: web.json_response(body, status=status)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds: for state the code under test changes in its own background task."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - the state has no event of its own to wait on
            await asyncio.sleep(0.001)
