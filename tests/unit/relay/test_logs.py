"""The relay's log lines are JSON, and every line a call's tasks write carries its call_sid."""

from __future__ import annotations

import asyncio
import json
import logging

from relay.logs import CALL_SID, JsonFormatter

CALL = "CA" + "1" * 32


def formatted(logger: logging.Logger, message: str, *args: object, exc: bool = False) -> dict[str, object]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    handler = Collect()
    logger.addHandler(handler)
    try:
        if exc:
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logger.exception(message, *args)
        else:
            logger.warning(message, *args)
    finally:
        logger.removeHandler(handler)
    [line] = lines
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_line_outside_a_call_has_no_call_sid() -> None:
    line = formatted(logging.getLogger("relay.test"), "pool refilled with %d sessions", 2)
    assert line["message"] == "pool refilled with 2 sessions"
    assert line["level"] == "WARNING"
    assert line["logger"] == "relay.test"
    assert "call_sid" not in line


async def test_every_task_of_a_call_logs_under_its_call_sid() -> None:
    logger = logging.getLogger("relay.test")

    async def call_task() -> dict[str, object]:
        CALL_SID.set(CALL)

        async def spawned() -> dict[str, object]:  # a tool, a watchdog: created from the call's task
            return formatted(logger, "tool finished")

        return await asyncio.create_task(spawned())

    line = await asyncio.create_task(call_task())
    assert line["call_sid"] == CALL
    assert CALL_SID.get() is None  # the id stayed with the call's own tasks


def test_an_exception_is_part_of_the_same_json_line() -> None:
    line = formatted(logging.getLogger("relay.test"), "handling the model session failed", exc=True)
    assert "RuntimeError: boom" in str(line["exception"])
