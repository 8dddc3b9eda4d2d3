"""The relay's CloudWatch metrics as Embedded Metric Format lines on stdout (the awslogs driver ships them; CloudWatch
extracts the metrics). One JSON line per value, dimension `Service`, nothing else: no call ids, no numbers, so no
personal data can reach a metric.

`ActiveCalls` is what the service scales on: it is written only by the reporter, on a fixed interval (10 s). Writing
it on every change too would give a busy task more data points per minute than an idle one, tilting the target
tracking policy's `Average` towards the busy tasks. The live count (`active_calls`) and the listeners (task scale-in
protection) still follow every change.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TextIO

from callcore.metric_names import RelayMetric

logger = logging.getLogger(__name__)

ACTIVE_CALLS = RelayMetric.ACTIVE_CALLS.value

# CloudWatch's StandardUnit values.
UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
        "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
        "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
        "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)  # fmt: skip
# A metric name is a fixed identifier chosen in code; this pattern keeps free text (and anything personal) out.
_METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,254}$")

ActiveCallsListener = Callable[[int], Awaitable[None] | None]


class RelayMetrics:
    def __init__(self, namespace: str, *, service: str = "relay", stream: TextIO = sys.stdout) -> None:
        if not namespace or len(namespace) > 255:
            raise ValueError("a metrics namespace has 1 to 255 characters")
        self.namespace = namespace
        self.service = service
        self._stream = stream
        self._active_calls = 0
        self._listeners: list[ActiveCallsListener] = []
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def active_calls(self) -> int:
        return self._active_calls

    def call_started(self) -> None:
        self._set_active_calls(self._active_calls + 1)

    def call_ended(self) -> None:
        if self._active_calls == 0:
            logger.warning("call_ended with no active call: ignored")
            return
        self._set_active_calls(self._active_calls - 1)

    def add_listener(self, callback: ActiveCallsListener) -> None:
        """`callback(count)` runs on every change of the active-call count; a coroutine runs as a task."""
        self._listeners.append(callback)

    def record(self, name: str, value: float, unit: str) -> None:
        if not _METRIC_NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        if unit not in UNITS:
            raise ValueError(f"{unit!r} is not a CloudWatch unit")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"metric {name} needs a number")
        if not math.isfinite(value):
            # A computed value gone wrong (e.g. a cost from missing usage) costs a data point, never a call.
            logger.warning("metric %s skipped: value is not finite", name)
            return
        document = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [["Service"]],
                        "Metrics": [{"Name": name, "Unit": unit}],
                    }
                ],
            },
            "Service": self.service,
            name: value,
        }
        try:
            self._stream.write(json.dumps(document, separators=(",", ":")) + "\n")
            self._stream.flush()
        except (OSError, ValueError) as error:  # a closed stdout must not take a call down with it
            logger.warning("metric %s not written: %s", name, type(error).__name__)

    async def run_active_calls_reporter(self, interval: float = 10.0) -> None:
        """Write ActiveCalls every `interval` seconds until cancelled: the scaling policy needs a steady series,
        including the zeros of an idle task."""
        while True:
            self.record(ACTIVE_CALLS, self._active_calls, "Count")
            await asyncio.sleep(interval)

    async def drain_listeners(self) -> None:
        """Wait for the listener tasks still running (at shutdown, and in tests)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _set_active_calls(self, count: int) -> None:
        self._active_calls = count  # no data point here: see the module docstring
        for callback in list(self._listeners):
            try:
                result = callback(count)
            except Exception as error:
                logger.warning("active-calls listener failed: %s", type(error).__name__)
                continue
            if inspect.isawaitable(result):
                self._schedule(result)

    def _schedule(self, awaitable: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await awaitable
            except Exception as error:
                logger.warning("active-calls listener failed: %s", type(error).__name__)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.warning("async active-calls listener needs a running event loop: skipped")
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            return
        task = loop.create_task(guarded())
        # Keep a reference until done, or the task may be garbage-collected mid-flight.
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
