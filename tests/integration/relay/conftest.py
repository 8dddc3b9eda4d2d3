"""The relay over real loopback sockets: the app on an aiohttp test server, the fake OpenAI Realtime server and fake
Twilio calls from `tests/fakes`, the fake call-control API, and DynamoDB/S3 on a threaded moto server (the relay
calls boto3 from worker threads, so an in-process `mock_aws` would be shared across threads anyway; a real HTTP
endpoint through `AWS_ENDPOINT_URL` exercises exactly the code path production uses)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from callcore import stream_token
from callcore.aws import dynamodb_client, reset_clients, s3_client
from callcore.local_resources import create_bucket, create_table
from callcore.models import FULL_ATTESTATION, CallDirection, CallRecord
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive
from local.moto_endpoint import moto_endpoint as serve_moto
from relay.app import GREETINGS, POOL, READINESS, STATE, create_app
from relay.metrics import RelayMetrics
from relay.settings import RelaySettings
from relay.tools import Tool, ToolContext, ToolOutcome, ToolRegistry
from relay.tools.call_tools import EndCall, TransferToHuman
from relay.tools.hours import GetBusinessHours
from relay.tools.schedule import OpeningSchedule
from tests.fakes.call_control import FakeCallControl
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FakeRealtimeSession
from tests.fakes.twilio_media import FakeTwilioCall

AUTH_TOKEN = "test-auth-token"
TOKEN_SECRET = "test-stream-secret"
OPENAI_KEY = "test-openai-key"
PUBLIC_URL = "wss://relay.test.invalid/media-stream"
HUMAN_LINE = "+15557650000"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with serve_moto() as endpoint:
        yield endpoint


@dataclass
class Storage:
    table: str
    bucket: str
    store: CallStore
    archive: TranscriptArchive


@pytest.fixture
def storage(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Storage:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    reset_clients()
    suffix = uuid.uuid4().hex[:10]
    table, bucket = f"calls-{suffix}", f"transcripts-{suffix}"
    create_table(dynamodb_client(), table)
    create_bucket(s3_client(), bucket)
    return Storage(table, bucket, CallStore(table), TranscriptArchive(bucket, hash_key=b"k" * 32))


@dataclass
class Relay:
    """A running relay plus what the tests need to place calls into it."""

    url: str
    app: Any
    settings: RelaySettings
    storage: Storage
    openai: FakeRealtimeServer
    call_control: FakeCallControl | None
    metrics_out: io.StringIO = field(default_factory=io.StringIO)
    calls: list[FakeTwilioCall] = field(default_factory=list)
    server: Any = None  # the aiohttp TestServer: `await relay.server.close()` shuts the relay down as ECS would

    def metric_values(self, name: str) -> list[float]:
        """Values of the EMF metric `name` the relay wrote so far."""
        documents = [json.loads(line) for line in self.metrics_out.getvalue().splitlines() if line]
        return [document[name] for document in documents if name in document]

    def new_call(
        self,
        *,
        direction: CallDirection = CallDirection.INBOUND,
        token: str | None = None,
        call_sid: str | None = None,
        create_record: bool = True,
        stir_verstat: str | None = FULL_ATTESTATION,
        seated: bool = False,
        profile: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> FakeTwilioCall:
        """A call as the voice webhook left it: its record (inbound calls fully attested unless told otherwise), and
        with `seated` its agent seat taken in the admission transaction; `profile` = (id, version) of its line."""
        call_sid = call_sid or "CA" + uuid.uuid4().hex
        if create_record:
            record = CallRecord(
                call_sid=call_sid,
                direction=direction,
                from_number="+15551230001",
                to_number="+15559870002",
                stir_verstat=stir_verstat if direction is CallDirection.INBOUND else None,
                stream_token_expiry=int(time.time()) + 120 if seated else None,
                profile_id=profile[0] if profile else None,
                profile_version=profile[1] if profile else None,
            )
            if seated:
                self.storage.store.admit_call(record, max_active=100)
            else:
                self.storage.store.create_call(record)
        call = FakeTwilioCall(
            self.url,
            public_url=PUBLIC_URL,
            auth_token=AUTH_TOKEN,
            call_sid=call_sid,
            token=token if token is not None else stream_token.issue(TOKEN_SECRET, call_sid),
            **kwargs,
        )
        self.calls.append(call)
        return call

    @property
    def live_calls(self) -> int:
        return len(self.app[STATE].calls)

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            await self.app[STATE].idle.wait()

    async def wait_greeting_cache(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            await self.app[GREETINGS].ready.wait()

    async def wait_pool(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await wait_until(lambda: self.app[POOL].ready_count >= count, timeout)

    async def wait_ready(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            await self.app[READINESS].ready.wait()

    def url_of(self, path: str) -> str:
        """The relay's HTTP URL for `path` (e.g. /healthz)."""
        return self.url.replace("ws://", "http://").replace("/media-stream", path)


@pytest.fixture
async def openai_factory() -> AsyncIterator[Any]:
    """`await openai_factory(connect_delay=..., ...)`: fake model servers closed after the relay is gone."""
    servers: list[FakeRealtimeServer] = []

    async def start(**kwargs: Any) -> FakeRealtimeServer:
        server = FakeRealtimeServer(**{"api_key": OPENAI_KEY, **kwargs})
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def relay_factory(openai_factory: Any, aiohttp_server: Any, storage: Storage) -> AsyncIterator[Any]:
    """`await relay_factory(openai=..., env={...}, tools=...)` starts a relay wired to the given fakes."""
    started: list[Relay] = []

    async def start(
        *,
        openai: FakeRealtimeServer,
        call_control: FakeCallControl | None = None,
        env: dict[str, str] | None = None,
        tools: Callable[[RelaySettings], ToolRegistry] | None = None,
        shutdown_timeout: float | None = None,
    ) -> Relay:
        environ = {
            "OPENAI_API_KEY": OPENAI_KEY,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "STREAM_TOKEN_SECRET": TOKEN_SECRET,
            "RELAY_PUBLIC_URL": PUBLIC_URL,
            "OPENAI_REALTIME_URL": openai.url,
            "CALLS_TABLE": storage.table,
            "TRANSCRIPTS_BUCKET": storage.bucket,
            "MODEL_POOL_SIZE": "0",
            "GREETING_CACHE": "false",
            "TOOL_TIMEOUT_SECONDS": "0.5",
            "BUSINESS_HOURS": "mon-sun 00:00-24:00",
        }
        if call_control is not None:
            environ["CALL_CONTROL_URL"] = call_control.url
            environ["HUMAN_TRANSFER_NUMBER"] = HUMAN_LINE
        environ.update(env or {})
        settings = RelaySettings.from_env(environ)
        metrics_out = io.StringIO()
        app = create_app(
            settings,
            store=storage.store,
            archive=storage.archive,
            tools=tools(settings) if tools else None,
            metrics=RelayMetrics(settings.metrics_namespace, stream=metrics_out),
        )
        server_kwargs = {} if shutdown_timeout is None else {"shutdown_timeout": shutdown_timeout}
        server = await aiohttp_server(app, **server_kwargs)
        relay = Relay(
            url=str(server.make_url("/media-stream")).replace("http://", "ws://"),
            app=app,
            settings=settings,
            storage=storage,
            openai=openai,
            call_control=call_control,
            metrics_out=metrics_out,
            server=server,
        )
        started.append(relay)
        return relay

    yield start
    # The fake Twilio releases its client session only when it ends the call itself: end the ones the relay ended.
    for relay in started:
        for call in relay.calls:
            await call.close()


@pytest.fixture
async def openai_fake(openai_factory: Any) -> FakeRealtimeServer:
    server: FakeRealtimeServer = await openai_factory()
    return server


@pytest.fixture
async def call_control_fake() -> AsyncIterator[FakeCallControl]:
    fake = FakeCallControl()
    await fake.start()
    yield fake
    await fake.close()


# ---- helpers shared by the scenarios -------------------------------------------------------------------------------

GREETING_INBOUND_AUDIO = bytes((i * 7 + 3) % 251 for i in range(3200))  # 400 ms, a recognisable byte pattern
GREETING_OUTBOUND_AUDIO = bytes((i * 11 + 5) % 241 for i in range(2400))
FILLER_AUDIO = bytes((i * 13 + 1) % 239 for i in range(1600))  # 200 ms: "One moment, please."


def greeting_renders(inbound: bytes = GREETING_INBOUND_AUDIO) -> tuple[AudioResponse, AudioResponse, AudioResponse]:
    """What the model says when the relay renders its cache at start-up (inbound, outbound greeting, the filler)."""
    return (
        AudioResponse(inbound, "Thanks for calling the office."),
        AudioResponse(GREETING_OUTBOUND_AUDIO, "Hello, this is the office calling."),
        AudioResponse(FILLER_AUDIO, "One moment, please."),
    )


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Poll a condition on state the fakes and the relay expose (5 ms steps; none of them offers an event for it)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def start_cached_relay(relay_factory: Any, openai: FakeRealtimeServer, **kwargs: Any) -> Relay:
    """A relay whose greeting cache is warm (rendered by the fake model before any call)."""
    openai.script(*greeting_renders())
    env = {"GREETING_CACHE": "true", **kwargs.pop("env", {})}
    relay: Relay = await relay_factory(openai=openai, env=env, **kwargs)
    await relay.wait_greeting_cache()
    return relay


async def answered(relay: Relay, call: FakeTwilioCall, session_index: int) -> FakeRealtimeSession:
    """Connect the call, let the cached greeting play out, and return the call's model session."""
    await call.connect()
    session = await relay.openai.wait_for_session(session_index)
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO))
    await wait_until(lambda: call.queued_ms() == 0 and not call.timeline.queued_until_ns > time.monotonic_ns())
    await session.wait_for_event("conversation.item.create")  # the greeting seed
    return session


def assert_clean(relay: Relay) -> None:
    """Neither fake saw a protocol violation."""
    assert relay.openai.violations == []
    for session in relay.openai.sessions:
        assert session.violations == [], session.violations
    for call in relay.calls:
        assert call.violations == [], call.violations
    if relay.call_control is not None:
        assert relay.call_control.violations == []


async def caller_turn(session: FakeRealtimeSession, transcript: str) -> None:
    """The caller says something (the server's VAD hears it start and stop)."""
    await session.speech_started()
    await session.speech_stopped(transcript)


def delta_bytes(events: list[dict[str, Any]], item_id: str) -> int:
    """Audio bytes of `item_id` among the fake model's sent events."""
    return sum(
        len(base64.b64decode(e["delta"]))
        for e in events
        if e["type"] == "response.output_audio.delta" and e["item_id"] == item_id
    )


# ---- tools the scenarios control ------------------------------------------------------------------------------------


class NoArgs(BaseModel):
    pass


class ClockLookup(Tool[NoArgs]):
    """Returns a value JSON cannot encode: the failure happens after the registry, in the session."""

    name = "clock_lookup"
    description = "Tells the time."
    arguments = NoArgs

    async def run(self, args: NoArgs, ctx: ToolContext) -> ToolOutcome:
        return ToolOutcome(output={"now": datetime.now(UTC)})


class GatedLookup(Tool[NoArgs]):
    """Runs until the test opens the gate; swallows cancellation when `stubborn` (the bug teardown must survive)."""

    name = "gated_lookup"
    description = "A lookup the test controls."
    arguments = NoArgs
    gate: ClassVar[asyncio.Event]
    entered: ClassVar[asyncio.Event]
    stubborn: ClassVar[bool] = False

    async def run(self, args: NoArgs, ctx: ToolContext) -> ToolOutcome:
        GatedLookup.entered.set()
        while not GatedLookup.gate.is_set():
            try:
                await GatedLookup.gate.wait()
            except asyncio.CancelledError:
                if not GatedLookup.stubborn:
                    raise
        return ToolOutcome(output={"found": True})


@pytest.fixture
def gated() -> type[GatedLookup]:
    GatedLookup.gate = asyncio.Event()
    GatedLookup.entered = asyncio.Event()
    GatedLookup.stubborn = False
    return GatedLookup


def scenario_tools(settings: RelaySettings) -> ToolRegistry:
    """Business hours, transfer, end_call and the two controllable lookups above."""
    schedule = OpeningSchedule(settings.weekly_hours, settings.timezone)
    return ToolRegistry([GetBusinessHours(schedule), TransferToHuman(), EndCall(), ClockLookup(), GatedLookup()])
