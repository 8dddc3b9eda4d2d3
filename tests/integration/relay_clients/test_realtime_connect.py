"""Opening a model session is bounded in time and never leaks a socket, whatever happens during the handshake."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from relay.realtime import RealtimeConnectError, RealtimeConnection
from tests.fakes.openai_realtime import FakeRealtimeServer

API_KEY = "test-openai-key"


def reader_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "realtime-reader" and not task.done()]


async def test_a_handshake_that_hangs_fails_within_the_connect_timeout(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(api_key=API_KEY, connect_delay=5.0) as server:
        with pytest.raises(RealtimeConnectError):
            await RealtimeConnection.connect(http, server.url, API_KEY, connect_timeout=0.2)
    assert reader_tasks() == []


async def test_cancelled_while_waiting_for_session_created_closes_the_socket(
    http: aiohttp.ClientSession, aiohttp_server: Any
) -> None:
    """The call ended (or the process stopped) while its model session was still opening: nothing may outlive it."""
    accepted = asyncio.Event()
    server_side_closed = asyncio.Event()

    async def silent_model(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        accepted.set()
        async for _message in ws:  # never sends session.created
            pass
        server_side_closed.set()
        return ws

    app = web.Application()
    app.router.add_get("/v1/realtime", silent_model)
    server = await aiohttp_server(app)
    url = str(server.make_url("/v1/realtime?model=gpt-realtime")).replace("http://", "ws://")
    opening = asyncio.create_task(RealtimeConnection.connect(http, url, API_KEY, connect_timeout=30.0))
    await asyncio.wait_for(accepted.wait(), 5)
    await asyncio.sleep(0.05)  # the client is now waiting for session.created
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    await asyncio.wait_for(server_side_closed.wait(), 5)
    assert reader_tasks() == []
