"""The erasure command against moto: everything about one number goes (records, turns, every S3 version of its
transcripts, summaries and recordings, its bookings, its profile), nothing about anyone else; the dry run lists the
same and deletes nothing."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcore import erasure
from callcore.erasure import UsageError, erase
from callcore.masking import caller_hash, mask_phone
from callcore.models import Booking, CallDirection, CallOutcome, CallRecord, CallStatus, TranscriptTurn, TurnRole
from callcore.store import CallStore, SeatResult
from callcore.store.callers import CallerDirectory
from callcore.transcripts import RECORDINGS_PREFIX, TranscriptArchive, partition
from tests.unit.core.conftest import BUCKET, TABLE

KEY = b"erasure-test-hash-key-32-bytes!!"
NUMBER = "+14155550100"
OTHER = "+14155550177"
BUSINESS = "+14155550199"
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def sid(n: int) -> str:
    return f"CA{n:032x}"


def make_call(
    store: CallStore, archive: TranscriptArchive, n: int, caller: str, *, outbound: bool = False, **fields: Any
) -> CallRecord:
    created = T0 + timedelta(hours=n)
    record = CallRecord(
        call_sid=sid(n),
        direction=CallDirection.OUTBOUND if outbound else CallDirection.INBOUND,
        from_number=BUSINESS if outbound else caller,
        to_number=caller if outbound else BUSINESS,
        created_at=created,
        status=CallStatus.COMPLETED,
        finished_at=created + timedelta(minutes=5),
        caller_hash=caller_hash(KEY, caller),
        **fields,
    )
    store.create_call(record)
    turns = [
        TranscriptTurn(
            call_sid=record.call_sid,
            index=i,
            role=TurnRole.CALLER if i % 2 else TurnRole.AGENT,
            text=f"turn {i}",
            started_at=created,
            ended_at=created,
        )
        for i in range(3)
    ]
    for turn in turns:
        store.put_turn(turn)
    archive.write_transcript(record, turns)
    archive.write_transcript(record, turns)  # a second version of the same object
    archive.write_call_summary(record)
    return record


@pytest.fixture
def bucket(archive: TranscriptArchive) -> TranscriptArchive:
    archive.client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return archive


@pytest.fixture
def kept(store: CallStore, bucket: TranscriptArchive) -> dict[str, Any]:
    """Two callers' data: NUMBER's (to erase) and OTHER's (to keep)."""
    first = make_call(store, bucket, 1, NUMBER)
    # Redacted already: only the hash links it to the number.
    second = make_call(store, bucket, 2, NUMBER, outbound=True)
    assert store.redact_caller_number(second.call_sid)
    other = make_call(store, bucket, 3, OTHER)
    recording = f"{RECORDINGS_PREFIX}/{partition(first.created_at)}/{first.call_sid}.wav"
    bucket.client.put_object(Bucket=BUCKET, Key=recording, Body=b"RIFF")
    store.create_booking(Booking(booking_id="b1", day="2026-12-01", time="10:30", name="Ada", call_sid=first.call_sid))
    store.create_booking(Booking(booking_id="b2", day="2026-12-01", time="11:00", name="Bo", call_sid=other.call_sid))
    callers = CallerDirectory(TABLE, hash_key=KEY, client=store.client)
    for number in (NUMBER, OTHER):
        callers.record_call(number, at=T0, outcome=CallOutcome.CALLER_HUNG_UP, booking_name="Ada")
    return {"first": first, "second": second, "other": other, "recording": recording, "callers": callers}


def table_items(store: CallStore) -> list[dict[str, Any]]:
    return store.client.scan(TableName=TABLE)["Items"]


def all_versions(archive: TranscriptArchive) -> list[tuple[str, str]]:
    response = archive.client.list_object_versions(Bucket=BUCKET)
    return [(v["Key"], v["VersionId"]) for v in response.get("Versions", [])]


def test_the_dry_run_lists_everything_about_the_number_and_deletes_nothing(
    store: CallStore, bucket: TranscriptArchive, kept: dict[str, Any]
) -> None:
    before_items, before_objects = table_items(store), all_versions(bucket)
    out = io.StringIO()

    assert erase(NUMBER, store=store, archive=bucket, hash_key=KEY, dry_run=True, out=out) == 0

    text = out.getvalue()
    assert kept["first"].call_sid in text
    assert kept["second"].call_sid in text  # found by its hash after the number was masked
    assert kept["other"].call_sid not in text
    assert "3 turns" in text
    assert "4 S3 object versions" in text  # the first call: two transcript versions, its summary, its recording
    assert kept["recording"] in text
    assert "booking 2026-12-01 10:30" in text
    assert "booking 2026-12-01 11:00" not in text
    assert "caller item PROFILE" in text
    assert NUMBER not in text  # the output names the number masked
    assert mask_phone(NUMBER) in text
    assert "nothing was deleted" in text
    assert table_items(store) == before_items
    assert all_versions(bucket) == before_objects


def test_erasure_deletes_every_trace_of_the_number_and_nothing_else(
    store: CallStore, bucket: TranscriptArchive, kept: dict[str, Any]
) -> None:
    out = io.StringIO()
    deleted = erase(NUMBER, store=store, archive=bucket, hash_key=KEY, dry_run=False, out=out)

    # 2 records + 6 turns + 1 booking + 1 profile; 2 x (2 transcript versions + 1 summary) + 1 recording.
    assert deleted == 10 + 7
    remaining = table_items(store)
    mine = {sid(1), sid(2)}
    assert not [item for item in remaining if any(s in str(item) for s in mine)]
    assert not [item for item in remaining if caller_hash(KEY, NUMBER) in str(item)]
    assert store.get_call(kept["other"].call_sid) is not None
    assert len(store.list_turns(kept["other"].call_sid)) == 3
    assert [b.name for b in store.list_bookings("2026-12-01")] == ["Bo"]
    assert kept["callers"].get(NUMBER) is None
    assert kept["callers"].get(OTHER) is not None
    objects = [key for key, _ in all_versions(bucket)]
    assert not [key for key in objects if sid(1) in key or sid(2) in key]
    assert [key for key in objects if sid(3) in key]
    # Run again: nothing is left to find.
    again = io.StringIO()
    assert erase(NUMBER, store=store, archive=bucket, hash_key=KEY, dry_run=False, out=again) == 0
    assert "nothing is kept about this number" in again.getvalue()


def test_a_call_in_progress_is_not_erased_under_the_relays_feet(
    store: CallStore, bucket: TranscriptArchive, kept: dict[str, Any]
) -> None:
    live = CallRecord(
        call_sid=sid(9), from_number=NUMBER, to_number=BUSINESS, caller_hash=caller_hash(KEY, NUMBER),
        stream_token_expiry=1, created_at=datetime.now(UTC),
    )  # fmt: skip
    assert store.admit_call(live, max_active=5) is SeatResult.TAKEN
    with pytest.raises(UsageError, match="in progress"):
        erase(NUMBER, store=store, archive=bucket, hash_key=KEY, dry_run=False, out=io.StringIO())
    assert store.get_call(kept["first"].call_sid) is not None  # nothing was deleted
    out = io.StringIO()
    erase(NUMBER, store=store, archive=bucket, hash_key=KEY, dry_run=True, out=out)  # a dry run is harmless
    assert sid(9) in out.getvalue()
    # Once its seat is back (the call ended), the erasure goes ahead.
    assert store.release_seat(sid(9))
    erase(NUMBER, store=store, archive=bucket, hash_key=KEY, dry_run=False, out=io.StringIO())
    assert store.get_call(sid(9)) is None
    assert store.active_calls() == 0


def test_the_command_line_reads_its_settings_and_refuses_a_bad_number(
    store: CallStore, bucket: TranscriptArchive, kept: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("CALLS_TABLE", TABLE)
    monkeypatch.setenv("TRANSCRIPTS_BUCKET", BUCKET)
    monkeypatch.delenv("CALLER_HASH_SECRET", raising=False)
    monkeypatch.delenv("STREAM_TOKEN_SECRET", raising=False)
    assert erasure.main(["--number", NUMBER, "--dry-run"]) == 2
    assert "CALLER_HASH_SECRET" in capsys.readouterr().err

    monkeypatch.setenv("CALLER_HASH_SECRET", "a-local-hash-secret")
    assert erasure.main(["--number", "415-555-0100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "erase-caller: --number must be an E.164 phone number such as +14155550123"

    assert erasure.main(["--number", OTHER, "--dry-run"]) == 0
    # This key hashes differently from the fixture's: only the raw number finds the records that still carry it.
    assert kept["other"].call_sid in capsys.readouterr().out
    assert erasure.main(["--number", OTHER]) == 0
    assert store.get_call(kept["other"].call_sid) is None
