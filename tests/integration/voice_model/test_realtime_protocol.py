"""The offline voice model speaks the Realtime GA protocol over a real loopback socket: every event it sends is a
valid `RealtimeServerEvent` with no field the SDK does not define, its turn detection, transcription, function calls
and speech follow the service's order, and it refuses what the service refuses."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

pytest.importorskip("pocketsphinx", reason="the speech parts (.[voice]) are not installed")

from local.call import CALLER_VOICE
from local.voice_model.audio import BYTES_PER_MS, silence
from local.voice_model.server import VoiceModelServer
from local.voice_model.synthesis import Voice, speak_afresh
from tests.fakes.openai_realtime import validate_server_event
from tests.integration.fakes.realtime_client import RealtimeTestClient

INSTRUCTIONS = "You are the phone receptionist of Harbor Bistro. Local time: 14:03 (Thursday, afternoon)."
TOOLS = [
    {
        "type": "function",
        "name": name,
        "description": f"The {name} tool.",
        "parameters": {"type": "object", "properties": {}},
    }
    for name in ("get_business_hours", "check_availability", "book_appointment", "transfer_to_human", "end_call")
]
SESSION = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "instructions": INSTRUCTIONS,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "gpt-4o-transcribe"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500, "create_response": True,
                                   "interrupt_response": True},
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
        },
        "tools": TOOLS,
        "tool_choice": "auto",
    },
}  # fmt: skip
HOURS = {"weekly_hours": "Monday: 11:00-22:00; Tuesday: 11:00-22:00", "open_now": True, "closes_at": "22:00"}


@pytest.fixture
async def voice_model() -> AsyncIterator[VoiceModelServer]:
    async with VoiceModelServer() as server:
        yield server


@pytest.fixture
async def client(voice_model: VoiceModelServer) -> AsyncIterator[RealtimeTestClient]:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(voice_model.url, headers={"Authorization": "Bearer local-key"})
        realtime = RealtimeTestClient(ws)
        await realtime.next("session.created")
        await realtime.send(SESSION)
        await realtime.next("session.updated")
        yield realtime
        await ws.close()
        for event in realtime.received:  # every event the stand-in sent, checked against the SDK's GA types
            validate_server_event(event)


async def say(client: RealtimeTestClient, text: str) -> None:
    """The caller says `text`, in 20 ms frames as Twilio sends them, then stays silent long enough to end the turn."""
    audio = silence(300) + speak_afresh(text, Voice(CALLER_VOICE)) + silence(800)
    frame = 20 * BYTES_PER_MS
    for offset in range(0, len(audio), frame):
        await client.append(audio[offset : offset + frame])


def of(client: RealtimeTestClient, event_type: str) -> list[dict[str, Any]]:
    return client.of_type(event_type)


async def test_a_spoken_question_is_detected_transcribed_and_answered_with_the_declared_tool(
    client: RealtimeTestClient,
) -> None:
    await say(client, "Hello, what are your opening hours today?")
    call = await client.next("response.function_call_arguments.done")
    done = await client.next("response.done")
    transcription = await client.next("conversation.item.input_audio_transcription.completed")

    assert (call["name"], json.loads(call["arguments"])) == ("get_business_hours", {})
    assert transcription["transcript"] == "hello what are your opening hours today"
    started, stopped = (
        of(client, "input_audio_buffer.speech_started")[0],
        of(client, "input_audio_buffer.speech_stopped")[0],
    )
    committed = of(client, "input_audio_buffer.committed")[0]
    assert started["item_id"] == stopped["item_id"] == committed["item_id"] == transcription["item_id"]
    assert 0 <= started["audio_start_ms"] < stopped["audio_end_ms"]
    types = client.types()
    assert types.index("input_audio_buffer.speech_stopped") < types.index("input_audio_buffer.committed")
    assert types.index("input_audio_buffer.committed") < types.index("response.created")
    assert done["response"]["status"] == "completed"
    assert done["response"]["usage"]["input_token_details"]["audio_tokens"] > 0


async def test_a_tool_result_is_answered_in_speech_with_its_transcript(client: RealtimeTestClient) -> None:
    await say(client, "What are your opening hours?")
    call = await client.next("response.function_call_arguments.done")
    await client.next("response.done")
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": json.dumps(HOURS)}
    await client.send({"type": "conversation.item.create", "item": output})
    await client.send({"type": "response.create"})
    done = await client.next("response.done", nth=2)

    transcript = (await client.next("response.output_audio_transcript.done"))["transcript"]
    assert transcript.startswith("We're open right now, until ten at night today.")
    deltas = "".join(event["delta"] for event in of(client, "response.output_audio_transcript.delta"))
    assert deltas == transcript
    audio = b"".join(base64.b64decode(event["delta"]) for event in of(client, "response.output_audio.delta"))
    assert len(audio) > 5000 * BYTES_PER_MS  # several seconds of pcmu speech
    assert done["response"]["status"] == "completed"
    assert done["response"]["usage"]["output_token_details"]["audio_tokens"] > 0
    assert done["response"]["output"][0]["content"][0]["transcript"] == transcript


async def test_out_of_band_speech_says_the_text_verbatim_outside_the_conversation(client: RealtimeTestClient) -> None:
    text = "Thanks for calling Harbor Bistro. How can I help you today?"
    await client.send({"type": "response.create", "response": {
        "conversation": "none", "input": [], "output_modalities": ["audio"],
        "instructions": f"Say exactly the following, word for word, in a warm and natural tone: {text}"}})  # fmt: skip
    done = await client.next("response.done")
    assert done["response"]["conversation_id"] is None
    assert (await client.next("response.output_audio_transcript.done"))["transcript"] == text
    assert of(client, "conversation.item.added") == []


async def test_truncation_cuts_the_item_where_the_caller_stopped_hearing_and_no_further(
    client: RealtimeTestClient,
) -> None:
    await client.send({"type": "response.create"})
    done = await client.next("response.done")
    item_id = done["response"]["output"][0]["id"]
    await client.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 400}
    )
    truncated = await client.next("conversation.item.truncated")
    assert (truncated["item_id"], truncated["audio_end_ms"]) == (item_id, 400)
    await client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                       "audio_end_ms": 60_000})  # fmt: skip
    assert (await client.next("error"))["error"]["param"] == "audio_end_ms"


async def test_the_services_stateful_rules_are_enforced(client: RealtimeTestClient) -> None:
    await client.send({"type": "response.create"})
    await client.send({"type": "response.create"})
    assert (await client.next("error"))["error"]["code"] == "conversation_already_has_active_response"
    await client.next("response.done")
    await client.send({"type": "response.cancel"})
    assert (await client.next("error", nth=2))["error"]["code"] == "response_cancel_not_active"
    unknown_call = {"type": "function_call_output", "call_id": "call_nobody", "output": "{}"}
    await client.send({"type": "conversation.item.create", "item": unknown_call})
    assert (await client.next("error", nth=3))["error"]["param"] == "item.call_id"
    await client.send(
        {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "cedar"}}}}
    )
    assert (await client.next("error", nth=4))["error"]["code"] == "cannot_update_voice"
    await client.send({"type": "input_audio_buffer.append"})
    assert (await client.next("error", nth=5))["error"]["code"] == "missing_required_parameter"


async def test_a_cancelled_response_ends_cancelled(client: RealtimeTestClient) -> None:
    await client.send({"type": "response.create"})
    await client.send({"type": "response.cancel"})
    done = await client.next("response.done")
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "client_cancelled"


async def test_an_upgrade_without_a_key_or_with_the_beta_header_is_refused(voice_model: VoiceModelServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as no_key:
            await http.ws_connect(voice_model.url)
        assert no_key.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as beta:
            await http.ws_connect(voice_model.url, headers={"Authorization": "Bearer k", "OpenAI-Beta": "realtime=v1"})
        assert beta.value.status == 400


async def test_the_stand_in_says_in_its_log_that_it_is_not_openai(caplog: pytest.LogCaptureFixture) -> None:
    async with VoiceModelServer() as server:
        pass
    said = [record.getMessage() for record in caplog.records if record.name == "local.voice_model"]
    assert said == [
        f"local stand-in voice model at {server.url}: offline speech recognition (pocketsphinx) and synthesis "
        "(espeak-ng) with a few receptionist rules; not OpenAI, not a language model"
    ]


async def test_items_can_be_added_at_the_root_retrieved_and_deleted(client: RealtimeTestClient) -> None:
    greeting = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello there."}]}
    await client.send({"type": "conversation.item.create", "item": greeting, "previous_item_id": "root"})
    added = await client.next("conversation.item.added")
    assert added["previous_item_id"] is None
    item_id = added["item"]["id"]
    await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
    assert (await client.next("conversation.item.retrieved"))["item"]["content"] == greeting["content"]
    await client.send({"type": "conversation.item.delete", "item_id": item_id})
    assert (await client.next("conversation.item.deleted"))["item_id"] == item_id
    await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
    assert (await client.next("error"))["error"]["param"] == "item_id"
