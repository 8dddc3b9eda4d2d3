from __future__ import annotations

import json
from datetime import datetime

from relay.tools import ToolRegistry

from .conftest import ZONE, MakeContext


async def test_open_now_with_closing_time_and_next_opening(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("get_business_hours", "{}", make_context())
    assert outcome.ok
    assert outcome.action is None
    out = outcome.output
    assert out["open_now"] is True
    assert out["closes_at"] == "17:00"
    assert out["today_hours"] == ["09:00-17:00"]
    assert out["now_local"] == "Tuesday 2030-06-04 14:12"
    assert out["timezone"] == "America/New_York"
    assert out["next_opening"] == "Wednesday 2030-06-05 at 09:00"
    json.dumps(out)  # what goes to the model must be JSON


async def test_closed_now_on_sunday(registry: ToolRegistry, make_context: MakeContext) -> None:
    sunday_noon = datetime(2030, 6, 9, 12, 0, tzinfo=ZONE)
    outcome = await registry.run("get_business_hours", "", make_context(now=sunday_noon))
    assert outcome.ok
    assert outcome.output["open_now"] is False
    assert "closes_at" not in outcome.output
    assert outcome.output["today_hours"] == []
    assert outcome.output["next_opening"] == "Monday 2030-06-10 at 09:00"


async def test_hours_on_a_given_date(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("get_business_hours", '{"date": "2030-06-08"}', make_context())
    assert outcome.ok
    assert outcome.output["weekday"] == "Saturday"
    assert outcome.output["open_that_day"] is True
    assert outcome.output["hours"] == ["10:00-14:00"]


async def test_impossible_date_is_a_graceful_error(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("get_business_hours", '{"date": "2030-02-30"}', make_context())
    assert not outcome.ok
    assert "not a calendar date" in outcome.output["error"]
