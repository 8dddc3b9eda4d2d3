"""Start-up readiness: ready when every condition is met, or at the deadline naming what is missing (latched)."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

import relay.readiness as readiness_module
from relay.metrics import RelayMetrics
from relay.readiness import Condition, Probe, Readiness


def metrics() -> tuple[RelayMetrics, io.StringIO]:
    out = io.StringIO()
    return RelayMetrics("Test", stream=out), out


async def test_ready_once_every_condition_is_met_and_no_sooner() -> None:
    greetings, pool = asyncio.Event(), asyncio.Event()
    recorder, out = metrics()
    readiness = Readiness(
        [Condition("greetings", greetings), Condition("model pool", pool)], deadline_seconds=5, metrics=recorder
    )
    task = asyncio.create_task(readiness.run())
    await asyncio.sleep(0)
    assert readiness.waiting_for == ["greetings", "model pool"]
    pool.set()
    await asyncio.sleep(0)
    assert not readiness.ready.is_set()
    assert readiness.waiting_for == ["greetings"]
    greetings.set()
    await task
    assert readiness.ready.is_set()
    assert not readiness.at_deadline
    assert out.getvalue() == ""  # no ReadyAtDeadline


async def test_the_deadline_makes_it_ready_anyway_and_says_what_is_missing() -> None:
    greetings = asyncio.Event()
    recorder, out = metrics()
    readiness = Readiness([Condition("greetings", greetings)], deadline_seconds=0.01, metrics=recorder)
    await readiness.run()
    assert readiness.ready.is_set()
    assert readiness.at_deadline
    assert readiness.missing_at_deadline == ["greetings"]
    assert readiness.waiting_for == []  # latched: a ready task is ready
    [document] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert document["ReadyAtDeadline"] == 1


async def test_a_probe_is_retried_until_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([ConnectionError("not yet"), None])

    async def attempt() -> None:
        outcome = next(answers)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(readiness_module, "PROBE_RETRY_SECONDS", 0.0)
    probe = Probe("call table", attempt)
    await probe.run()
    assert probe.condition.met.is_set()
