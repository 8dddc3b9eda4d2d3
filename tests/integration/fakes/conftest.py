"""Fixtures for the fakes' own tests: a fake Realtime server and an HTTP client session per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.openai_realtime import FakeRealtimeServer


@pytest.fixture
async def realtime_server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
