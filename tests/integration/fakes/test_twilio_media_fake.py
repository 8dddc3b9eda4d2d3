"""The fake Twilio Media Streams peer frames, paces, plays, echoes and clears the way Twilio does."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from callcore.twilio_signature import validate_websocket
from tests.fakes.audio import silence, tone
from tests.fakes.twilio_media import FakeTwilioCall

AUTH_TOKEN = "test-auth-token"
PUBLIC_URL = "wss://relay.example.test/media-stream"
CALL_SID = "CA" + "1" * 32


class StubRelay:
    """The relay's side of the socket, driven by the test: it checks the signature and records every frame."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.frame_times: list[float] = []
        self.ws: web.WebSocketResponse | None = None
        self.connected = asyncio.Event()
        self.gone = asyncio.Event()
        self.url = ""
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/media-stream", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"ws://127.0.0.1:{self._runner.addresses[0][1]}/media-stream"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not validate_websocket(AUTH_TOKEN, PUBLIC_URL, request.headers.get("X-Twilio-Signature")):
            return web.Response(status=403)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        self.connected.set()
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.frames.append(json.loads(message.data))
                self.frame_times.append(time.monotonic())
                self._arrived.set()
        self.gone.set()
        return ws

    def of_event(self, event: str) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["event"] == event]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not predicate():
                self._arrived.clear()
                await self._arrived.wait()

    async def send(self, frame: dict[str, Any] | str) -> None:
        assert self.ws is not None
        await self.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))


@pytest.fixture
async def relay() -> AsyncIterator[StubRelay]:
    stub = StubRelay()
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture
async def call(relay: StubRelay) -> AsyncIterator[FakeTwilioCall]:
    fake = FakeTwilioCall(
        relay.url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, call_sid=CALL_SID, token="v1.123.token"
    )
    await fake.connect()
    await relay.wait_for(lambda: len(relay.frames) >= 2)
    yield fake
    await fake.close()


def media(call: FakeTwilioCall, audio: bytes) -> dict[str, Any]:
    return {"event": "media", "streamSid": call.stream_sid, "media": {"payload": base64.b64encode(audio).decode()}}


def mark(call: FakeTwilioCall, name: str) -> dict[str, Any]:
    return {"event": "mark", "streamSid": call.stream_sid, "mark": {"name": name}}


async def test_connect_signs_the_public_url_then_sends_connected_and_start(
    relay: StubRelay, call: FakeTwilioCall
) -> None:
    connected, start = relay.frames[:2]
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert start["sequenceNumber"] == "1"
    assert start["streamSid"] == call.stream_sid == start["start"]["streamSid"]
    assert start["start"]["callSid"] == CALL_SID
    assert start["start"]["customParameters"] == {"token": "v1.123.token"}
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert call.start_sent_at is not None


@pytest.mark.parametrize("signature", ["", "bm90LXRoZS1zaWduYXR1cmU="])
async def test_a_bad_or_missing_signature_is_refused(relay: StubRelay, signature: str) -> None:
    fake = FakeTwilioCall(
        relay.url, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, call_sid=CALL_SID, token=None, signature=signature
    )
    await fake.connect()
    assert fake.handshake_status == 403
    assert fake.closed.is_set()
    with pytest.raises(RuntimeError, match="not connected"):
        await fake.send_silence(20)


async def test_audio_goes_out_in_20_ms_frames_with_twilio_fields(relay: StubRelay, call: FakeTwilioCall) -> None:
    audio = tone(90)  # 4.5 frames: the last one is padded with silence, as Twilio frames are always whole
    await call.send_audio(audio, realtime=False)
    await call.send_dtmf("5")
    await relay.wait_for(lambda: bool(relay.of_event("dtmf")))

    frames = relay.of_event("media")
    assert [frame["sequenceNumber"] for frame in relay.frames[1:]] == [str(n) for n in range(1, 8)]
    assert [frame["media"]["chunk"] for frame in frames] == ["1", "2", "3", "4", "5"]
    timestamps = [int(frame["media"]["timestamp"]) for frame in frames]
    assert all(later - earlier >= 20 for earlier, later in itertools.pairwise(timestamps))
    assert all(isinstance(frame["media"]["timestamp"], str) for frame in frames)
    payloads = [base64.b64decode(frame["media"]["payload"]) for frame in frames]
    assert all(len(payload) == 160 for payload in payloads)
    assert b"".join(payloads) == audio + silence(10)
    assert relay.of_event("dtmf")[0]["dtmf"] == {"track": "inbound_track", "digit": "5"}


async def test_realtime_audio_is_never_sent_ahead_of_its_schedule(relay: StubRelay, call: FakeTwilioCall) -> None:
    began = time.monotonic()
    await call.send_silence(200)
    await relay.wait_for(lambda: len(relay.of_event("media")) == 10)
    arrivals = relay.frame_times[2:12]
    # The schedule continues the stream's 20 ms grid, so frame 0 may be due up to one frame before `began`; after
    # that frame k is due 20 ms after frame k-1. Late is possible on a loaded machine, early never.
    assert all(arrival >= began + (index - 1) * 0.020 for index, arrival in enumerate(arrivals))
    assert arrivals[-1] >= began + 0.160  # a burst would have arrived within a few milliseconds
    timestamps = [int(frame["media"]["timestamp"]) for frame in relay.of_event("media")]
    assert [b - a for a, b in itertools.pairwise(timestamps)] == [20] * 9


async def test_a_mark_is_echoed_only_after_the_audio_before_it_played(relay: StubRelay, call: FakeTwilioCall) -> None:
    await relay.send(media(call, tone(300)))
    await relay.send(media(call, tone(100)))
    await relay.send(mark(call, "item_a:400"))
    await call.wait_for_media(3200)
    assert call.marks_echoed == []  # 400 ms are queued: nothing can have played yet

    assert await call.wait_for_mark("item_a:400") == "item_a:400"
    name, position, cleared = call.marks_echoed[0]
    assert (name, position, cleared) == ("item_a:400", 3200, False)
    assert call.first_media_at is not None
    assert call.played_bytes_at(call.first_media_at + 0.2001) == 1600
    assert call.played_bytes_at(call.first_media_at + 1.0) == 3200
    assert bytes(call.played) == tone(300) + tone(100)
    await relay.wait_for(lambda: bool(relay.of_event("mark")))
    echo = relay.of_event("mark")[0]
    assert echo == {
        "event": "mark",
        "sequenceNumber": echo["sequenceNumber"],
        "streamSid": call.stream_sid,
        "mark": {"name": "item_a:400"},
    }
    assert relay.frame_times[relay.frames.index(echo)] >= call.first_media_at + 0.4


async def test_a_mark_with_nothing_queued_is_echoed_at_once(relay: StubRelay, call: FakeTwilioCall) -> None:
    await relay.send(mark(call, "idle"))
    assert await call.wait_for_mark() == "idle"
    assert call.marks_echoed == [("idle", 0, False)]


async def test_clear_drops_unplayed_audio_and_echoes_pending_marks_as_cleared(
    relay: StubRelay, call: FakeTwilioCall
) -> None:
    await relay.send(media(call, tone(2000)))
    await relay.send(mark(call, "first"))
    await relay.send(media(call, tone(1000)))
    await relay.send(mark(call, "second"))
    await call.wait_for_media(24000)
    await asyncio.sleep(0.1)
    await relay.send({"event": "clear", "streamSid": call.stream_sid})
    await call.wait_for_mark("second")

    assert call.clears == 1
    assert [(name, cleared) for name, _, cleared in call.marks_echoed] == [("first", True), ("second", True)]
    heard_at_clear = call.marks_echoed[0][1]
    assert 0 < heard_at_clear < 16000
    assert call.marks_echoed[1][1] == heard_at_clear
    await asyncio.sleep(0.05)
    assert len(call.played) == heard_at_clear  # nothing more plays after the clear
    assert call.queued_ms() == 0

    await relay.send(media(call, tone(100)))  # playback restarts from the clear, not after the dropped audio
    await relay.send(mark(call, "after"))
    await call.wait_for_mark("after")
    assert call.marks_echoed[-1] == ("after", heard_at_clear + 800, False)


async def test_frames_twilio_would_reject_are_violations_and_ignored(relay: StubRelay, call: FakeTwilioCall) -> None:
    await relay.send("not json")
    await relay.send({"event": "speak", "streamSid": call.stream_sid})
    await relay.send({"event": "media", "streamSid": "MZ-someone-else", "media": {"payload": "//8="}})
    await relay.send({"event": "media", "streamSid": call.stream_sid, "media": {"payload": "%%%"}})
    await relay.send({"event": "mark", "streamSid": call.stream_sid, "mark": {}})
    await relay.send(media(call, silence(10)))
    await call.wait_for_media(80)

    assert len(call.violations) == 5
    assert bytes(call.received_media) == silence(10)
    assert call.marks_received == []


async def test_stop_sends_stop_then_closes(relay: StubRelay, call: FakeTwilioCall) -> None:
    await call.stop()
    await asyncio.wait_for(relay.gone.wait(), 5)
    stop = relay.frames[-1]
    assert stop["event"] == "stop"
    assert stop["sequenceNumber"] == "2"
    assert stop["stop"] == {"accountSid": call.account_sid, "callSid": CALL_SID}
    assert call.closed.is_set()


async def test_close_drops_the_line_without_stop(relay: StubRelay, call: FakeTwilioCall) -> None:
    await call.close()
    await asyncio.wait_for(relay.gone.wait(), 5)
    assert relay.of_event("stop") == []
    assert relay.ws is not None
    assert relay.ws.close_code == 1006  # no close frame reached the relay


async def test_the_relay_closing_is_seen_with_its_code(relay: StubRelay, call: FakeTwilioCall) -> None:
    assert relay.ws is not None
    await relay.ws.close(code=1008, message=b"token refused")
    await call.wait_closed()
    assert call.close_code == 1008
    sent = len(call.events_sent)
    await call.send_silence(40)  # a dead line swallows the caller's audio instead of failing the test's script
    assert len(call.events_sent) == sent
