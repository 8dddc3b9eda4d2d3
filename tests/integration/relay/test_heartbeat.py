"""The relay's heartbeat: written once the relay is ready, repeated while it takes calls, stopped while it drains.
The incoming-call Lambda admits callers only while some relay's heartbeat is fresh."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from callcore.models import utc_now
from callcore.store import RELAY_HEARTBEAT_INTERVAL, RELAY_HEARTBEAT_MAX_AGE
from relay.app import relay_task_id, start_draining
from tests.fakes.openai_realtime import FakeRealtimeServer


async def test_a_ready_relay_has_beaten_and_keeps_beating(
    relay_factory: Any, openai_fake: FakeRealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks: list[float] = []
    real_sleep = asyncio.sleep

    async def fast_ticks(seconds: float, *args: Any) -> None:
        ticks.append(seconds)
        await real_sleep(0.01 if seconds == RELAY_HEARTBEAT_INTERVAL.total_seconds() else seconds)

    monkeypatch.setattr(asyncio, "sleep", fast_ticks)
    started = await relay_factory(openai=openai_fake)
    store = started.storage.store
    await started.wait_ready()  # nothing to warm up here but the call table: ready as soon as it answered
    first = None
    for _ in range(200):
        first = await asyncio.to_thread(store.last_heartbeat)
        if first is not None:
            break
        await real_sleep(0.01)
    assert first is not None
    assert utc_now() - first < RELAY_HEARTBEAT_MAX_AGE
    assert await asyncio.to_thread(store.relay_is_healthy)

    async def beaten_after(moment: datetime | None) -> bool:
        for _ in range(200):
            latest = await asyncio.to_thread(store.last_heartbeat)
            if latest is not None and (moment is None or latest > moment):
                return True
            await real_sleep(0.01)
        return False

    assert await beaten_after(first)
    assert 10.0 in ticks  # the loop waits the documented interval between beats

    start_draining(started.app)
    await real_sleep(0.1)  # any beat already under way lands
    drained_at = await asyncio.to_thread(store.last_heartbeat)
    assert not await beaten_after(drained_at)


def test_the_task_id_comes_from_ecs_or_the_host() -> None:
    class Settings:
        ecs_agent_uri = "http://169.254.170.2/api/0f1e2d3c4b5a69788796a5b4c3d2e1f0-1234567890"

    assert relay_task_id(Settings()) == "0f1e2d3c4b5a69788796a5b4c3d2e1f0-1234567890"  # type: ignore[arg-type]
    Settings.ecs_agent_uri = None  # type: ignore[assignment]
    assert relay_task_id(Settings())  # type: ignore[arg-type]
