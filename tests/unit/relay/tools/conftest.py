from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import aiohttp
import boto3
import pytest
from moto import mock_aws

from callcore.local_resources import create_table
from callcore.store import CallStore
from relay.settings import RelaySettings
from relay.tools import ToolContext, ToolRegistry

TABLE = "calls-tools-test"
CALL_SID = "CA" + "a1" * 16
CALLER = "+14155550123"
ZONE = ZoneInfo("America/New_York")
# Tuesday 2030-06-04, 14:12 in New York: inside the weekday hours below.
NOW = datetime(2030, 6, 4, 14, 12, tzinfo=ZONE).astimezone(UTC)

BASE_ENV = {
    "OPENAI_API_KEY": "test-openai-key",
    "TWILIO_AUTH_TOKEN": "test-auth-token",
    "STREAM_TOKEN_SECRET": "test-stream-secret",
    "RELAY_PUBLIC_URL": "wss://relay.example.test/media-stream",
    "CALLS_TABLE": TABLE,
    "TRANSCRIPTS_BUCKET": "transcripts-test",
    "BUSINESS_TIMEZONE": "America/New_York",
    "BUSINESS_HOURS": "mon-fri 09:00-17:00; sat 10:00-14:00",
    "TOOL_TIMEOUT_SECONDS": "2",
}


def make_settings(**overrides: str) -> RelaySettings:
    return RelaySettings.model_validate({**BASE_ENV, **overrides})


@pytest.fixture
def store() -> Iterator[CallStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield CallStore(TABLE, client=client)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # Never used to send anything in unit tests (the local store needs no HTTP); creating it opens no socket.
    async with aiohttp.ClientSession() as session:
        yield session


MakeContext = Callable[..., ToolContext]


@pytest.fixture
def make_context(request: pytest.FixtureRequest, http: aiohttp.ClientSession) -> MakeContext:
    # Only tests that ask for `store` pay for a moto table; for the others the store is never touched (a touch
    # would try real AWS and be stopped by pytest-socket).
    store = request.getfixturevalue("store") if "store" in request.fixturenames else CallStore(TABLE)

    def build(settings: RelaySettings | None = None, *, now: datetime = NOW) -> ToolContext:
        return ToolContext(
            call_sid=CALL_SID,
            caller_number=CALLER,
            store=store,
            settings=settings or make_settings(),
            http=http,
            clock=lambda: now,
        )

    return build


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry.default(make_settings())
