"""With AWS_ENDPOINT_URL set, the local call uses that endpoint instead of a moto server of its own: it creates the
table and bucket named by CALLS_TABLE / TRANSCRIPTS_BUCKET there, and the call's record, transcript and booking stay
there after the run, for the analysts' tools to read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callcore.aws import reset_clients, s3_client
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive
from local.call import report, run_call
from local.moto_endpoint import moto_endpoint


@pytest.fixture
def analysts_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An endpoint of the user's, outliving the call (here a moto server the test owns)."""
    with moto_endpoint() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("CALLS_TABLE", "analysts-calls")
        monkeypatch.setenv("TRANSCRIPTS_BUCKET", "analysts-transcripts")
        reset_clients()
        try:
            yield endpoint
        finally:
            reset_clients()


async def test_a_local_call_leaves_its_data_at_the_configured_endpoint(analysts_endpoint: str, tmp_path: Path) -> None:
    result = await run_call(model="scripted", verbose=False, audio_path=tmp_path / "call.wav")

    assert result.kept_data
    assert (result.aws_endpoint, result.calls_table, result.transcripts_bucket) == (
        analysts_endpoint,
        "analysts-calls",
        "analysts-transcripts",
    )
    assert f"data kept at {analysts_endpoint}: table analysts-calls, bucket analysts-transcripts" in report(result)

    # After the run, with the run's own settings gone, the data is still there to read.
    record = CallStore("analysts-calls").require_call(result.call_sid)
    assert record.outcome == result.record.outcome
    assert record.transcript_key is not None
    s3_client().head_object(Bucket="analysts-transcripts", Key=record.transcript_key)
    archive = TranscriptArchive("analysts-transcripts", hash_key=b"unused-for-reading")
    turns = archive.read_transcript(result.call_sid, record.created_at) or []
    assert [turn.text for turn in turns] == [turn.text for turn in result.turns]
    assert [booking.name for booking in CallStore("analysts-calls").list_bookings(result.bookings[0].day)] == ["Ada"]
