from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from relay.metrics import RelayMetrics


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def assert_emf(document: dict[str, Any], name: str, unit: str, value: float) -> None:
    aws = document["_aws"]
    assert isinstance(aws["Timestamp"], int)
    assert aws["Timestamp"] > 1_600_000_000_000  # epoch milliseconds
    assert aws["CloudWatchMetrics"] == [
        {"Namespace": "PhoneVoiceAgent", "Dimensions": [["Service"]], "Metrics": [{"Name": name, "Unit": unit}]}
    ]
    assert document["Service"] == "relay"
    assert document[name] == value
    assert set(document) == {"_aws", "Service", name}  # nothing else: no call ids, no phone numbers


def test_record_writes_one_valid_emf_line() -> None:
    stream = io.StringIO()
    metrics = RelayMetrics("PhoneVoiceAgent", stream=stream)
    metrics.record("TurnLatency", 412.5, "Milliseconds")
    metrics.record("CallCost", 0.0831, "None")
    [first, second] = lines(stream)
    assert_emf(first, "TurnLatency", "Milliseconds", 412.5)
    assert_emf(second, "CallCost", "None", 0.0831)
    assert stream.getvalue().count("\n") == 2


@pytest.mark.parametrize(
    ("name", "value", "unit"),
    [
        ("TurnLatency", 1.0, "Millis"),
        ("caller +14155550123", 1.0, "Count"),
        ("", 1.0, "Count"),
        ("BargeIns", True, "Count"),
    ],
)
def test_invalid_records_are_refused(name: str, value: float, unit: str) -> None:
    stream = io.StringIO()
    with pytest.raises(ValueError, match=r"invalid metric name|CloudWatch unit|needs a number"):
        RelayMetrics("PhoneVoiceAgent", stream=stream).record(name, value, unit)
    assert stream.getvalue() == ""


def test_non_finite_values_are_skipped_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    metrics = RelayMetrics("PhoneVoiceAgent", stream=stream)
    metrics.record("CallCost", float("nan"), "None")
    metrics.record("CallDuration", float("inf"), "Seconds")
    assert stream.getvalue() == ""
    assert "CallCost skipped" in caplog.text


def test_active_calls_counted_but_not_written_on_change() -> None:
    """Only the fixed-interval reporter writes ActiveCalls: a data point per change would weigh busy tasks more in
    the scaling policy's Average."""
    stream = io.StringIO()
    metrics = RelayMetrics("PhoneVoiceAgent", stream=stream)
    metrics.call_started()
    metrics.call_started()
    assert metrics.active_calls == 2
    metrics.call_ended()
    metrics.call_ended()
    metrics.call_ended()  # one too many: ignored, never negative
    assert metrics.active_calls == 0
    assert stream.getvalue() == ""


async def test_reporter_writes_the_current_count_each_interval() -> None:
    stream = CountingStream(lines_wanted=1)
    metrics = RelayMetrics("PhoneVoiceAgent", stream=stream)
    metrics.call_started()
    metrics.call_started()
    metrics.call_ended()
    reporter = asyncio.create_task(metrics.run_active_calls_reporter(interval=3600))
    await asyncio.wait_for(stream.enough.wait(), timeout=5)
    reporter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reporter
    [line] = lines(stream)  # one data point per interval, whatever happened in between
    assert_emf(line, "ActiveCalls", "Count", 1)


async def test_listeners_hear_every_change_sync_and_async() -> None:
    metrics = RelayMetrics("PhoneVoiceAgent", stream=io.StringIO())
    heard_sync: list[int] = []
    heard_async: list[int] = []

    async def on_change(count: int) -> None:
        await asyncio.sleep(0)
        heard_async.append(count)

    def broken(count: int) -> None:
        raise RuntimeError("listener bug")

    metrics.add_listener(heard_sync.append)
    metrics.add_listener(broken)  # a failing listener must not stop the others or the call
    metrics.add_listener(on_change)
    metrics.call_started()
    metrics.call_started()
    metrics.call_ended()
    await metrics.drain_listeners()
    assert heard_sync == [1, 2, 1]
    assert sorted(heard_async) == [1, 1, 2]


class CountingStream(io.StringIO):
    def __init__(self, lines_wanted: int) -> None:
        super().__init__()
        self.lines_wanted = lines_wanted
        self.enough = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count("\n") >= self.lines_wanted:
            self.enough.set()
        return written


async def test_reporter_repeats_active_calls_until_cancelled() -> None:
    stream = CountingStream(lines_wanted=4)
    metrics = RelayMetrics("PhoneVoiceAgent", stream=stream)
    metrics.call_started()
    reporter = asyncio.create_task(metrics.run_active_calls_reporter(interval=0.001))
    await asyncio.wait_for(stream.enough.wait(), timeout=5)
    reporter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reporter
    assert all(line["ActiveCalls"] == 1 for line in lines(stream))


class ClosedStream(io.StringIO):
    def write(self, text: str) -> int:
        raise ValueError("I/O operation on closed file")


def test_a_broken_stream_does_not_raise() -> None:
    metrics = RelayMetrics("PhoneVoiceAgent", stream=ClosedStream())
    metrics.call_started()
    assert metrics.active_calls == 1
