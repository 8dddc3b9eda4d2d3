"""Each call runs on its receptionist profile's line: the version its record names (as the TwiML Lambda stored it),
read from the call table, with that line's greeting, prompt, voice, turn detection, tools, human line, business API
credentials and booking caps."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from callcore.aws import secretsmanager_client
from callcore.models import CallDirection
from callcore.profiles.model import Booking, BusinessApi, Hours, Profile, Transfer, TurnTaking
from callcore.profiles.published import PublishedProfile
from callcore.store.receptionist_profiles import ReceptionistProfiles
from relay.app import GREETINGS
from relay.greeting import RENDER_INSTRUCTIONS
from relay.line import LineSettings
from tests.fakes.audio import tone
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FakeRealtimeSession, FunctionCallResponse
from tests.integration.relay.conftest import Relay, Storage, assert_clean, wait_until

BISTRO_HUMAN = "+15550001111"


def bistro(**changes: Any) -> PublishedProfile:
    fields: dict[str, Any] = {
        "business_name": "Harbor Bistro",
        "numbers": ["+15559870002"],
        "timezone": "America/New_York",
        "greeting": "Thanks for calling {business_name}, how can I help?",
        "voice": "cedar",
        "hours": Hours(weekly="mon-sun 00:00-24:00"),
        "transfer": Transfer(human_number=BISTRO_HUMAN, dtmf_digit="0"),
        "turn_detection": TurnTaking(type="semantic_vad", eagerness="low"),
        "booking": Booking(max_bookings_per_call=1, max_bookings_per_caller_per_day=2),
    }
    fields.update(changes)
    return PublishedProfile.of("bistro", Profile(**fields), None)


def dental(**changes: Any) -> PublishedProfile:
    fields: dict[str, Any] = {
        "business_name": "Bright Smile Dental",
        "numbers": ["+15559870003"],
        "timezone": "Europe/London",
        "greeting": "Bright Smile Dental, good day.",
        "voice": "marin",
        "language": "en-GB",
        "tools": ["get_business_hours", "end_call"],
    }
    fields.update(changes)
    return PublishedProfile.of("dental", Profile(**fields), "You answer the phone for {business_name} in {timezone}.")


def publish(relay: Relay, *profiles: PublishedProfile) -> None:
    ReceptionistProfiles(relay.storage.table).publish(list(profiles))


def key(published: PublishedProfile) -> tuple[str, str]:
    return (published.profile_id, published.version)


async def _relay(relay_factory: Any, openai: FakeRealtimeServer, call_control: FakeCallControl | None = None) -> Relay:
    # A booking takes a few table round trips (the cap, the slot): room for them on a busy machine.
    relay: Relay = await relay_factory(openai=openai, call_control=call_control, env={"TOOL_TIMEOUT_SECONDS": "5"})
    return relay


async def greeted(relay: Relay, published: PublishedProfile, index: int) -> tuple[Any, FakeRealtimeSession]:
    """A call on `published`'s line, connected, its model session configured and asked to greet (no cache)."""
    call = relay.new_call(profile=key(published))
    await call.connect()
    session = await relay.openai.wait_for_session(index)
    await session.wait_for_event("response.create")
    return call, session


def session_config(session: FakeRealtimeSession) -> dict[str, Any]:
    """The call's own configuration (after the warm session's generic one)."""
    updates = [e["session"] for e in session.events if e["type"] == "session.update" and "tools" in e["session"]]
    config: dict[str, Any] = updates[-1]
    return config


async def test_each_profile_gives_its_calls_its_greeting_prompt_voice_tools_and_human_line(
    relay_factory: Any, openai_fake: FakeRealtimeServer, call_control_fake: FakeCallControl
) -> None:
    relay = await _relay(relay_factory, openai_fake, call_control_fake)
    publish(relay, bistro(), dental())

    bistro_call, bistro_session = await greeted(relay, bistro(), 0)
    dental_call, dental_session = await greeted(relay, dental(), 1)

    first = session_config(bistro_session)
    second = session_config(dental_session)
    assert "Harbor Bistro" in first["instructions"]
    assert "America/New_York" in first["instructions"]
    assert second["instructions"].startswith("You answer the phone for Bright Smile Dental in Europe/London.")
    assert (first["audio"]["output"]["voice"], second["audio"]["output"]["voice"]) == ("cedar", "marin")
    assert first["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    assert first["audio"]["input"]["turn_detection"]["eagerness"] == "low"
    assert {tool["name"] for tool in first["tools"]} == {
        "get_business_hours",
        "check_availability",
        "book_appointment",
        "transfer_to_human",
        "end_call",
    }
    assert {tool["name"] for tool in second["tools"]} == {"get_business_hours", "end_call"}
    greet = [
        e["response"]["instructions"]
        for e in (bistro_session.events + dental_session.events)
        if e["type"] == "response.create"
    ]
    assert "Thanks for calling Harbor Bistro, how can I help?" in greet[0]
    assert "Bright Smile Dental, good day." in greet[1]

    # The bistro's line has a human and a transfer key; the dental line has neither.
    await dental_call.send_dtmf("0")
    await bistro_call.send_dtmf("0")
    await call_control_fake.wait_for("transfer")
    assert [sid for sid, _ in call_control_fake.calls_for("transfer")] == [bistro_call.call_sid]

    await bistro_call.stop()  # Twilio ends the stream once the transfer redirects the call
    await dental_call.stop()
    await relay.wait_idle()
    records = [relay.storage.store.require_call(c.call_sid) for c in (bistro_call, dental_call)]
    assert [r.profile_id for r in records] == ["bistro", "dental"]
    assert_clean(relay)


async def test_a_redeployed_profile_reaches_the_next_call_and_not_the_live_one(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await _relay(relay_factory, openai_fake)
    before = bistro()
    publish(relay, before)
    live_call, live_session = await greeted(relay, before, 0)

    after = bistro(business_name="Harbor Bistro and Bar", greeting="Harbor Bistro and Bar, hello!")
    publish(relay, after)  # what `cdk deploy` does; the TwiML Lambda stores the new version on the next record
    next_call, next_session = await greeted(relay, after, 1)

    assert "Harbor Bistro and Bar" in session_config(next_session)["instructions"]
    # The live call goes on: its later instructions (the caller's history arriving) keep the version it began with.
    await live_session.speech_started()
    await live_session.speech_stopped("Hello?")
    await live_call.stop()
    await next_call.stop()
    await relay.wait_idle()
    live_updates = [e["session"] for e in live_session.events if e["type"] == "session.update"]
    assert live_updates
    assert all("Harbor Bistro and Bar" not in u.get("instructions", "") for u in live_updates)
    greets = [e["response"].get("instructions", "") for e in live_session.events if e["type"] == "response.create"]
    assert "Thanks for calling Harbor Bistro, how can I help?" in greets[0]
    assert [relay.storage.store.require_call(c.call_sid).profile_version for c in (live_call, next_call)] == [
        before.version,
        after.version,
    ]
    assert_clean(relay)


async def test_a_call_naming_a_version_not_in_the_table_is_refused_without_touching_other_calls(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await _relay(relay_factory, openai_fake)
    publish(relay, bistro())
    live_call, _ = await greeted(relay, bistro(), 0)

    lost = relay.new_call(profile=("bistro", "0" * 16))
    await lost.connect()
    await lost.wait_closed()
    assert lost.close_code == 1011
    assert relay.live_calls == 1  # the call already live is untouched
    assert len(relay.openai.sessions) == 1  # and the refused one never opened a model session
    await live_call.stop()
    await relay.wait_idle()


# ---- bookings -----------------------------------------------------------------------------------------------------


def _booking(day: str, when: str) -> dict[str, Any]:
    return {"name": "Ada Lovelace", "date": day, "time": when, "party_size": 2}


async def _book(session: FakeRealtimeSession, arguments: dict[str, Any], nth: int) -> dict[str, Any]:
    """The caller asks; the model calls book_appointment; returns the tool's result the relay sent back."""
    session.script(FunctionCallResponse("book_appointment", arguments, call_id=f"call_book_{nth}"))
    session.script(AudioResponse(tone(100), "Done."))
    await session.speech_started()
    await session.speech_stopped("Book a table, please.")
    output = await session.wait_for_event(
        "conversation.item.create",
        lambda e: e["item"]["type"] == "function_call_output" and e["item"]["call_id"] == f"call_book_{nth}",
        timeout=10,
    )
    await session.wait_for_event("response.create", nth=nth + 1)
    await wait_until(lambda: session.active_response_id is None)
    result: dict[str, Any] = json.loads(output["item"]["output"])
    return result


def _days_ahead(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%d")


async def test_booking_caps_refuse_the_extra_booking_per_call_and_per_caller_per_day(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await _relay(relay_factory, openai_fake)
    publish(relay, bistro())  # at most 1 booking per call, 2 per caller per day
    day = _days_ahead(5)

    first_call, first = await greeted(relay, bistro(), 0)
    assert (await _book(first, _booking(day, "10:00"), 1))["booked"] is True
    refused = await _book(first, _booking(day, "11:00"), 2)
    assert (refused["booked"], refused["reason"], refused["limit"]) == (False, "max_bookings_per_call", 1)
    assert "say" in refused
    await first_call.stop()

    second_call, second = await greeted(relay, bistro(), 1)
    assert (await _book(second, _booking(day, "12:00"), 1))["booked"] is True
    await second_call.stop()

    third_call, third = await greeted(relay, bistro(), 2)
    refused = await _book(third, _booking(day, "13:00"), 1)
    assert (refused["booked"], refused["reason"], refused["limit"]) == (False, "max_bookings_per_caller_per_day", 2)
    await third_call.stop()
    await relay.wait_idle()
    assert sorted(b.time for b in relay.storage.store.list_bookings(day)) == ["10:00", "12:00"]
    assert_clean(relay)


class BookingApi:
    """The business's booking API on 127.0.0.1, recording the credentials header of each request."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []

    async def availability(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("X-Api-Key"))
        return web.json_response({"slots": ["10:00", "10:30"]})

    async def bookings(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("X-Api-Key"))
        return web.json_response({"booking_id": "BK-7"}, status=201)


@pytest.fixture
async def booking_api(aiohttp_server: Any) -> tuple[BookingApi, TestServer]:
    api = BookingApi()
    app = web.Application()
    app.router.add_get("/v1/availability", api.availability)
    app.router.add_post("/v1/bookings", api.bookings)
    server: TestServer = await aiohttp_server(app)
    return api, server


async def test_the_business_api_receives_the_profiles_credentials_from_secrets_manager(
    relay_factory: Any, openai_fake: FakeRealtimeServer, booking_api: tuple[BookingApi, TestServer]
) -> None:
    api, server = booking_api
    secret_name = f"bistro/booking-api-{time.monotonic_ns()}"
    secretsmanager_client().create_secret(Name=secret_name, SecretString="test-booking-key")
    relay = await _relay(relay_factory, openai_fake)
    line = bistro(
        business_api=BusinessApi(
            base_url=str(server.make_url("/v1")), credentials_secret=secret_name, header="X-Api-Key"
        )
    )
    publish(relay, line)
    call, session = await greeted(relay, line, 0)
    result = await _book(session, _booking(_days_ahead(5), "10:00"), 1)
    assert (result["booked"], result["confirmation_code"]) == (True, "BK-7")
    assert api.keys == ["test-booking-key"]
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)


async def test_a_profiles_greeting_is_rendered_in_its_own_voice_for_the_calls_after_its_first(
    relay_factory: Any, openai_factory: Any
) -> None:
    openai = await openai_factory(default_response=AudioResponse(tone(300), "Words read aloud."))
    relay: Relay = await relay_factory(openai=openai, env={"GREETING_CACHE": "true"})
    await relay.wait_greeting_cache()  # the environment's line, rendered at start-up
    publish(relay, bistro())
    line = LineSettings.from_profile(bistro(), relay.settings)

    first_call = relay.new_call(profile=key(bistro()))
    await first_call.connect()
    await wait_until(lambda: relay.app[GREETINGS].get(CallDirection.INBOUND, line) is not None)
    renders = [s for s in openai.sessions if any(RENDER_INSTRUCTIONS in str(e) for e in s.events)]
    assert [session_config_voice(s) for s in renders] == ["marin", "cedar"]  # the default line's, then the bistro's
    rendered = [e["response"]["instructions"] for e in renders[1].events if e["type"] == "response.create"]
    assert any("Thanks for calling Harbor Bistro, how can I help?" in text for text in rendered)

    second_call = relay.new_call(profile=key(bistro()))
    await second_call.connect()
    await second_call.wait_for_media(300 * 8)  # the cached greeting, played before any model answers
    await wait_until(lambda: len([s for s in openai.sessions if s not in renders]) == 2)
    first, second = [s for s in openai.sessions if s not in renders]
    assert any("Greet the caller now" in str(e) for e in first.events)  # the first call greeted live
    await second.wait_for_event("session.update", lambda e: "already greeted" in e["session"].get("instructions", ""))
    assert not [e for e in second.events if e["type"] == "response.create"]  # nothing asked the model to greet
    await first_call.stop()
    await second_call.stop()
    await relay.wait_idle()
    assert_clean(relay)


def session_config_voice(session: FakeRealtimeSession) -> str:
    update = next(e for e in session.events if e["type"] == "session.update")
    voice: str = update["session"]["audio"]["output"]["voice"]
    return voice


async def test_the_greetings_of_profiles_published_before_start_up_are_ready_for_their_first_call(
    relay_factory: Any, openai_factory: Any, storage: Storage
) -> None:
    ReceptionistProfiles(storage.table).publish([bistro()])
    openai = await openai_factory(default_response=AudioResponse(tone(300), "Words read aloud."))
    relay: Relay = await relay_factory(openai=openai, env={"GREETING_CACHE": "true"})
    await relay.wait_greeting_cache()
    assert relay.app[GREETINGS].get(CallDirection.INBOUND, LineSettings.from_profile(bistro(), relay.settings))

    call = relay.new_call(profile=key(bistro()))
    await call.connect()
    await call.wait_for_media(300 * 8)
    session = await openai.wait_for_session(2)  # after the two renders: the default line's, the bistro's
    await session.wait_for_event("session.update", lambda e: "already greeted" in e["session"].get("instructions", ""))
    assert not [e for e in session.events if e["type"] == "response.create"]  # played from the cache
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)
