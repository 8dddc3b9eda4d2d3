"""The softphone server's socket, driven as the page drives it (no browser): an outbound call placed through
`POST /calls` connects the page, the stored turns reach it, the keypad and hang-up work, and the summary is read from
the call record. Only the page's own origin may open the socket."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from local.phone.server import create_phone_app
from local.stack import LocalStack, StackOptions, local_stack, serve
from tests.fakes.audio import tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FunctionCallResponse

CALLEE = "+15550100123"


@pytest.fixture
async def phone() -> AsyncIterator[tuple[LocalStack, str]]:
    async with local_stack(StackOptions(model="scripted"), say=lambda *_: None) as stack:
        app = create_phone_app(stack, model_description="scripted", profile="example")
        async with serve(app) as origin:
            yield stack, origin


async def receive_until(ws: aiohttp.ClientWebSocketResponse, kind: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            message = await ws.receive_json()
            seen.append(message)
            if message["type"] == "mark":  # play it at once, as a browser with nothing queued would
                await ws.send_json({"type": "played", "mark": message["name"], "playedBytes": 0})
            if message["type"] == kind:
                return message


async def test_an_outbound_call_reaches_the_page_and_hangs_up_with_the_records_outcome(
    phone: tuple[LocalStack, str],
) -> None:
    stack, origin = phone
    seen: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{origin}/phone", origin=origin) as ws:
        await ws.send_json({"type": "dial", "direction": "outbound", "number": CALLEE, "context": "a table booked"})
        connected = await receive_until(ws, "connected", seen)
        assert connected["direction"] == "outbound"
        call_sid = connected["callSid"]
        await receive_until(ws, "media", seen)  # the agent's opening line, for the page to play
        greeting = await receive_until(ws, "turn", seen)
        assert greeting["role"] == "agent"
        silence = base64.b64encode(bytes([0xFF]) * 160).decode()
        await ws.send_json({"type": "media", "payload": silence})
        await ws.send_json({"type": "dtmf", "digit": "5"})
        await ws.send_json({"type": "hangup"})
        summary = await receive_until(ws, "summary", seen)
    assert summary["callSid"] == call_sid
    assert (summary["direction"], summary["status"], summary["outcome"]) == ("outbound", "completed", "caller_hung_up")
    assert summary["marksEchoed"] >= 1
    record = stack.store.require_call(call_sid)
    assert record.to_number == CALLEE
    create = next(request for request in stack.network.requests if request.value("To") == CALLEE)
    assert (create.value("Url") or "").endswith("/twilio/incoming?direction=outbound")  # what the gateway answered
    assert [message for message in seen if message["type"] == "error"] == []
    assert record.outcome is not None
    assert record.outcome.value == summary["outcome"]


async def test_the_agents_hang_up_reaches_the_page_as_it_happens(phone: tuple[LocalStack, str]) -> None:
    stack, origin = phone
    model: FakeRealtimeServer = stack.model  # type: ignore[assignment]
    model.script(
        FunctionCallResponse("end_call", {"reason": "the caller said goodbye"}),
        AudioResponse(tone(600, 600), "Goodbye!"),
    )
    seen: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{origin}/phone", origin=origin) as ws:
        await ws.send_json({"type": "dial", "direction": "inbound", "number": CALLEE})
        await receive_until(ws, "connected", seen)
        await receive_until(ws, "turn", seen)  # the greeting, stored
        said = tone(800, 220, 0.6) + bytes([0xFF]) * 8000  # a line, then a second of silence
        for offset in range(0, len(said), 160):
            await ws.send_json({"type": "media", "payload": base64.b64encode(said[offset : offset + 160]).decode()})
            await asyncio.sleep(0.02)
        line = await receive_until(ws, "line", seen)
        summary = await receive_until(ws, "summary", seen)
    assert line["event"] == "hangup"
    tools = [tool["name"] for message in seen if message["type"] == "turn" for tool in message["tools"]]
    assert tools == ["end_call"]
    assert (summary["endedBy"], summary["outcome"]) == ("hangup", "completed_by_agent")


async def test_a_number_that_is_not_e164_is_refused_with_a_reason(phone: tuple[LocalStack, str]) -> None:
    _, origin = phone
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{origin}/phone", origin=origin) as ws:
        await ws.send_json({"type": "dial", "direction": "inbound", "number": "5550100"})
        error = await ws.receive_json()
    assert error["type"] == "error"
    assert "E.164" in error["message"]


async def test_only_the_pages_own_origin_may_open_the_phone(phone: tuple[LocalStack, str]) -> None:
    _, origin = phone
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{origin}/phone", origin="http://evil.example")
    assert refused.value.status == 403
