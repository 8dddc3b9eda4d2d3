"""The system prompt: the template in RELAY_PROMPT_FILE, filled with the call's own context (local time, whether the
business is open, direction, what the agent already said)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

from callcore.models import CallDirection, CallRecord, utc_now
from relay.settings import RelaySettings


@cache
def _template(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _time_of_day(local: datetime) -> str:
    if local.hour < 12:
        return "morning"
    if local.hour < 18:
        return "afternoon"
    return "evening"


def render_instructions(
    settings: RelaySettings, record: CallRecord, *, greeting: str, now: datetime | None = None
) -> str:
    local = (now or utc_now()).astimezone(settings.timezone)
    hours = settings.weekly_hours
    if record.direction is CallDirection.OUTBOUND:
        direction = "outbound: you called them"
        caller = "the person you called on behalf of the business"
        if record.context:
            caller += f"; you are calling about: {record.context}"
    else:
        direction = "inbound: they called the business"
        caller = "a caller; you do not know their name or history yet, so ask when you need it"
    return _template(settings.prompt_file).format(
        business_name=settings.business_name,
        local_time=local.strftime("%H:%M"),
        weekday=local.strftime("%A"),
        time_of_day=_time_of_day(local),
        open_status="open" if hours.is_open(local) else "closed",
        business_hours=hours.describe(),
        direction=direction,
        caller_context=caller,
        greeting=greeting,
    )
