"""Opening a model session is bounded in time and never leaks a socket, whatever happens during the handshake."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from relay.app import http_session
from relay.realtime import RealtimeConnectError, RealtimeConnection
from tests.fakes.openai_realtime import FakeRealtimeServer
from tests.integration.relay_clients.conftest import eventually

API_KEY = "test-openai-key"


def reader_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "realtime-standby" and not task.done()]


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


# ---- reading a session: a standby reader while nobody reads it, then straight off the socket ----------------------


class ScriptedModel:
    """A model endpoint that sends `session.created`, then whatever the test pushes, and closes when told."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.connected = asyncio.Event()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "session.created", "session": {"id": "sess_1"}})
        self.connected.set()
        while (event := await self.outbox.get()) is not None:
            await ws.send_json(event)
        await ws.close()
        return ws

    async def push(self, *indexes: int) -> None:
        for index in indexes:
            await self.outbox.put({"type": "response.output_audio.delta", "index": index})


@pytest.fixture
async def scripted(aiohttp_server: Any) -> tuple[ScriptedModel, str]:
    model = ScriptedModel()
    app = web.Application()
    app.router.add_get("/v1/realtime", model.handle)
    server = await aiohttp_server(app)
    return model, str(server.make_url("/v1/realtime")).replace("http://", "ws://")


async def test_events_read_while_nobody_read_come_first_then_the_rest_in_order_with_no_task_between(
    http: aiohttp.ClientSession, scripted: tuple[ScriptedModel, str]
) -> None:
    model, url = scripted
    connection = await RealtimeConnection.connect(http, url, API_KEY)
    await model.push(0, 1, 2)
    await eventually(lambda: connection.has_unread_events)  # the standby reader has read (a session in the pool)
    assert len(reader_tasks()) == 1

    first = await connection.receive()
    assert reader_tasks() == []  # from the first receive on, the reader is the caller itself
    await model.push(3, 4)
    rest = [await connection.receive() for _ in range(4)]
    assert [e["index"] for e in [first, *rest] if e is not None] == [0, 1, 2, 3, 4]
    await connection.close()


async def test_a_session_nobody_reads_notices_the_server_closing_it(
    http: aiohttp.ClientSession, scripted: tuple[ScriptedModel, str]
) -> None:
    model, url = scripted
    connection = await RealtimeConnection.connect(http, url, API_KEY)
    assert connection.alive
    await model.outbox.put(None)
    await eventually(lambda: not connection.alive)
    assert await connection.receive() is None
    await connection.close()


async def test_a_detached_session_hands_its_reader_nothing_more_and_lets_it_go_when_closed(
    http: aiohttp.ClientSession, scripted: tuple[ScriptedModel, str]
) -> None:
    model, url = scripted
    connection = await RealtimeConnection.connect(http, url, API_KEY)
    await model.push(0)
    assert (await connection.receive() or {}).get("index") == 0
    parked = asyncio.create_task(connection.receive())
    await eventually(lambda: not connection.has_unread_events)  # parked on the socket: everything that came was handled
    connection.detach()  # the call moved to another session
    await model.push(1)  # arrives after the switch: never handled as the call's
    await connection.close(grace_seconds=1.0)
    assert await asyncio.wait_for(parked, 5) is None
    assert await connection.receive() is None


async def test_a_reader_handling_an_event_counts_as_events_unread(
    http: aiohttp.ClientSession, scripted: tuple[ScriptedModel, str]
) -> None:
    """A rotation switches only when the reader is parked on the socket: while it handles an event, more may follow."""
    model, url = scripted
    connection = await RealtimeConnection.connect(http, url, API_KEY)
    await model.push(0)
    await eventually(lambda: connection.has_unread_events)  # read by the standby reader, not received
    assert await connection.receive() is not None
    assert connection.has_unread_events  # received, being handled: the reader is not back on the socket
    parked = asyncio.create_task(connection.receive())
    await eventually(lambda: not connection.has_unread_events)
    await model.push(1)
    assert (await asyncio.wait_for(parked, 5) or {}).get("index") == 1
    await connection.close()


async def test_the_relays_client_holds_a_model_session_for_every_call_beyond_a_hundred() -> None:
    """aiohttp caps a client at 100 connections by default: the 101st call's model session would wait for a free
    one and time out, and the caller would be handed over with the task far from its capacity."""
    calls = 120
    async with FakeRealtimeServer(api_key=API_KEY) as server, http_session() as http:
        sessions = await asyncio.gather(
            *(RealtimeConnection.connect(http, server.url, API_KEY, connect_timeout=5.0) for _ in range(calls))
        )
        assert all(session.alive for session in sessions)
        await asyncio.gather(*(session.close() for session in sessions))
