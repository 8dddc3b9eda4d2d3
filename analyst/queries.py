"""What the commands read: a date range, filters, the calls in it (newest first, a page of the by-day index at a
time), one row per call or per turn, and the daily figures (computed by DuckDB over those rows)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import SecretStr

from analyst.source import UserError
from callcore.masking import caller_hash, mask_phone
from callcore.models import E164_PATTERN, CallDirection, CallOutcome, CallRecord, TranscriptTurn
from callcore.settings import caller_hash_key
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive

_SINCE = re.compile(r"^(?P<amount>\d{1,4})(?P<unit>[mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DEFAULT_PAGE_SIZE = 100


# ---- the date range -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateRange:
    """[start, end) in UTC; calls are found by the UTC day they started on (the by-day index's key)."""

    start: datetime
    end: datetime

    def days_newest_first(self) -> list[str]:
        days: list[str] = []
        day = (self.end - timedelta(microseconds=1)).date()
        while day >= self.start.date():
            days.append(day.isoformat())
            day -= timedelta(days=1)
        return days

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def parse_since(value: str) -> timedelta:
    match = _SINCE.match(value.strip().lower())
    if not match:
        raise UserError(f"bad --since {value!r}: use a number and a unit, e.g. 30m, 12h, 7d, 2w")
    return timedelta(**{_UNITS[match.group("unit")]: int(match.group("amount"))})


def parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"bad {option} {value!r}: use a date as YYYY-MM-DD (UTC)") from None


def date_range(
    *, since: str | None, from_day: str | None, to_day: str | None, now: datetime | None = None
) -> DateRange:
    """`--since 7d` (the default), or `--from DAY [--to DAY]` (whole UTC days, both included)."""
    now = now or datetime.now(UTC)
    if since and (from_day or to_day):
        raise UserError("give either --since or --from/--to, not both")
    if from_day or to_day:
        first = parse_day(from_day, "--from") if from_day else None
        last = parse_day(to_day, "--to") if to_day else now.date()
        first = first or last
        if first > last:
            raise UserError(f"--from {first} is after --to {last}")
        start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        return DateRange(start, datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC))
    return DateRange(now - parse_since(since or "7d"), now)


# ---- filters --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallFilter:
    outcome: CallOutcome | None = None
    direction: CallDirection | None = None
    transferred: bool | None = None
    min_duration_seconds: int | None = None
    number: str | None = None  # the caller's or the business's number, E.164
    # The number's keyed hash (when CALLER_HASH_SECRET is given): finds calls whose stored number was since masked.
    number_hash: str | None = None
    business_numbers: frozenset[str] = field(default_factory=frozenset)  # a profile's numbers; empty = any

    def matches(self, record: CallRecord) -> bool:
        if self.outcome is not None and record.outcome is not self.outcome:
            return False
        if self.direction is not None and record.direction is not self.direction:
            return False
        if self.transferred is not None and (record.transfer_target is not None) != self.transferred:
            return False
        if self.min_duration_seconds is not None and (record.duration_seconds or 0) < self.min_duration_seconds:
            return False
        if self.number is not None and not self._number_matches(record):
            return False
        return not self.business_numbers or record.business_number in self.business_numbers

    def _number_matches(self, record: CallRecord) -> bool:
        if self.number in {record.caller_number, record.business_number}:
            return True
        return self.number_hash is not None and record.caller_hash == self.number_hash


def check_number(value: str) -> str:
    compact = re.sub(r"[\s().-]", "", value)
    if not E164_PATTERN.match(compact):
        raise UserError(f"bad --number {mask_phone(value)!r}: use an E.164 number such as +15551230000")
    return compact


def number_hash(number: str, environ: Mapping[str, str]) -> str | None:
    """The keyed hash of `number` the records carry, when the deployment's CALLER_HASH_SECRET is in the environment
    (records keep the raw number only for RAW_NUMBER_RETENTION_HOURS; the hash stays)."""
    secret = environ.get("CALLER_HASH_SECRET")
    if not secret:
        return None
    return caller_hash(caller_hash_key(SecretStr(secret), None), number)


def profile_numbers(profile: str, profiles_dir: Path = Path("profiles")) -> frozenset[str]:
    """The business numbers of a profile (`profiles/<id>.toml`, or a path to such a file): its `numbers` list."""
    path = Path(profile)
    if path.suffix != ".toml":
        path = profiles_dir / f"{profile}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no profile {profile!r}: {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"profile {path} is not valid TOML: {error}") from None
    numbers = data.get("numbers")
    if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) for n in numbers):
        raise UserError(f"profile {path} has no `numbers` list of E.164 numbers")
    return frozenset(numbers)


# ---- reading calls --------------------------------------------------------------------------------------------------


def iter_calls(
    store: CallStore,
    span: DateRange,
    call_filter: CallFilter | None = None,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    on_page: Callable[[int], None] | None = None,
) -> Iterator[CallRecord]:
    """Calls started within `span` that pass `call_filter`, newest first: each day's page of the by-day index in
    turn (`on_page(calls on it)` after each page), so a long range streams instead of loading at once."""
    call_filter = call_filter or CallFilter()
    for day in span.days_newest_first():
        start: dict[str, Any] | None = None
        while True:
            page = store.list_calls_by_day(day, limit=page_size, start=start, newest_first=True)
            if on_page is not None:
                on_page(len(page.calls))
            for record in page.calls:
                if span.contains(record.created_at) and call_filter.matches(record):
                    yield record
            if not page.next_token:
                break
            start = page.next_token


def read_turns(store: CallStore, archive: TranscriptArchive, record: CallRecord) -> list[TranscriptTurn]:
    """The transcript from S3; for a call still running (or whose relay died before writing it), the turns stored
    so far in DynamoDB."""
    turns = archive.read_transcript(record.call_sid, record.created_at)
    return turns if turns is not None else store.list_turns(record.call_sid)


# ---- rows -----------------------------------------------------------------------------------------------------------

CALL_COLUMNS = pa.schema(
    [
        ("call_sid", pa.string()),
        ("day", pa.string()),
        ("created_at", pa.string()),
        ("direction", pa.string()),
        ("caller_masked", pa.string()),
        ("business_masked", pa.string()),
        ("status", pa.string()),
        ("outcome", pa.string()),
        ("duration_seconds", pa.int64()),
        ("transferred", pa.bool_()),
        ("transfer_reason", pa.string()),
        ("turn_count", pa.int64()),
        ("barge_in_count", pa.int64()),
        ("tool_call_count", pa.int64()),
        ("greeting_ms", pa.int64()),
        ("turn_p50_ms", pa.int64()),
        ("turn_p95_ms", pa.int64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("estimated_cost_usd", pa.float64()),
        ("intent", pa.string()),
        ("resolution", pa.string()),
        ("sentiment", pa.float64()),
        ("lead_score", pa.int64()),
        ("recording_key", pa.string()),
    ]
)
TURN_COLUMNS = pa.schema(
    [
        ("call_sid", pa.string()),
        ("turn_index", pa.int64()),
        ("role", pa.string()),
        ("text", pa.string()),
        ("started_at", pa.string()),
        ("ended_at", pa.string()),
        ("interrupted", pa.bool_()),
        ("heard_ms", pa.int64()),
        ("tool_calls", pa.string()),  # JSON: [{name, arguments, result, ok, duration_ms}], the same in every format
    ]
)


def call_row(record: CallRecord) -> dict[str, Any]:
    usage, analysis = record.usage, record.analysis
    return {
        "call_sid": record.call_sid,
        "day": record.day,
        "created_at": record.created_at.astimezone(UTC).isoformat(),
        "direction": record.direction.value,
        "caller_masked": mask_phone(record.caller_number),
        "business_masked": mask_phone(record.business_number),
        "status": record.status.value,
        "outcome": record.outcome.value if record.outcome else None,
        "duration_seconds": record.duration_seconds,
        "transferred": record.transfer_target is not None,
        "transfer_reason": record.transfer_reason,
        "turn_count": record.turn_count,
        "barge_in_count": record.barge_in_count,
        "tool_call_count": record.tool_call_count,
        "greeting_ms": record.latencies.greeting_ms,
        "turn_p50_ms": record.latencies.turn_p50_ms,
        "turn_p95_ms": record.latencies.turn_p95_ms,
        "input_tokens": usage.input_audio_tokens + usage.input_text_tokens,
        "output_tokens": usage.output_audio_tokens + usage.output_text_tokens,
        "estimated_cost_usd": float(record.estimated_cost_usd) if record.estimated_cost_usd is not None else None,
        "intent": analysis.intent if analysis else None,
        "resolution": analysis.resolution.value if analysis else None,
        "sentiment": analysis.sentiment if analysis else None,
        "lead_score": analysis.lead_score if analysis else None,
        "recording_key": record.recording.key if record.recording else None,
    }


def turn_row(turn: TranscriptTurn) -> dict[str, Any]:
    return {
        "call_sid": turn.call_sid,
        "turn_index": turn.index,
        "role": turn.role.value,
        "text": turn.text,
        "started_at": turn.started_at.astimezone(UTC).isoformat(),
        "ended_at": turn.ended_at.astimezone(UTC).isoformat(),
        "interrupted": turn.interrupted,
        "heard_ms": turn.heard_ms,
        "tool_calls": json.dumps([tool.model_dump() for tool in turn.tool_calls], ensure_ascii=False),
    }


# ---- daily figures --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayFigures:
    day: str
    calls: int
    minutes: float
    outcomes: dict[str, int]
    transfer_rate_pct: float
    greeting_p50_ms: float | None
    greeting_p95_ms: float | None
    turn_p50_ms: float | None
    turn_p95_ms: float | None
    barge_ins: int
    cost_usd: float


# Percentiles are `quantile_cont` (linear interpolation between the two nearest values). Turn latency is taken over
# every turn of the day, not over each call's own percentiles.
_DAILY_SQL = """
WITH per_day AS (
    SELECT day, count(*) AS calls,
           coalesce(sum(duration_seconds), 0) / 60.0 AS minutes,
           100.0 * count(*) FILTER (WHERE transferred) / count(*) AS transfer_rate_pct,
           quantile_cont(greeting_ms, 0.5) AS greeting_p50_ms,
           quantile_cont(greeting_ms, 0.95) AS greeting_p95_ms,
           coalesce(sum(barge_in_count), 0) AS barge_ins,
           coalesce(sum(estimated_cost_usd), 0) AS cost_usd
    FROM calls GROUP BY day
), turns_per_day AS (
    SELECT day, quantile_cont(turn_ms, 0.5) AS turn_p50_ms, quantile_cont(turn_ms, 0.95) AS turn_p95_ms
    FROM turn_latencies GROUP BY day
)
SELECT per_day.*, turns_per_day.turn_p50_ms, turns_per_day.turn_p95_ms
FROM per_day LEFT JOIN turns_per_day USING (day)
ORDER BY day
"""
_OUTCOMES_SQL = "SELECT day, coalesce(outcome, 'unknown') AS outcome, count(*) AS calls FROM calls GROUP BY 1, 2"


def daily_figures(records: list[CallRecord]) -> list[DayFigures]:
    """Per UTC day: calls, minutes, outcomes, transfer rate, greeting and turn latency p50/p95, barge-ins, cost."""
    calls = pa.Table.from_pylist([call_row(r) for r in records], schema=CALL_COLUMNS)
    turn_latencies = pa.Table.from_pylist(
        [{"day": r.day, "turn_ms": ms} for r in records for ms in r.latencies.turn_ms],
        schema=pa.schema([("day", pa.string()), ("turn_ms", pa.int64())]),
    )
    with duckdb.connect() as db:
        db.register("calls", calls)
        db.register("turn_latencies", turn_latencies)
        outcomes: dict[str, dict[str, int]] = {}
        for day, outcome, count in db.execute(_OUTCOMES_SQL).fetchall():
            outcomes.setdefault(day, {})[outcome] = int(count)
        cursor = db.execute(_DAILY_SQL)
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    return [
        DayFigures(
            day=row["day"],
            calls=int(row["calls"]),
            minutes=float(row["minutes"]),
            outcomes=dict(sorted(outcomes.get(row["day"], {}).items(), key=lambda item: -item[1])),
            transfer_rate_pct=float(row["transfer_rate_pct"]),
            greeting_p50_ms=_float(row["greeting_p50_ms"]),
            greeting_p95_ms=_float(row["greeting_p95_ms"]),
            turn_p50_ms=_float(row["turn_p50_ms"]),
            turn_p95_ms=_float(row["turn_p95_ms"]),
            barge_ins=int(row["barge_ins"]),
            cost_usd=float(row["cost_usd"]),
        )
        for row in rows
    ]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
