"""The call record takes a post-call analysis once, its cost added to the call's in the same write."""

from __future__ import annotations

from decimal import Decimal

import pytest

from callcore.models import CallAnalysis, CallRecord, Resolution
from callcore.store import CallNotFound

CALL_SID = "CA" + "12" * 16


def analysis(cost: str) -> CallAnalysis:
    return CallAnalysis(
        summary="Booked. Ended.",
        intent="book",
        resolution=Resolution.RESOLVED,
        sentiment=0.25,
        lead_score=60,
        lead_reason="booked",
        action_items=["call back"],
        model="gpt-5-mini",
        cost_usd=Decimal(cost),
    )


def test_the_analysis_cost_is_added_to_the_call_cost_once(store):
    store.create_call(CallRecord(call_sid=CALL_SID, from_number="+15550100123", to_number="+15550100000"))
    store.update_call(CALL_SID, {"estimated_cost_usd": Decimal("0.020000")})

    assert store.record_analysis(CALL_SID, analysis("0.000350")) is True
    assert store.record_analysis(CALL_SID, analysis("0.000999")) is False

    record = store.require_call(CALL_SID)
    assert record.estimated_cost_usd == Decimal("0.020350")
    assert record.analysis == analysis("0.000350").model_copy(update={"analyzed_at": record.analysis.analyzed_at})


def test_a_call_without_a_cost_yet_gets_the_analysis_cost(store):
    store.create_call(CallRecord(call_sid=CALL_SID, from_number="+15550100123", to_number="+15550100000"))
    assert store.record_analysis(CALL_SID, analysis("0.000350"))
    assert store.require_call(CALL_SID).estimated_cost_usd == Decimal("0.000350")


def test_an_analysis_for_an_unknown_call_is_refused(store):
    with pytest.raises(CallNotFound):
        store.record_analysis(CALL_SID, analysis("0.000350"))


def test_calls_of_a_day_newest_first(store):
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 11, 22, 9, tzinfo=UTC)
    sids = [f"CA{i:032x}" for i in range(5)]
    for i, sid in enumerate(sids):
        store.create_call(
            CallRecord(
                call_sid=sid,
                from_number="+15550100123",
                to_number="+15550100000",
                created_at=start + timedelta(minutes=i),
            )
        )
    newest = store.list_calls_by_day("2026-11-22", limit=3, newest_first=True)
    assert [c.call_sid for c in newest.calls] == sids[::-1][:3]
    rest = store.list_calls_by_day("2026-11-22", limit=3, newest_first=True, start=newest.next_token)
    assert [c.call_sid for c in rest.calls] == sids[::-1][3:]
