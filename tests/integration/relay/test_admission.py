"""Every refusal happens before any model session is opened; bad frames end only their own call."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from typing import Any

import aiohttp
import pytest

from callcore import stream_token
from callcore.models import CallOutcome
from relay.app import STATE
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer
from tests.fakes.twilio_media import twilio_signature
from tests.integration.relay.conftest import (
    AUTH_TOKEN,
    PUBLIC_URL,
    TOKEN_SECRET,
    Relay,
    answered,
    assert_clean,
    start_cached_relay,
    wait_until,
)


def _other_sid() -> str:
    return "CA" + uuid.uuid4().hex


@pytest.mark.parametrize(
    ("case", "overrides", "expected"),
    [
        ("bad signature", {"signature": "bm90LXRoZS1zaWduYXR1cmU="}, 403),
        ("no signature", {"signature": ""}, 403),
        ("malformed token", {"token": "v1.123.abc"}, 1008),
        ("expiry in digits int() refuses", {"token": "v1.\u00b9\u00b2\u00b3." + "0" * 64}, 1008),
        ("expiry past int()'s digit limit", {"token": "v1." + "9" * 5000 + "." + "0" * 64}, 1008),
        ("no token", {"token": ""}, 1008),
        ("expired token", {"expired": True}, 1008),
        ("token of another call", {"foreign": True}, 1008),
        ("unknown call", {"create_record": False}, 1008),
    ],
)
async def test_refusals_open_no_model_session(
    relay_factory: Any, openai_fake: FakeRealtimeServer, case: str, overrides: dict[str, Any], expected: int
) -> None:
    relay = await relay_factory(openai=openai_fake)  # no pool, no greeting cache: any model use would show
    call_sid = "CA" + uuid.uuid4().hex
    kwargs: dict[str, Any] = {"call_sid": call_sid}
    if overrides.get("expired"):
        kwargs["token"] = stream_token.issue(TOKEN_SECRET, call_sid, expiry=int(time.time()) - 60)
    elif overrides.get("foreign"):
        kwargs["token"] = stream_token.issue(TOKEN_SECRET, _other_sid())
    elif "token" in overrides:
        kwargs["token"] = overrides["token"]
    if "signature" in overrides:
        kwargs["signature"] = overrides["signature"]
    if "create_record" in overrides:
        kwargs["create_record"] = overrides["create_record"]
    call = relay.new_call(**kwargs)
    await call.connect()
    if expected == 403:
        assert call.handshake_status == 403
    else:
        await call.wait_closed(timeout=3)
        assert call.close_code == expected
    assert openai_fake.connection_attempts == 0
    assert call.received_media == bytearray()
    assert relay.metric_values("RejectedStreams") == [1]


async def test_second_stream_for_the_same_call_is_refused(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    first = relay.new_call()
    await answered(relay, first, 1)
    attempts = openai_fake.connection_attempts
    replay = relay.new_call(call_sid=first.call_sid, token=first.token, create_record=False)
    await replay.connect()
    await replay.wait_closed(timeout=3)
    assert replay.close_code == 1008
    assert openai_fake.connection_attempts == attempts  # the replay cost no model session
    assert replay.received_media == bytearray()
    await first.stop()
    await relay.wait_idle()


CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def signed_upgrade(http: aiohttp.ClientSession, relay: Relay) -> Any:
    """A WebSocket to the relay with a valid upgrade signature, driven by hand (no start frame unless sent)."""
    return http.ws_connect(relay.url, headers={"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, PUBLIC_URL)})


MEDIA = json.dumps({"event": "media", "media": {"payload": "//////////8="}})


@pytest.mark.parametrize("second", [MEDIA, CONNECTED], ids=["media", "connected"])
async def test_anything_but_one_connected_before_start_is_refused(
    relay_factory: Any, openai_fake: FakeRealtimeServer, second: str
) -> None:
    relay = await relay_factory(openai=openai_fake)
    async with aiohttp.ClientSession() as http, signed_upgrade(http, relay) as ws:
        await ws.send_str(CONNECTED)
        await ws.send_str(second)
        message = await ws.receive(timeout=3)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1008
    assert openai_fake.connection_attempts == 0


async def test_streams_waiting_for_their_start_frame_are_bounded(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await relay_factory(openai=openai_fake, env={"MAX_PENDING_STREAMS": "2"})
    state = relay.app[STATE]
    async with aiohttp.ClientSession() as http:
        waiting = [await signed_upgrade(http, relay) for _ in range(2)]  # signed, then silent
        await wait_until(lambda: state.awaiting_start == 2)
        async with signed_upgrade(http, relay) as refused:
            message = await refused.receive(timeout=3)
            assert message.type is aiohttp.WSMsgType.CLOSE
            assert refused.close_code == 1013  # try again later: this task has too many streams starting
        await waiting[0].close()
        await wait_until(lambda: state.awaiting_start == 1)
        call = relay.new_call()  # a place is free again: a real call starts normally
        await call.connect()
        await openai_fake.wait_for_session(0)
        await call.stop()
        await waiting[1].close()
    await relay.wait_idle()
    assert state.awaiting_start == 0
    assert relay.metric_values("RejectedStreams") == [1]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", 1003),
        (json.dumps({"event": "telemetry", "data": {}}), 1003),
        (json.dumps({"event": "media", "media": {"payload": "A" * (70 * 1024)}}), 1009),
        (b"\x00\x01binary", 1003),
    ],
)
async def test_bad_frames_close_only_their_own_call(
    relay_factory: Any,
    openai_fake: FakeRealtimeServer,
    caplog: pytest.LogCaptureFixture,
    frame: str | bytes,
    code: int,
) -> None:
    caplog.set_level(logging.WARNING, logger="relay")
    relay = await start_cached_relay(relay_factory, openai_fake)
    healthy = relay.new_call()
    healthy_session = await answered(relay, healthy, 1)
    bad = relay.new_call()
    bad_session = await answered(relay, bad, 2)
    caller_audio = os.urandom(160 * 50)  # one second, sent in real time while the other call misbehaves

    async def misbehave() -> None:
        await asyncio.sleep(0.3)
        await bad.send_raw(frame)

    base = len(healthy_session.input_audio)
    await asyncio.gather(healthy.send_audio(caller_audio), misbehave())
    await bad.wait_closed(timeout=3)
    assert bad.close_code == code
    await asyncio.wait_for(bad_session.closed.wait(), 3)  # its model session went with it
    await healthy_session.wait_for_input_audio(base + len(caller_audio))
    assert bytes(healthy_session.input_audio[base:]) == caller_audio  # nothing lost, nothing altered
    assert not healthy.closed.is_set()
    # The healthy call's audio towards the caller is untouched too.
    before = len(healthy.received_media)
    reply = os.urandom(8 * 300)
    healthy_session.script(AudioResponse(reply, "Still here."))
    await healthy_session.speech_started()
    await healthy_session.speech_stopped("Are you still there?")
    await healthy.wait_for_media(before + len(reply))
    assert bytes(healthy.received_media[before:]) == reply
    await healthy.stop()
    await relay.wait_idle()
    bad_record = relay.storage.store.require_call(bad.call_sid)
    assert bad_record.outcome is CallOutcome.ERROR  # a refused frame, not a caller who hung up
    assert relay.storage.store.require_call(healthy.call_sid).outcome is CallOutcome.CALLER_HUNG_UP
    refusals = [r for r in caplog.records if "frame refused" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].call_sid == bad.call_sid  # type: ignore[attr-defined]  # every line of a call carries its id
    assert_clean(relay)


async def test_draining_relay_refuses_new_streams(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    from relay.app import start_draining

    relay = await relay_factory(openai=openai_fake)
    await relay.wait_ready()
    async with aiohttp.ClientSession() as http, http.get(relay.url_of("/healthz")) as response:
        assert response.status == 200
    start_draining(relay.app)
    call = relay.new_call()
    await call.connect()
    assert call.handshake_status == 503
    assert openai_fake.connection_attempts == 0
    async with (
        aiohttp.ClientSession() as http,
        http.get(relay.url_of("/healthz")) as response,
    ):
        assert response.status == 503


async def test_a_store_failure_during_admission_closes_the_stream_1011_with_a_log_line(
    relay_factory: Any,
    openai_fake: FakeRealtimeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from botocore.exceptions import ClientError

    from callcore.store import CallStore

    def throttled(self: CallStore, call_sid: str, stream_sid: str) -> bool:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")

    relay = await relay_factory(openai=openai_fake)
    monkeypatch.setattr(CallStore, "claim_stream", throttled)
    call = relay.new_call()
    with caplog.at_level(logging.WARNING):
        await call.connect()
        await call.wait_closed(timeout=3)
    assert call.close_code == 1011
    assert openai_fake.connection_attempts == 0
    assert any("stream refused" in r.getMessage() and "ClientError" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info], "a stack trace was logged"
