"""The booking tools against a scripted business API on 127.0.0.1, through ToolRegistry.run as the session calls it."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from callcore.store import CallStore
from relay.settings import RelaySettings
from relay.tools import ToolContext, ToolRegistry

from .conftest import FakePeer, json_reply

CALL_SID = "CA" + "c3" * 16
CALLER = "+14155550123"
NOW = datetime(2030, 6, 4, 14, 12, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)  # a Tuesday afternoon


class BusinessApi:
    def __init__(self) -> None:
        self.availability = FakePeer([json_reply({"slots": ["09:00", "9:30", "10:00", "11:00"]})])
        self.bookings = FakePeer([json_reply({"booking_id": "BK-1042"}, 201)])

    async def start(self, aiohttp_server) -> TestServer:
        app = web.Application()
        app.router.add_get("/api/availability", self.availability.handle)
        app.router.add_post("/api/bookings", self.bookings.handle)
        server: TestServer = await aiohttp_server(app)
        return server


async def setup(aiohttp_server, http: aiohttp.ClientSession, api: BusinessApi, tool_timeout: str = "2"):
    server = await api.start(aiohttp_server)
    return tools_for(str(server.make_url("/api")) + "/", http, tool_timeout)


def tools_for(base_url: str, http: aiohttp.ClientSession, tool_timeout: str = "2") -> tuple[ToolRegistry, ToolContext]:
    settings = RelaySettings.model_validate(
        {
            "OPENAI_API_KEY": "test-openai-key",
            "TWILIO_AUTH_TOKEN": "test-auth-token",
            "STREAM_TOKEN_SECRET": "test-stream-secret",
            "RELAY_PUBLIC_URL": "wss://relay.example.test/media-stream",
            "CALLS_TABLE": "calls-test",
            "TRANSCRIPTS_BUCKET": "transcripts-test",
            "BUSINESS_TIMEZONE": "America/New_York",
            "BUSINESS_API_BASE": base_url,
            "TOOL_TIMEOUT_SECONDS": tool_timeout,
        }
    )
    # The store is never touched when a business API is configured.
    ctx = ToolContext(CALL_SID, CALLER, CallStore("calls-test"), settings, http, clock=lambda: NOW)
    return ToolRegistry.default(settings), ctx


def args(**values: object) -> str:
    return json.dumps(values)


async def test_availability_comes_from_the_api(aiohttp_server, http: aiohttp.ClientSession) -> None:
    api = BusinessApi()
    registry, ctx = await setup(aiohttp_server, http, api)
    outcome = await registry.run("check_availability", args(date="2030-06-05", time="10:30"), ctx)
    assert outcome.ok
    assert outcome.output["available_times"] == ["09:00", "09:30", "10:00", "11:00"]
    assert outcome.output["requested_time_available"] is False
    assert outcome.output["nearest_available_times"] == ["09:30", "10:00", "11:00"]
    [request] = api.availability.received
    assert request.query == {"date": "2030-06-05"}


async def test_booking_posts_the_documented_body(aiohttp_server, http: aiohttp.ClientSession) -> None:
    api = BusinessApi()
    registry, ctx = await setup(aiohttp_server, http, api)
    outcome = await registry.run(
        "book_appointment", args(name="Dana", date="2030-06-05", time="10:00", party_size=3, notes="wheelchair"), ctx
    )
    assert outcome.ok
    assert outcome.output["booked"] is True
    assert outcome.output["confirmation_code"] == "BK-1042"
    [request] = api.bookings.received
    assert request.json() == {
        "name": "Dana",
        "date": "2030-06-05",
        "time": "10:00",
        "party_size": 3,
        "notes": "wheelchair",
        "call_sid": CALL_SID,
        "caller_number": CALLER,
    }


async def test_slot_taken_409_offers_alternatives(aiohttp_server, http: aiohttp.ClientSession) -> None:
    api = BusinessApi()
    api.bookings.replies = [json_reply({"message": "taken"}, 409)]
    registry, ctx = await setup(aiohttp_server, http, api)
    outcome = await registry.run("book_appointment", args(name="Dana", date="2030-06-05", time="10:00"), ctx)
    assert outcome.ok
    assert outcome.output["booked"] is False
    assert outcome.output["reason"] == "slot_taken"
    # The API still lists 10:00 (its view lags): the refused time is never offered back.
    assert outcome.output["nearest_available_times"] == ["09:00", "09:30", "11:00"]
    assert len(api.availability.received) == 1


async def test_accepted_booking_without_an_id_is_still_booked(aiohttp_server, http: aiohttp.ClientSession) -> None:
    api = BusinessApi()
    api.bookings.replies = [lambda _r: web.Response(status=201, text="created")]
    registry, ctx = await setup(aiohttp_server, http, api)
    outcome = await registry.run("book_appointment", args(name="Dana", date="2030-06-05", time="10:00"), ctx)
    assert outcome.ok
    assert outcome.output["booked"] is True
    assert outcome.output["confirmation_code"] is None


@pytest.mark.parametrize(
    "reply",
    [
        json_reply({"message": "db down"}, 500),
        json_reply({"message": "maintenance"}, 503),
        lambda _r: web.Response(text="<html>oops</html>", content_type="text/html"),
        json_reply({"unexpected": True}),
    ],
)
async def test_availability_failures_are_graceful(aiohttp_server, http: aiohttp.ClientSession, reply) -> None:
    api = BusinessApi()
    api.availability.replies = [reply]
    registry, ctx = await setup(aiohttp_server, http, api)
    outcome = await registry.run("check_availability", args(date="2030-06-05"), ctx)
    assert not outcome.ok
    assert "not reachable" in outcome.output["error"]


async def test_booking_5xx_and_refusal_are_graceful(aiohttp_server, http: aiohttp.ClientSession) -> None:
    api = BusinessApi()
    api.bookings.replies = [json_reply({}, 502), json_reply({"message": "name required"}, 422)]
    registry, ctx = await setup(aiohttp_server, http, api)
    unavailable = await registry.run("book_appointment", args(name="D", date="2030-06-05", time="10:00"), ctx)
    assert not unavailable.ok
    assert "not reachable" in unavailable.output["error"]
    refused = await registry.run("book_appointment", args(name="D", date="2030-06-05", time="10:00"), ctx)
    assert not refused.ok
    assert "refused these details" in refused.output["error"]


async def test_slow_api_times_out_gracefully(aiohttp_server, http: aiohttp.ClientSession) -> None:
    api = BusinessApi()
    api.availability.delay = 2.0
    api.bookings.delay = 2.0
    registry, ctx = await setup(aiohttp_server, http, api, tool_timeout="0.1")
    availability = await registry.run("check_availability", args(date="2030-06-05"), ctx)
    assert not availability.ok
    assert "timed out" in availability.output["error"]
    booking = await registry.run("book_appointment", args(name="D", date="2030-06-05", time="10:00"), ctx)
    assert not booking.ok
    assert "not known whether the booking went through" in booking.output["error"]


async def test_api_down_is_graceful(http: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    registry, ctx = tools_for(f"http://127.0.0.1:{port}/api", http)
    availability = await registry.run("check_availability", args(date="2030-06-05"), ctx)
    assert not availability.ok
    assert "not reachable" in availability.output["error"]
    booking = await registry.run("book_appointment", args(name="D", date="2030-06-05", time="10:00"), ctx)
    assert not booking.ok
    assert "not reachable" in booking.output["error"]


async def test_dates_are_checked_before_the_api_is_asked(aiohttp_server, http: aiohttp.ClientSession) -> None:
    api = BusinessApi()
    registry, ctx = await setup(aiohttp_server, http, api)
    outcome = await registry.run("book_appointment", args(name="D", date="2030-06-01", time="10:00"), ctx)
    assert not outcome.ok
    assert "in the past" in outcome.output["error"]
    assert api.bookings.received == []
