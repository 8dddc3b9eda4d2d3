"""Readiness: a starting relay tells the load balancer "not yet" until it can greet at once (greetings rendered,
model pool full, call table answered), or until its deadline when the model cannot be reached; draining says so
differently; liveness stays true throughout."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from relay.app import GREETINGS, POOL, start_draining
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer
from tests.integration.relay.conftest import GREETING_INBOUND_AUDIO, Relay, greeting_renders

LIVE_GREETING = bytes(range(256)) * 4  # what the model would say if it greeted live: never expected here


async def probe(relay: Relay, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(relay.url_of(path)) as response:
        body: dict[str, Any] = await response.json()
        return response.status, body


async def until_ready(relay: Relay, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
    """Poll /healthz as the load balancer does; every 503 on the way must be `starting` with a reason."""
    async with asyncio.timeout(timeout):
        while True:
            status, body = await probe(relay)
            if status == 200:
                return body
            assert body["status"] == "starting"
            assert body["waiting_for"]
            await asyncio.sleep(0.05)


async def test_a_relay_rendering_its_greeting_slowly_is_not_ready_until_the_cache_is_filled(
    relay_factory: Any, openai_factory: Any
) -> None:
    openai: FakeRealtimeServer = await openai_factory(first_audio_delay=1.0)  # each phrase takes a second to render
    openai.script(*greeting_renders())
    relay = await relay_factory(openai=openai, env={"GREETING_CACHE": "true", "MODEL_POOL_SIZE": "1"})
    status, body = await probe(relay)
    assert status == 503
    assert body["status"] == "starting"
    assert "greetings" in body["waiting_for"]
    assert not relay.app[GREETINGS].ready.is_set()
    body = await until_ready(relay)
    # Ready exactly when everything a call needs is there, not before.
    assert relay.app[GREETINGS].ready.is_set()
    assert relay.app[POOL].ready_count >= 1
    assert body == {"status": "ok", "calls": 0}
    assert relay.metric_values("ReadyAtDeadline") == []
    assert openai.violations == []


async def test_every_call_admitted_after_ready_plays_the_cached_greeting_first(
    relay_factory: Any, openai_factory: Any
) -> None:
    # The model of the report: 300 ms to connect, 400 ms to its first audio.
    openai: FakeRealtimeServer = await openai_factory(
        connect_delay=0.3, first_audio_delay=0.4, default_response=AudioResponse(LIVE_GREETING, "Hello!")
    )
    openai.script(*greeting_renders())
    relay = await relay_factory(openai=openai, env={"GREETING_CACHE": "true", "MODEL_POOL_SIZE": "2"})
    await until_ready(relay)
    for _ in range(3):  # the first callers of a fresh task
        call = relay.new_call()
        await call.connect()
        await call.wait_for_media(len(GREETING_INBOUND_AUDIO))
        assert bytes(call.received_media[: len(GREETING_INBOUND_AUDIO)]) == GREETING_INBOUND_AUDIO
        await call.stop()
    await relay.wait_idle()
    live_greetings = [
        e
        for session in openai.sessions
        for e in session.events
        if e.get("type") == "response.create" and "Greet the caller" in str(e)
    ]
    assert live_greetings == []  # nobody was greeted live by the model
    assert openai.violations == []


async def test_an_unreachable_model_makes_the_task_ready_at_the_deadline_with_a_metric(
    relay_factory: Any, openai_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="relay")
    openai: FakeRealtimeServer = await openai_factory()
    openai.refuse_sessions = True  # an outage from the start
    relay = await relay_factory(
        openai=openai, env={"GREETING_CACHE": "true", "MODEL_POOL_SIZE": "1", "READINESS_DEADLINE_SECONDS": "1"}
    )
    status, body = await probe(relay)
    assert status == 503
    assert {"greetings", "model pool"} <= set(body["waiting_for"])
    body = await until_ready(relay, timeout=5)  # the fleet takes calls despite the outage
    assert body["status"] == "ok"
    assert set(body["ready_without"]) == {"greetings", "model pool"}
    assert relay.metric_values("ReadyAtDeadline") == [1]
    assert any("READINESS_DEADLINE_SECONDS" in r.getMessage() for r in caplog.records)
    assert openai.sessions == []


async def test_starting_and_draining_answer_503_with_different_bodies_and_liveness_stays_true(
    relay_factory: Any, openai_factory: Any
) -> None:
    openai: FakeRealtimeServer = await openai_factory(first_audio_delay=0.5)
    openai.script(*greeting_renders())
    relay = await relay_factory(openai=openai, env={"GREETING_CACHE": "true"})
    starting = await probe(relay)
    assert starting[0] == 503
    assert starting[1]["status"] == "starting"
    assert await probe(relay, "/livez") == (200, {"status": "alive"})
    await until_ready(relay)
    start_draining(relay.app)
    draining = await probe(relay)
    assert draining == (503, {"status": "draining", "calls": 0})
    assert "waiting_for" not in draining[1]
    assert await probe(relay, "/livez") == (200, {"status": "alive"})  # draining is alive: ECS must not kill it
