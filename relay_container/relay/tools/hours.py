"""`get_business_hours`: whether the business is open now, its hours on a day, and when it next opens."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from relay.tools.base import Tool, ToolContext, ToolError, ToolOutcome
from relay.tools.schedule import Opening, OpeningSchedule, format_minutes, weekday_name

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ToolError(f"{text!r} is not a calendar date. Ask the caller for the date again.") from None


def describe_opening(opening: Opening) -> str:
    return f"{weekday_name(opening.day)} {opening.day.isoformat()} at {format_minutes(opening.opens)}"


class BusinessHoursArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    date: str | None = Field(
        default=None,
        pattern=DATE_PATTERN,
        description="A specific day to look up, YYYY-MM-DD in the business's calendar. Leave out for today / now.",
    )


class GetBusinessHours(Tool[BusinessHoursArgs]):
    name = "get_business_hours"
    description = (
        "Look up the business's opening hours. Use it whenever the caller asks if the business is open, when it "
        "opens or closes, or its hours on a particular day, instead of guessing. Without a date it answers for "
        "right now (open now or not, today's hours, the next opening). Answer in one short sentence with the "
        "times in the business's local time."
    )
    arguments = BusinessHoursArgs

    def __init__(self, schedule: OpeningSchedule) -> None:
        self.schedule = schedule

    async def run(self, args: BusinessHoursArgs, ctx: ToolContext) -> ToolOutcome:
        local_now = self.schedule.local(ctx.clock())
        output: dict[str, Any] = {
            "timezone": self.schedule.timezone_name,
            "now_local": f"{weekday_name(local_now.date())} {local_now:%Y-%m-%d %H:%M}",
            "weekly_hours": self.schedule.describe_week(),
        }
        if args.date is not None:
            day = parse_day(args.date)
            openings = self.schedule.openings_on(day)
            output["date"] = day.isoformat()
            output["weekday"] = weekday_name(day)
            output["open_that_day"] = bool(openings)
            output["hours"] = [o.label for o in openings]
            return ToolOutcome(output=output)

        current = self.schedule.current_opening(local_now)
        following = self.schedule.next_opening(local_now)
        output["open_now"] = current is not None
        output["today_hours"] = [o.label for o in self.schedule.openings_on(local_now.date())]
        if current is not None:
            output["closes_at"] = format_minutes(current.closes)
        output["next_opening"] = describe_opening(following) if following else None
        return ToolOutcome(output=output)
