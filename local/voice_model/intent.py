"""The stand-in's mind: what was recognised, turned into the session's declared tool calls and short spoken replies
built from the tools' results. A handful of rules over the conversation, not a language model: it handles opening
hours, availability and booking (day, time, party size, name), a transfer to a person, and goodbye, which is what
the local call and the softphone need, and says plainly when it did not understand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from local.voice_model import speaking
from local.voice_model.grammar import DAYS, NUMBERS, words_of

TurnKind = Literal["user", "assistant", "system", "function_call", "function_call_output"]
WEEKDAYS = DAYS[2:]
_PARTS_OF_DAY = {"morning": 0, "afternoon": 12, "evening": 12}
_SPAN = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")
_NEXT_OPENING = re.compile(r"(\w+day) (\d{4}-\d{2}-\d{2}) at (\d{2}:\d{2})")
_BUSINESS = re.compile(r"(?:receptionist|assistant|agent) (?:of|for|at) ([A-Z][^.,;:\n]*)")
_CALLING = re.compile(r"[Tt]hanks for calling ([A-Z][^.,;:!\n]*)")
_VERBATIM = re.compile(r"\b[Ss]ay(?:ing)?\b[^:]*:\s*\"?(?P<text>[^\"]+?)\"?\s*$", re.DOTALL)
_WEEKDAY_IN_PARENS = re.compile(r"\((" + "|".join(day.capitalize() for day in WEEKDAYS) + r")\b")

DID_NOT_CATCH = (
    "Sorry, I didn't catch that. I can tell you our opening hours, book a table, or put you through to a colleague."
)


@dataclass(frozen=True)
class Turn:
    """One conversation item as the stand-in reads it: who, and the words (a transcript, a message, a tool's JSON
    arguments or output). Tool items carry the tool's name."""

    kind: TurnKind
    text: str = ""
    tool: str = ""


@dataclass(frozen=True)
class Context:
    instructions: str
    tools: frozenset[str]
    turns: tuple[Turn, ...]
    today: date  # in the business's calendar


@dataclass(frozen=True)
class Reply:
    """What a response does: say something, or call a declared tool (its arguments as a dict)."""

    speech: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


# ---- reading the session ---------------------------------------------------------------------------------------------


def business_name(instructions: str, turns: tuple[Turn, ...] = ()) -> str | None:
    """The business the agent answers for: from the instructions ('receptionist of X'), else from its greeting."""
    match = _BUSINESS.search(instructions)
    if match is None:
        greeting = next((turn.text for turn in turns if turn.kind == "assistant"), "")
        match = _CALLING.search(greeting)
    return match.group(1).strip() if match else None


def infer_today(instructions: str, now: datetime) -> date:
    """The business's date today. The instructions name the local weekday ('(Friday, evening)'); of the dates this
    instant can be anywhere on Earth, the one with that weekday is it. Without a weekday: this machine's date."""
    match = _WEEKDAY_IN_PARENS.search(instructions)
    if match is None:
        return now.astimezone().date()
    weekday = WEEKDAYS.index(match.group(1).lower())
    utc_day = now.astimezone().date()
    for offset in (0, -1, 1):
        candidate = utc_day + timedelta(days=offset)
        if candidate.weekday() == weekday:
            return candidate
    return utc_day


def verbatim(instructions: str) -> str | None:
    """Words a response was told to say as they are ('Say exactly the following ...: TEXT', 'by saying: "TEXT"')."""
    match = _VERBATIM.search(instructions.strip())
    return match.group("text").strip() if match else None


def _opening_spans(instructions: str) -> list[tuple[int, int]]:
    return [(int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])) for m in _SPAN.finditer(instructions)]


# ---- what the caller said --------------------------------------------------------------------------------------------


@dataclass
class BookingRequest:
    day: date | None = None
    hour: int | None = None
    minute: int = 0
    part_of_day: str | None = None
    party_size: int | None = None
    name: str | None = None

    def update(self, words: list[str], today: date) -> None:
        for index, word in enumerate(words):
            following = words[index + 1] if index + 1 < len(words) else ""
            previous = words[index - 1] if index else ""
            if word in DAYS:
                self.day = _resolve_day(word, today)
            elif word == "noon":
                self.hour, self.minute, self.part_of_day = 12, 0, "afternoon"
            elif word in NUMBERS and previous == "at":
                self.hour, self.minute, self.part_of_day = NUMBERS.index(word) + 1, 0, None
                if following == "thirty":
                    self.minute = 30
            elif word in NUMBERS and previous == "for":
                self.party_size = NUMBERS.index(word) + 1
            elif word in _PARTS_OF_DAY and self.hour is not None:
                self.part_of_day = word
        name = _name_in(words)
        if name:
            self.name = name

    def time(self, instructions: str) -> str | None:
        """HH:MM: a part of day said decides am/pm; else the reading that falls within the opening hours; else
        one to seven means the afternoon or evening."""
        if self.hour is None:
            return None
        hour = self.hour % 12
        if self.part_of_day is not None:
            hour += _PARTS_OF_DAY[self.part_of_day]
        else:
            spans = _opening_spans(instructions)
            morning, evening = hour * 60 + self.minute, (hour + 12) * 60 + self.minute
            inside = [m for m in (morning, evening) if any(o <= m < c for o, c in spans)]
            if inside:
                hour = inside[0] // 60
            elif 1 <= hour <= 7:
                hour += 12
        return f"{hour:02d}:{self.minute:02d}"


def _resolve_day(word: str, today: date) -> date:
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    ahead = (WEEKDAYS.index(word) - today.weekday()) % 7 or 7  # "on Friday" said on a Friday: next week's
    return today + timedelta(days=ahead)


def _name_in(words: list[str]) -> str | None:
    text = " ".join(words)
    match = re.search(r"\b(?:name is|under the name|under|it is for) ([a-z]+)", text)
    if match is None or match.group(1) in {"the", "a"}:
        return None
    return match.group(1).capitalize()


def _has(words: list[str], *phrases: str) -> bool:
    text = f" {' '.join(words)} "
    return any(f" {phrase} " in text for phrase in phrases)


# ---- the replies -----------------------------------------------------------------------------------------------------


def respond(context: Context) -> Reply:
    """The next thing the agent does, given everything so far."""
    turns = [turn for turn in context.turns if turn.kind != "assistant" or turn.text]
    last = turns[-1] if turns else None
    if last is None:
        return Reply(speech="Hello! How can I help you today?")
    if last.kind == "function_call_output":
        return _after_tool(last, context)
    if last.kind == "system":
        return _after_instruction(last.text, context)
    if last.kind == "user":
        return _after_caller(context)
    return Reply(speech="Is there anything else I can help you with?")


def _tool_reply(context: Context, name: str, arguments: dict[str, Any], otherwise: str) -> Reply:
    """Call `name` if the session declared it, else say `otherwise` (a stand-in must not call undeclared tools)."""
    return Reply(tool=name, arguments=arguments) if name in context.tools else Reply(speech=otherwise)


def _booking(context: Context) -> tuple[BookingRequest, bool]:
    """The booking being arranged (what the caller said since the last booking made) and whether one is."""
    request = BookingRequest()
    arranging = False
    for turn in context.turns:
        if turn.kind == "function_call_output" and turn.tool == "book_appointment" and _json(turn.text).get("booked"):
            request, arranging = BookingRequest(), False
        elif turn.kind == "user":
            words = words_of(turn.text)
            if _has(words, "book", "reserve", "table"):
                arranging = True
            if arranging:
                request.update(words, context.today)
    return request, arranging


def _after_caller(context: Context) -> Reply:
    words = words_of(context.turns[-1].text)
    if not words:
        return Reply(speech="Sorry, I didn't catch that. Could you say it again?")
    if _has(words, "person", "human", "transfer me", "put me through"):
        return _tool_reply(
            context,
            "transfer_to_human",
            {"reason": "the caller asked for a person", "summary": "The caller asked to speak with a member of staff."},
            "I'm sorry, I can't put you through to a colleague on this line.",
        )
    if _has(words, "goodbye", "bye", "that is all"):
        return _tool_reply(context, "end_call", {"reason": "the caller said goodbye"}, "Thanks for calling. Goodbye!")
    if _has(words, "hours", "open", "close"):
        day = next((_resolve_day(word, context.today) for word in words if word in DAYS), None)
        arguments = {"date": day.isoformat()} if day is not None and day != context.today else {}
        return _tool_reply(context, "get_business_hours", arguments, "I'm sorry, I can't look up our hours now.")
    request, arranging = _booking(context)
    if arranging:
        return _next_booking_step(request, context)
    if _has(words, "no"):
        return Reply(speech="Alright. Is there anything else I can help you with?")
    return Reply(speech=DID_NOT_CATCH)


def _next_booking_step(request: BookingRequest, context: Context, *, just_checked: bool = False) -> Reply:
    """Ask for what is missing (day, time), check the time, then ask for a name and book. A caller who answers an
    offer of other times with a yes gets the first one offered."""
    if request.day is None:
        return Reply(speech="Sure. For which day would you like the table?")
    when = request.time(context.instructions)
    if when is None:
        return Reply(speech=f"And at what time on {speaking.day_and_date(request.day)}?")
    availability = _availability_for(request.day, when, context)
    if availability is None:
        check = {"date": request.day.isoformat(), "time": when}
        return _tool_reply(context, "check_availability", check, "I'm sorry, I can't check tables right now.")
    if not availability.get("requested_time_available"):
        offered = availability.get("nearest_available_times") or []
        caller = [turn for turn in context.turns if turn.kind == "user"]
        if just_checked or not offered or not caller or not _has(words_of(caller[-1].text), "yes", "okay"):
            return _offer_alternatives(availability)
        when = offered[0]
    if request.name is None:
        if just_checked:
            party = f" for {NUMBERS[request.party_size - 1]}" if request.party_size else ""
            return Reply(
                speech=f"Good news: we have a table{party} on {speaking.day_and_date(request.day)} at "
                f"{speaking.clock_time(when)}. What name should I put the booking under?"
            )
        return Reply(speech="What name should I put the booking under?")
    arguments: dict[str, Any] = {"name": request.name, "date": request.day.isoformat(), "time": when}
    if request.party_size is not None:
        arguments["party_size"] = request.party_size
    return _tool_reply(context, "book_appointment", arguments, "I'm sorry, I can't make bookings right now.")


def _availability_for(day: date, when: str, context: Context) -> dict[str, Any] | None:
    for turn in reversed(context.turns):
        if turn.kind == "function_call_output" and turn.tool == "check_availability":
            output = _json(turn.text)
            if output.get("date") == day.isoformat() and output.get("requested_time") == when:
                return output
    return None


def _offer_alternatives(output: dict[str, Any]) -> Reply:
    day = date.fromisoformat(output["date"]) if "date" in output else None
    on_day = f" on {speaking.day_and_date(day)}" if day else ""
    times = output.get("nearest_available_times") or (output.get("available_times") or [])[:3]
    if not times:
        return Reply(speech=f"I'm sorry, we have no table free{on_day}. Would another day suit you?")
    offered = ", or ".join(speaking.clock_time(t) for t in times[:3])
    asked = output.get("requested_time")
    opening = f"Sorry, {speaking.clock_time(asked)}{on_day} is taken. " if asked else ""
    return Reply(speech=f"{opening}I could offer {offered}{on_day if not asked else ''}. Which would you like?")


def _after_tool(turn: Turn, context: Context) -> Reply:
    output = _json(turn.text)
    if "error" in output:
        return Reply(speech="I'm sorry, that didn't work. Could we try another day or time?")
    if turn.tool == "get_business_hours":
        return Reply(speech=_hours_reply(output, context))
    if turn.tool == "check_availability":
        request, _ = _booking(context)
        return _next_booking_step(request, context, just_checked=True)
    if turn.tool == "book_appointment":
        if not output.get("booked"):
            return _offer_alternatives(output)
        day = date.fromisoformat(output["date"])
        party = f" for {NUMBERS[output['party_size'] - 1]}" if 1 < output.get("party_size", 1) <= 12 else ""
        code = output.get("confirmation_code")
        confirmation = f" Your confirmation code is {speaking.spelled(code)}." if code else ""
        return Reply(
            speech=f"You're all set, {output['name']}: a table{party} on {speaking.day_and_date(day)} at "
            f"{speaking.clock_time(output['time'])}.{confirmation} Is there anything else I can help you with?"
        )
    if turn.tool == "transfer_to_human":
        if output.get("transferring"):
            return Reply(speech="Of course. I'm connecting you to a member of the team now.")
        return Reply(speech="I'm sorry, no one can take the call right now. I can take a message, or help you myself.")
    if turn.tool == "end_call":
        business = business_name(context.instructions, context.turns)
        return Reply(speech=f"Thanks for calling{' ' + business if business else ''}. Goodbye!")
    return Reply(speech="Done. Is there anything else I can help you with?")


def _hours_reply(output: dict[str, Any], context: Context) -> str:
    if "open_that_day" in output:
        day = date.fromisoformat(output["date"])
        if not output["open_that_day"]:
            return f"We're closed on {speaking.day_and_date(day)}."
        spans = " and ".join(speaking.hours_span(label) for label in output.get("hours", []))
        return f"On {speaking.day_and_date(day)} we're open {spans}."
    if output.get("open_now") and output.get("closes_at"):
        now = f"We're open right now, until {speaking.clock_time(output['closes_at'])} today."
    else:
        upcoming = _NEXT_OPENING.search(output.get("next_opening") or "")
        now = "We're closed right now." + (
            f" We open again on {upcoming[1]} at {speaking.clock_time(upcoming[3])}." if upcoming else ""
        )
    week = speaking.weekly_hours(output.get("weekly_hours", ""))
    offer = (
        " If you'd like to come in, I can book a table for you: just tell me the day, the time and how many people."
        if "book_appointment" in context.tools
        else ""
    )
    return f"{now} Our opening hours are {week}.{offer}"


def _after_instruction(text: str, context: Context) -> Reply:
    lowered = text.lower()
    if "wrap up" in lowered or "time limit" in lowered:
        return Reply(speech="We're nearly out of time, so I'll say goodbye now. Thanks for calling!")
    if "transfer could not be completed" in lowered:
        return Reply(speech="I'm sorry, I couldn't connect you. I can take a message instead.")
    callers = [turn for turn in context.turns if turn.kind == "user"]
    if callers and callers[-1] is not context.turns[-1]:
        return Reply(speech="Of course, I'm still here. What else can I do for you?")
    return Reply(speech="Is there anything else I can help you with?")


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"error": "not JSON"}
    return value if isinstance(value, dict) else {"error": "not an object"}
