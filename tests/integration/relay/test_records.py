"""A whole call leaves its turns in DynamoDB, its transcript and summary in S3, and a complete call record."""

from __future__ import annotations

import json
import time
from typing import Any

from callcore.aws import dynamodb_client, s3_client
from callcore.store import TTL_ATTRIBUTE, call_pk, turn_sk
from callcore.transcripts import call_summary_key
from relay.app import STATE
from tests.fakes.audio import BYTES_PER_MS, tone
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FunctionCallResponse
from tests.integration.relay.conftest import (
    GREETING_INBOUND_AUDIO,
    answered,
    assert_clean,
    caller_turn,
    start_cached_relay,
    wait_until,
)


async def test_records_of_a_whole_call(relay_factory: Any, openai_factory: Any) -> None:
    openai: FakeRealtimeServer = await openai_factory(first_audio_delay=0.05)
    relay = await start_cached_relay(relay_factory, openai)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    long_reply = tone(2500, freq=650)
    session.script(
        FunctionCallResponse("get_business_hours", {}),
        AudioResponse(tone(400, freq=550), "We are open every day."),
        AudioResponse(long_reply, "Let me tell you all about our many wonderful services and prices today."),
    )
    await session.speech_started()
    await session.speech_stopped("When are you open?")
    await call.wait_for_media(len(GREETING_INBOUND_AUDIO) + 400 * BYTES_PER_MS)
    [live] = relay.app[STATE].calls
    # Turns are indexed in the order they complete: the answer completes once the relay knows it was heard.
    await wait_until(lambda: len(live.recorder.turns) == 3)
    await session.speech_started()
    await session.speech_stopped("And what do you offer?")
    reply_starts = len(GREETING_INBOUND_AUDIO) + 400 * BYTES_PER_MS
    await wait_until(lambda: call.timeline.played_bytes_at(time.monotonic_ns()) >= reply_starts + 1000 * BYTES_PER_MS)
    await session.speech_started()  # barge-in on the long reply
    await session.wait_for_event("conversation.item.truncate")
    await call.stop()
    await relay.wait_idle()

    store = relay.storage.store
    record = store.require_call(call.call_sid)
    assert record.outcome is not None
    assert record.outcome.value == "caller_hung_up"
    assert record.latencies.greeting_ms is not None
    assert len(record.latencies.turn_ms) == 2  # speech stopped -> first audio, per answered turn
    assert all(ms >= 40 for ms in record.latencies.turn_ms)  # the fake's first_audio_delay is part of it
    assert record.barge_in_count == 1
    assert record.tool_call_count == 1
    assert len(record.latencies.tool_ms) == 1
    # Usage is what the fake reported in its response.done events, summed.
    reported = [r["usage"] for r in session.responses if r["usage"]]
    assert record.usage.output_audio_tokens == sum(u["output_token_details"]["audio_tokens"] for u in reported)
    assert record.usage.input_text_tokens == sum(u["input_token_details"]["text_tokens"] for u in reported)
    assert record.estimated_cost_usd is not None
    assert record.estimated_cost_usd > 0

    turns = store.list_turns(call.call_sid)
    roles = [t.role.value for t in turns]
    assert roles == ["agent", "caller", "agent", "caller", "agent"]
    assert record.turn_count == len(turns)
    assert [t.text for t in turns if t.role.value == "caller"] == ["When are you open?", "And what do you offer?"]
    assert turns[2].tool_calls[0].name == "get_business_hours"
    assert turns[2].text == "We are open every day."
    last = turns[-1]
    assert last.interrupted
    assert last.heard_ms is not None
    assert 0 < last.heard_ms < 2500
    assert last.text != "Let me tell you all about our many wonderful services and prices today."

    # The transcript is in S3 (keys from callcore), the turns got their TTL once it was safe there.
    assert record.transcript_key is not None
    body = s3_client().get_object(Bucket=relay.storage.bucket, Key=record.transcript_key)["Body"].read()
    lines = [json.loads(line) for line in body.splitlines()]
    assert [line["role"] for line in lines] == roles
    summary = json.loads(
        s3_client()
        .get_object(Bucket=relay.storage.bucket, Key=call_summary_key(call.call_sid, record.created_at))["Body"]
        .read()
    )
    assert summary["call_sid"] == call.call_sid
    assert summary["barge_in_count"] == 1
    assert "+15551230001" not in json.dumps(summary)  # the caller's number only masked and hashed
    item = dynamodb_client().get_item(
        TableName=relay.storage.table,
        Key={"pk": {"S": call_pk(call.call_sid)}, "sk": {"S": turn_sk(0)}},
    )["Item"]
    assert TTL_ATTRIBUTE in item
    assert_clean(relay)


async def test_a_transcript_turn_is_stored_before_the_call_ends(
    relay_factory: Any, openai_fake: FakeRealtimeServer
) -> None:
    relay = await start_cached_relay(relay_factory, openai_fake)
    call = relay.new_call()
    session = await answered(relay, call, 1)
    session.script(AudioResponse(tone(200), "Sure."))
    await caller_turn(session, "A table for two, please.")

    def stored() -> bool:
        return any(t.text == "A table for two, please." for t in relay.storage.store.list_turns(call.call_sid))

    await wait_until(stored)
    assert relay.live_calls == 1  # the call is still going
    assert not call.closed.is_set()
    await call.stop()
    await relay.wait_idle()
    assert_clean(relay)
