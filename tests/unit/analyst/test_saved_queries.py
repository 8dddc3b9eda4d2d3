"""The saved Athena queries, unchanged, run by DuckDB (through `analyst.athena_sql`'s documented translation) over the
files the real writers left in S3 for a few hundred generated calls, and checked against figures computed here from
what was generated."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from analyst.athena_sql import athena_session, register_table, run_saved_query
from callcore.models import CallLatencies
from callcore.transcripts import CALLS_PREFIX, TRANSCRIPTS_PREFIX, CallSummaryLine, TranscriptLine
from infra.constructs.analytics import CALLS_TABLE, TRANSCRIPTS_TABLE, glue_database_name, saved_queries
from tests.unit.analyst.call_history import GeneratedCall
from tests.unit.analyst.conftest import History
from tests.unit.lambdas.events import BUCKET

DATABASE = glue_database_name("PhoneVoiceAgent")


@pytest.fixture
def archive_copy(analyst_env: History, tmp_path: Path) -> Path:
    """The bucket's files on disk under their S3 keys, as `aws s3 sync` would leave them."""
    client = analyst_env.archive.client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for entry in page.get("Contents", []):
            target = tmp_path / entry["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read())
    return tmp_path


@pytest.fixture
def results(archive_copy: Path) -> dict[str, list[dict[str, object]]]:
    db = athena_session()
    register_table(
        db, database=DATABASE, table=CALLS_TABLE, root=archive_copy, prefix=CALLS_PREFIX, model=CallSummaryLine
    )
    register_table(
        db,
        database=DATABASE,
        table=TRANSCRIPTS_TABLE,
        root=archive_copy,
        prefix=TRANSCRIPTS_PREFIX,
        model=TranscriptLine,
    )
    return {name: run_saved_query(db, sql) for name, (_, sql) in saved_queries(DATABASE).items()}


def last_30_days(history: History) -> list[GeneratedCall]:
    cutoff = (datetime.now(UTC) - timedelta(days=30)).date()
    calls = [c for c in history.calls if c.created_at.date() >= cutoff]
    assert len(calls) < len(history.calls), "the history has calls outside the window, which the queries must skip"
    return calls


def rounded(value: Decimal | float, places: int) -> float:
    return float(Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def as_float(value: object) -> object:
    return float(value) if isinstance(value, Decimal) else value


def nearest_rank(values: Sequence[int], q: float) -> int | None:
    """The smallest value with at least a share q of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def by_day(calls: list[GeneratedCall]) -> dict[str, list[GeneratedCall]]:
    days: dict[str, list[GeneratedCall]] = {}
    for call in calls:
        days.setdefault(call.day, []).append(call)
    return dict(sorted(days.items(), reverse=True))


def test_the_archive_holds_a_summary_per_call_and_a_transcript_per_answered_call(analyst_env, archive_copy):
    summaries = list((archive_copy / CALLS_PREFIX).rglob("*.json"))
    transcripts = list((archive_copy / TRANSCRIPTS_PREFIX).rglob("*.jsonl"))
    assert len(summaries) == len(analyst_env.calls) >= 200
    assert len(transcripts) == sum(1 for c in analyst_env.calls if c.turns)


def test_calls_per_day_by_outcome(analyst_env, results):
    rows = results["calls-per-day-by-outcome"]
    expected = {}
    for day, calls in by_day(last_30_days(analyst_env)).items():
        for outcome in {c.outcome.value for c in calls}:
            group = [c for c in calls if c.outcome.value == outcome]
            durations = [c.duration_seconds for c in group if c.duration_seconds is not None]
            average = rounded(Decimal(sum(durations)) / len(durations), 1) if durations else None
            expected[(day, outcome)] = (len(group), average)
    assert {(r["call_day"], r["outcome"]): (r["calls"], as_float(r["avg_seconds"])) for r in rows} == expected
    assert [r["call_day"] for r in rows] == sorted((r["call_day"] for r in rows), reverse=True)


def test_transfer_rate_per_day(analyst_env, results):
    rows = results["transfer-rate-per-day"]
    expected = [
        {
            "call_day": day,
            "calls": len(calls),
            "transferred": sum(c.transferred for c in calls),
            "transfer_rate_pct": rounded(Decimal(100) * sum(c.transferred for c in calls) / len(calls), 1),
        }
        for day, calls in by_day(last_30_days(analyst_env)).items()
    ]
    assert [{k: as_float(v) for k, v in r.items()} for r in rows] == expected


def test_latency_percentiles_per_day(analyst_env, results):
    rows = results["latency-percentiles-per-day"]
    expected = []
    for day, calls in by_day(last_30_days(analyst_env)).items():
        talked = [c for c in calls if c.greeting_ms is not None]
        per_call = [CallLatencies(turn_ms=list(c.turn_ms)) for c in talked]
        expected.append(
            {
                "call_day": day,
                "calls": len(calls),
                "greeting_p50_ms": nearest_rank([c.greeting_ms for c in talked if c.greeting_ms is not None], 0.5),
                "greeting_p95_ms": nearest_rank([c.greeting_ms for c in talked if c.greeting_ms is not None], 0.95),
                "median_call_turn_p50_ms": nearest_rank([p.turn_p50_ms for p in per_call if p.turn_p50_ms], 0.5),
                "p95_call_turn_p95_ms": nearest_rank([p.turn_p95_ms for p in per_call if p.turn_p95_ms], 0.95),
            }
        )
    assert rows == expected


def test_model_cost_per_day(analyst_env, results):
    rows = results["model-cost-per-day"]
    expected = []
    for day, calls in by_day(last_30_days(analyst_env)).items():
        seconds = sum(c.duration_seconds or 0 for c in calls)
        cost = sum((c.cost for c in calls if c.cost is not None), start=Decimal(0))
        expected.append(
            {
                "call_day": day,
                "calls": len(calls),
                "call_minutes": rounded(Decimal(seconds) / 60, 1),
                "model_cost_usd": rounded(cost, 2),
                "usd_per_call_minute": rounded(cost / (Decimal(seconds) / 60), 4) if seconds else None,
            }
        )
    assert [{k: as_float(v) for k, v in r.items()} for r in rows] == expected
