"""The relay's part in seats and personal data: the seat comes back when the stream ends (whatever becomes of Twilio's
final callback), the caller's digits never reach storage, and a number the carrier did not vouch for gets no
history and writes none."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from callcore.store.callers import CallerDirectory
from callcore.transcripts import TranscriptArchive
from tests.fakes.audio import tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer
from tests.integration.relay.conftest import Relay, answered, assert_clean, start_cached_relay, wait_until

CALLER = "+15551230001"  # Relay.new_call's caller
CARD_SAID = "my card number is 4111 1111 1111 1111 and the code is 737, for 2 people"
CARD_STORED = "my card number is #### #### #### #### and the code is ###, for 2 people"


def caller_turns(relay: Relay, call_sid: str) -> list[str]:
    """What DynamoDB holds of the caller's words."""
    return [t.text for t in relay.storage.store.list_turns(call_sid) if t.role.value == "caller"]


def directory(relay: Relay) -> CallerDirectory:
    return CallerDirectory(relay.storage.table, hash_key=relay.settings.caller_hash_key)


async def test_a_lost_final_callback_leaves_no_seat_taken_once_the_stream_ends(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    store = relay.storage.store
    call = relay.new_call(seated=True)
    other = relay.new_call(seated=True)  # another caller still on the agent
    assert store.active_calls() == 2
    await answered(relay, call, 1)

    await call.stop()  # the caller hung up; Twilio's `completed` callback is never delivered
    await relay.wait_idle()

    record = store.require_call(call.call_sid)
    assert record.seat_released_at is not None
    assert store.active_calls() == 1
    assert store.require_call(other.call_sid).seat_released_at is None
    # The callback, if it comes after all, changes nothing: the seat was given back once.
    assert not store.release_seat(call.call_sid)
    assert store.active_calls() == 1
    assert_clean(relay)


async def test_the_callers_digits_are_masked_in_the_stored_turns_and_transcript(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(AudioResponse(tone(200, freq=500), "Thanks, booked for 2."))
    await session.speech_started()
    await session.speech_stopped(CARD_SAID)
    await wait_until(lambda: bool(caller_turns(relay, call.call_sid)))
    await call.stop()
    await relay.wait_idle()

    store = relay.storage.store
    assert caller_turns(relay, call.call_sid) == [CARD_STORED]
    record = store.require_call(call.call_sid)
    archive: TranscriptArchive = relay.storage.archive
    archived = archive.read_transcript(call.call_sid, record.created_at)
    assert archived is not None
    assert [t.text for t in archived if t.role.value == "caller"] == [CARD_STORED]
    # The digits as said, spaced or not (a bare "4111" can occur by chance in the ids and timestamps around them).
    assert not any(leaked in str(archived) for leaked in ("4111 1111", "41111111"))
    assert_clean(relay)


async def test_digits_are_kept_when_masking_is_turned_off(relay_factory: Any, openai_fake: FakeRealtimeServer) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake, env={"MASK_CALLER_DIGITS": "false"})
    call = relay.new_call()
    session = await answered(relay, call, 1)
    await session.speech_started()
    await session.speech_stopped(CARD_SAID)
    await wait_until(lambda: bool(caller_turns(relay, call.call_sid)))
    await call.stop()
    await relay.wait_idle()
    assert caller_turns(relay, call.call_sid) == [CARD_SAID]


async def test_an_unattested_number_gets_no_history_and_writes_none(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    callers = directory(relay)
    callers.record_call(CALLER, at=datetime(2026, 11, 18, 15, tzinfo=UTC), outcome=None, booking_name="Ada Lovelace")
    for verstat in ("TN-Validation-Passed-B", "TN-Validation-Failed", None):
        call = relay.new_call(stir_verstat=verstat)
        session = await answered(relay, call, len(relay.openai.sessions))
        await call.stop()
        await relay.wait_idle()
        instructions = " ".join(
            e["session"].get("instructions", "") for e in session.events if e["type"] == "session.update"
        )
        assert "returning caller" not in instructions, verstat
        assert "first-time caller" not in instructions, verstat
        assert "Ada" not in instructions
    profile = callers.get(CALLER)
    assert profile is not None
    assert profile.call_count == 1  # none of the unattested calls counted into the owner's profile
    assert_clean(relay)


async def test_a_fully_attested_returning_caller_is_known_but_never_named(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    callers = directory(relay)
    callers.record_call(CALLER, at=datetime(2026, 11, 18, 15, tzinfo=UTC), outcome=None, booking_name="Ada Lovelace")
    call = relay.new_call(stir_verstat="TN-Validation-Passed-A")
    session = await answered(relay, call, 1)
    update = await session.wait_for_event(
        "session.update", lambda e: "returning caller" in e["session"].get("instructions", "")
    )
    assert "Ada" not in update["session"]["instructions"]
    await call.stop()
    await relay.wait_idle()
    profile = callers.get(CALLER)
    assert profile is not None
    assert profile.call_count == 2
    assert_clean(relay)
