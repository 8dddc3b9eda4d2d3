"""The system prompt: the line's template (a profile's `prompt_file`, else the built-in one in RELAY_PROMPT_FILE),
filled with the line's business (name, hours, holidays, time zone, language) and the call's own context (local time,
whether the business is open, direction, whether the caller is known, what the agent already said).

A template may use any of the fields below in `{braces}`; an unknown field is left as written rather than failing
the call (a profile's prompt is checked by people, not by the relay).

Whether the caller is known comes from their profile only when the number is trustworthy (`CallRecord.
caller_id_verified`: an outbound call, or an inbound one the carrier fully attested); the relay does not even read the
profile otherwise. It says how often they called and when, never a name."""

from __future__ import annotations

from datetime import datetime

from callcore.models import CallDirection, CallRecord, utc_now
from callcore.store.callers import CallerProfile
from relay.line import LineSettings


class FirstTimeCaller:
    """The caller directory was read and has no profile for this number."""


FIRST_TIME = FirstTimeCaller()
# None: not looked up (yet, or the lookup failed, or the number is withheld): the prompt says nothing either way.
CallerHistory = CallerProfile | FirstTimeCaller | None


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return f"{{{key}}}"


def _time_of_day(local: datetime) -> str:
    if local.hour < 12:
        return "morning"
    if local.hour < 18:
        return "afternoon"
    return "evening"


def describe_history(history: CallerHistory, line: LineSettings) -> str | None:
    if isinstance(history, FirstTimeCaller):
        return "first-time caller"
    if history is None:
        return None
    calls = "1 previous call" if history.call_count == 1 else f"{history.call_count} previous calls"
    last = history.last_call_at.astimezone(line.timezone).strftime("%Y-%m-%d")
    # Never the name on their last booking: whoever holds the phone (or spoofs the number) is not necessarily that
    # person, and a model told a name will say it. The caller gives their name when it is needed.
    return f"returning caller, {calls}, last on {last}"


def describe_holidays(line: LineSettings, today: datetime) -> str:
    upcoming = sorted(day for day in line.holidays if day >= today.date())
    if not upcoming:
        return "none coming up"
    return ", ".join(f"{day:%A} {day.isoformat()}" for day in upcoming[:10])


def render_instructions(
    line: LineSettings,
    record: CallRecord,
    *,
    greeting: str,
    now: datetime | None = None,
    history: CallerHistory = None,
) -> str:
    local = (now or utc_now()).astimezone(line.timezone)
    known = describe_history(history, line)
    hours = line.weekly_hours
    is_open = hours.is_open(local) and local.date() not in line.holidays
    if record.direction is CallDirection.OUTBOUND:
        direction = "outbound: you called them"
        caller = "the person you called on behalf of the business"
        if known:
            caller += f" ({known})"
        if record.context:
            caller += f"; you are calling about: {record.context}"
    else:
        direction = "inbound: they called the business"
        if known:
            caller = f"a {known}; ask for their name when you need it"
        else:
            caller = "a caller; you do not know their name or history yet, so ask when you need it"
    fields = _Fields(
        business_name=line.business_name,
        local_time=local.strftime("%H:%M"),
        weekday=local.strftime("%A"),
        local_date=local.strftime("%Y-%m-%d"),  # the booking tools take dates as YYYY-MM-DD
        time_of_day=_time_of_day(local),
        open_status="open" if is_open else "closed",
        business_hours=hours.describe(),
        holidays=describe_holidays(line, local),
        timezone=line.timezone.key,
        language=line.language,
        direction=direction,
        caller_context=caller,
        greeting=greeting,
    )
    return line.prompt_template.format_map(fields)
