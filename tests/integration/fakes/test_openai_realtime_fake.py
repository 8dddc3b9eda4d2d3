"""The fake OpenAI Realtime server refuses what the GA service refuses and answers in the GA shapes."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import pytest

from tests.fakes.audio import silence, tone
from tests.fakes.openai_realtime import (
    AudioResponse,
    FakeDriftError,
    FakeRealtimeServer,
    FunctionCallResponse,
    parse_client_event,
)
from tests.integration.fakes.realtime_client import PCMU_SESSION, open_client

# ---- the upgrade ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "url_suffix", "status"),
    [
        ({}, "", 401),
        ({"Authorization": "Bearer wrong-key"}, "", 401),
        ({"Authorization": "Bearer test-openai-key", "OpenAI-Beta": "realtime=v1"}, "", 400),
        ({"Authorization": "Bearer test-openai-key"}, "no-model", 400),
    ],
)
async def test_upgrade_refusals_open_no_session(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession, headers, url_suffix, status
) -> None:
    url = realtime_server.url.split("?")[0] if url_suffix == "no-model" else realtime_server.url
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, headers=headers)
    assert refused.value.status == status
    assert realtime_server.connection_attempts == 1
    assert realtime_server.sessions == []
    assert realtime_server.refusals[0][0] == status


async def test_a_wrong_key_is_not_a_protocol_violation_but_a_beta_header_is(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": "Bearer test-openai-key", "OpenAI-Beta": "x"}):
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(realtime_server.url, headers=headers)
    assert len(realtime_server.violations) == 1
    assert "OpenAI-Beta" in realtime_server.violations[0]


async def test_connect_delay_delays_the_answer_to_the_upgrade(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(connect_delay=0.5) as server:
        attempt = asyncio.create_task(open_client(http, server, configure=False))
        await server.wait_for_connection_attempts(1)
        assert not attempt.done()
        assert server.sessions == []
        await attempt
        assert len(server.sessions) == 1


# ---- the session ----------------------------------------------------------------------------------------------------


async def test_session_created_first_then_partial_updates_merge(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server, configure=False)
    assert client.received[0]["type"] == "session.created"
    created = client.received[0]["session"]
    assert created["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert created["audio"]["input"]["turn_detection"]["interrupt_response"] is True

    await client.send(PCMU_SESSION)
    await client.next("session.updated")
    await client.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}})
    updated = (await client.next("session.updated", nth=2))["session"]

    assert updated["instructions"] == "Be brief."
    assert updated["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert updated["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0}
    assert updated["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
    session = realtime_server.sessions[0]
    assert session.config == updated
    assert realtime_server.violations == []


async def test_turn_detection_update_fills_the_service_defaults(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server)
    turn_detection = {"type": "server_vad", "silence_duration_ms": 300}
    await client.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": turn_detection}}},
        }
    )
    updated = (await client.next("session.updated", nth=2))["session"]
    assert updated["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 300
    assert updated["audio"]["input"]["turn_detection"]["create_response"] is True
    assert updated["audio"]["input"]["format"] == {"type": "audio/pcmu"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("this is not json", "invalid_json"),
        ({"type": "session.create", "event_id": "evt_1"}, "invalid_value"),
        (
            {"type": "session.update", "event_id": "evt_1", "session": {"modalities": ["audio"]}},
            "missing_required_parameter",
        ),
        (
            {
                "type": "session.update",
                "event_id": "evt_1",
                "session": {"type": "realtime", "input_audio_format": "g711_ulaw"},
            },
            "unknown_parameter",
        ),
        ({"type": "input_audio_buffer.append", "event_id": "evt_1", "audio": "%%%not base64%%%"}, "invalid_value"),
        (
            {"type": "conversation.item.truncate", "event_id": "evt_1", "item_id": "item_x"},
            "missing_required_parameter",
        ),
        ({"type": "response.cancel", "event_id": "evt_1"}, "response_cancel_not_active"),
        ({"type": "output_audio_buffer.clear", "event_id": "evt_1"}, "invalid_value"),
    ],
)
async def test_refused_client_events_get_an_error_and_a_violation(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession, frame, code
) -> None:
    client = await open_client(http, realtime_server)
    await client.send(frame)
    error = (await client.next("error"))["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    if isinstance(frame, dict):
        assert error["event_id"] == "evt_1"
    session = realtime_server.sessions[0]
    assert len(realtime_server.violations) == 1
    assert [event["error"] for event in session.errors_sent] == [error]
    assert session.events[-1] == (frame if isinstance(frame, dict) else {"type": None, "text": frame})


def test_unknown_parameter_names_the_field_like_the_service() -> None:
    with pytest.raises(Exception, match=r"Unknown parameter: 'session.audio.output.sample_rate'"):
        parse_client_event(
            json.dumps(
                {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"sample_rate": 8000}}}}
            )
        )


async def test_audio_in_the_wrong_format_is_a_violation(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server, configure=False)
    await client.append(silence(100))
    await client.append(silence(100))
    await realtime_server.sessions[0].wait_for_input_audio(1600)
    assert len(realtime_server.violations) == 2  # input and output format, each reported once
    assert all("audio/pcmu" in violation for violation in realtime_server.violations)


async def test_appended_audio_is_decoded_in_order(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server)
    first, second = tone(40), silence(60)
    await client.append(first)
    await client.append(second)
    session = realtime_server.sessions[0]
    await session.wait_for_input_audio(len(first) + len(second))
    assert bytes(session.input_audio) == first + second
    event = await session.wait_for_event("input_audio_buffer.append", nth=2)
    assert base64.b64decode(event["audio"]) == second


# ---- responses ------------------------------------------------------------------------------------------------------


async def test_audio_response_streams_the_script_in_ga_order(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    audio = tone(1000)
    realtime_server.script(AudioResponse(audio, "Hello, thanks for calling."))
    client = await open_client(http, realtime_server)
    await client.send({"type": "response.create"})
    done = (await client.next("response.done"))["response"]

    response_types = client.types()[client.types().index("response.created") :]
    assert response_types[:4] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]
    assert response_types[-6:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    deltas = client.of_type("response.output_audio.delta")
    assert len(deltas) == 10  # 100 ms chunks
    assert b"".join(base64.b64decode(delta["delta"]) for delta in deltas) == audio
    transcript = "".join(delta["delta"] for delta in client.of_type("response.output_audio_transcript.delta"))
    assert transcript == "Hello, thanks for calling."
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0] == {"type": "output_audio", "transcript": "Hello, thanks for calling."}
    assert done["usage"]["output_token_details"]["audio_tokens"] == 20  # 1 s of model audio ≈ 20 tokens
    assert done["usage"]["input_token_details"]["text_tokens"] > 0
    session = realtime_server.sessions[0]
    assert session.items[0]["audio_bytes"] == len(audio)
    assert realtime_server.violations == []


async def test_without_a_script_a_response_completes_empty(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server)
    await client.send({"type": "response.create"})
    done = (await client.next("response.done"))["response"]
    assert done["status"] == "completed"
    assert done["output"] == []


async def test_a_second_response_create_while_one_is_active_is_refused(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(first_audio_delay=0.3, default_response=AudioResponse(tone(200), "Hi.")) as server:
        client = await open_client(http, server)
        await client.send({"type": "response.create"})
        await client.next("response.created")
        await client.send({"type": "response.create", "event_id": "evt_again"})
        error = (await client.next("error"))["error"]
        assert error["code"] == "conversation_already_has_active_response"
        assert error["event_id"] == "evt_again"
        assert (await client.next("response.done"))["response"]["status"] == "completed"
        assert len(client.of_type("response.created")) == 1
        assert len(server.violations) == 1


async def test_out_of_band_responses_do_not_block_the_conversation(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(first_audio_delay=0.2, default_response=AudioResponse(tone(100), "Hi.")) as server:
        client = await open_client(http, server)
        await client.send(
            {"type": "response.create", "response": {"conversation": "none", "metadata": {"kind": "greeting"}}}
        )
        await client.send({"type": "response.create"})
        await client.next("response.done", nth=2)
        created = client.of_type("response.created")
        assert created[0]["response"]["conversation_id"] is None
        assert created[0]["response"]["metadata"] == {"kind": "greeting"}
        assert created[1]["response"]["conversation_id"] is not None
        assert server.violations == []
        assert len(server.sessions[0].items) == 1  # only the in-conversation answer joined the conversation


async def test_cancel_stops_the_deltas_and_reports_cancelled(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(
        chunk_interval=0.05, default_response=AudioResponse(tone(2000), "A long answer.")
    ) as server:
        client = await open_client(http, server)
        await client.send({"type": "response.create"})
        await client.next("response.output_audio.delta", nth=2)
        await client.send({"type": "response.cancel"})
        done = (await client.next("response.done"))["response"]

        assert done["status"] == "cancelled"
        assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        after_done = client.types()[client.types().index("response.done") :]
        assert "response.output_audio.delta" not in after_done
        deltas = client.of_type("response.output_audio.delta")
        assert len(deltas) < 20
        assert done["output"][0]["status"] == "incomplete"
        assert done["usage"]["output_token_details"]["audio_tokens"] == len(deltas) * 2
        await client.send({"type": "response.cancel"})
        assert (await client.next("error"))["error"]["code"] == "response_cancel_not_active"
        assert len(server.violations) == 1


# ---- truncation -----------------------------------------------------------------------------------------------------


async def test_truncate_only_within_the_audio_already_sent(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    realtime_server.script(AudioResponse(tone(1000), "One second of speech."))
    client = await open_client(http, realtime_server)
    await client.send({"type": "response.create"})
    await client.next("response.done")
    item_id = client.of_type("response.output_item.added")[0]["item"]["id"]

    await client.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 1001}
    )
    error = (await client.next("error"))["error"]
    assert error["message"] == "Audio content of 1000ms is already shorter than 1001ms"

    await client.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 640}
    )
    truncated = await client.next("conversation.item.truncated")
    assert truncated["audio_end_ms"] == 640
    session = realtime_server.sessions[0]
    assert session.truncations == [{"item_id": item_id, "content_index": 0, "audio_end_ms": 640}]

    # After a cut at 640 ms the item is 640 ms long: a later, longer cut is refused like the service does.
    await client.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 700}
    )
    assert (await client.next("error", nth=2))["error"][
        "message"
    ] == "Audio content of 640ms is already shorter than 700ms"
    assert len(realtime_server.violations) == 2


async def test_truncate_counts_only_audio_sent_so_far(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(chunk_interval=0.1, default_response=AudioResponse(tone(1000), "Slow.")) as server:
        client = await open_client(http, server)
        await client.send({"type": "response.create"})
        first = await client.next("response.output_audio.delta")
        await client.send(
            {"type": "conversation.item.truncate", "item_id": first["item_id"], "content_index": 0, "audio_end_ms": 900}
        )
        error = (await client.next("error"))["error"]
        assert error["code"] == "invalid_value"
        assert "is already shorter than 900ms" in error["message"]


async def test_truncate_refuses_unknown_and_user_items(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server)
    await client.send(
        {"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0, "audio_end_ms": 0}
    )
    await client.next("error")
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        }
    )
    user_item = (await client.next("conversation.item.added"))["item"]
    await client.send(
        {"type": "conversation.item.truncate", "item_id": user_item["id"], "content_index": 0, "audio_end_ms": 0}
    )
    await client.next("error", nth=2)
    assert len(realtime_server.violations) == 2
    assert realtime_server.sessions[0].truncations == []


# ---- tools ----------------------------------------------------------------------------------------------------------


async def test_function_call_then_output_for_a_known_call_only(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    realtime_server.script(FunctionCallResponse("transfer_to_human", {"reason": "caller asked"}, call_id="call_1"))
    client = await open_client(http, realtime_server)
    await client.send({"type": "response.create"})
    done_args = await client.next("response.function_call_arguments.done")
    assert done_args["call_id"] == "call_1"
    assert done_args["name"] == "transfer_to_human"
    assert json.loads(done_args["arguments"]) == {"reason": "caller asked"}
    deltas = "".join(event["delta"] for event in client.of_type("response.function_call_arguments.delta"))
    assert deltas == done_args["arguments"]
    assert (await client.next("response.done"))["response"]["output"][0]["type"] == "function_call"

    await client.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_zz", "output": "{}"},
        }
    )
    assert (await client.next("error"))["error"]["param"] == "item.call_id"
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
        }
    )
    added = await client.next("conversation.item.added", lambda e: e["item"]["type"] == "function_call_output")
    assert added["item"]["call_id"] == "call_1"
    assert [item["type"] for item in realtime_server.sessions[0].items] == ["function_call", "function_call_output"]
    assert len(realtime_server.violations) == 1


# ---- caller turns ---------------------------------------------------------------------------------------------------


async def test_speech_started_interrupts_and_speech_stopped_answers(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(chunk_interval=0.05) as server:
        server.script(AudioResponse(tone(3000), "A long greeting."), AudioResponse(tone(200), "Sure."))
        client = await open_client(http, server)
        session = server.sessions[0]
        await client.append(silence(500))
        await client.send({"type": "response.create"})
        await client.next("response.output_audio.delta")

        await session.speech_started()
        started = await client.next("input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 500
        done = (await client.next("response.done"))["response"]
        assert done["status_details"]["reason"] == "turn_detected"

        server.caller_transcripts.append("I need to book an appointment")
        await session.speech_stopped()
        stopped = await client.next("input_audio_buffer.speech_stopped")
        assert stopped["item_id"] == started["item_id"]
        transcription = await client.next("conversation.item.input_audio_transcription.completed")
        assert transcription == {
            **transcription,
            "item_id": started["item_id"],
            "transcript": "I need to book an appointment",
        }
        second = (await client.next("response.done", nth=2))["response"]
        assert second["status"] == "completed"
        assert [item.get("role") for item in session.items] == ["assistant", "user", "assistant"]
        assert server.violations == []


async def test_speech_events_are_refused_when_the_client_turned_vad_off(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server)
    await client.send(
        {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}
    )
    await client.next("session.updated", nth=2)
    with pytest.raises(RuntimeError, match="turned turn detection off"):
        await realtime_server.sessions[0].speech_started()


async def test_vad_detects_a_tone_between_silences(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(vad=True) as server:
        server.caller_transcripts.append("hello")
        client = await open_client(http, server)
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "turn_detection": {
                                "type": "server_vad",
                                "silence_duration_ms": 300,
                                "prefix_padding_ms": 100,
                            }
                        }
                    },
                },
            }
        )
        await client.next("session.updated", nth=2)
        for chunk in (silence(400), tone(600), silence(200), silence(200)):
            await client.append(chunk)

        started = await client.next("input_audio_buffer.speech_started")
        stopped = await client.next("input_audio_buffer.speech_stopped")
        assert started["audio_start_ms"] == 400 - 100  # speech onset minus prefix padding
        assert stopped["audio_end_ms"] == 1000 + 300  # end of speech plus the silence that confirmed it
        transcription = await client.next("conversation.item.input_audio_transcription.completed")
        assert transcription["transcript"] == "hello"
        await client.next("response.done")
        user_item = server.sessions[0].items[0]
        assert user_item["audio_bytes"] == 1300 * 8


async def test_vad_ignores_a_click_shorter_than_100_ms(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(vad=True) as server:
        client = await open_client(http, server)
        for chunk in (silence(200), tone(60), silence(800)):
            await client.append(chunk)
        await server.sessions[0].wait_for_input_audio(len(silence(1060)))
        await client.send({"type": "input_audio_buffer.clear"})
        await client.next("input_audio_buffer.cleared")
        assert client.of_type("input_audio_buffer.speech_started") == []


async def test_manual_commit_needs_100_ms(realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession) -> None:
    client = await open_client(http, realtime_server)
    await client.append(silence(60))
    await client.send({"type": "input_audio_buffer.commit"})
    assert (await client.next("error"))["error"]["code"] == "input_audio_buffer_commit_empty"
    await client.append(silence(60))
    await client.send({"type": "input_audio_buffer.commit"})
    committed = await client.next("input_audio_buffer.committed")
    assert realtime_server.sessions[0].items[0]["id"] == committed["item_id"]


# ---- sessions and their end -----------------------------------------------------------------------------------------


async def test_concurrent_sessions_are_independent(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(first_audio_delay=0.2) as server:
        first, second = await open_client(http, server), await open_client(http, server)
        one, two = server.sessions
        two.script(AudioResponse(tone(300), "For the second caller."))  # scripted first, played second
        one.script(AudioResponse(tone(100), "For the first caller."))
        await first.append(tone(100))
        await second.append(silence(200))
        await first.send({"type": "response.create"})
        await second.send({"type": "response.create"})  # not refused: the other session's response is elsewhere
        done_one = (await first.next("response.done"))["response"]
        done_two = (await second.next("response.done"))["response"]

        assert done_one["output"][0]["content"][0]["transcript"] == "For the first caller."
        assert done_two["output"][0]["content"][0]["transcript"] == "For the second caller."
        assert bytes(one.input_audio) == tone(100)
        assert bytes(two.input_audio) == silence(200)
        assert one.id != two.id
        assert one.items[0]["audio_bytes"] == 800
        assert two.items[0]["audio_bytes"] == 2400
        assert server.violations == []


async def test_expire_sends_session_expired_then_closes_1001(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server)
    await realtime_server.sessions[0].expire()
    assert (await client.next("error"))["error"]["code"] == "session_expired"
    await client.closed()
    assert client.ws.close_code == 1001
    assert realtime_server.violations == []


async def test_a_session_older_than_the_limit_is_expired_mid_response_and_closed(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeRealtimeServer(session_max_seconds=0.6, chunk_interval=0.1) as server:
        client = await open_client(http, server)
        created = client.of_type("session.created")[0]["session"]
        assert created["expires_at"] - int(time.time()) <= 1  # the session says when it ends
        server.script(AudioResponse(tone(3000), "A reply far longer than the session has left."))
        await client.send({"type": "response.create"})
        await client.next("response.output_audio.delta")
        error = await client.next("error")
        assert error["error"]["code"] == "session_expired"
        await client.closed()
        assert client.ws.close_code == 1001
        session = server.sessions[0]
        assert session.expired_by_age
        assert "response.done" not in client.types()  # the reply was cut off with the session
        assert server.violations == []


async def test_a_session_younger_than_the_limit_is_left_alone(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server)
    await client.send({"type": "response.create"})
    await client.next("response.done")
    session = realtime_server.sessions[0]
    assert not session.expired_by_age
    assert not client.of_type("error")


async def test_refused_sessions_answer_503_until_the_outage_ends(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    realtime_server.refuse_sessions = True
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await open_client(http, realtime_server)
    assert refused.value.status == 503
    assert realtime_server.sessions == []
    realtime_server.refuse_sessions = False
    await open_client(http, realtime_server)
    assert len(realtime_server.sessions) == 1
    assert realtime_server.violations == []


async def test_drop_closes_without_a_close_frame(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    client = await open_client(http, realtime_server)
    session = realtime_server.sessions[0]
    await session.drop()
    await client.closed()
    assert client.ws.close_code in (None, 1006)
    await asyncio.wait_for(session.closed.wait(), 5)
    assert session.close_code == 1006


async def test_the_fake_refuses_to_send_an_invalid_server_event(
    realtime_server: FakeRealtimeServer, http: aiohttp.ClientSession
) -> None:
    await open_client(http, realtime_server)
    session = realtime_server.sessions[0]
    with pytest.raises(FakeDriftError):
        await session.send({"type": "response.output_audio.delta", "delta": "AAAA"})  # no ids
    with pytest.raises(FakeDriftError):
        await session.send({"type": "response.audio.delta", "response_id": "r", "item_id": "i"})  # a beta name


async def test_cancel_before_the_first_audio_closes_the_open_parts_once(http: aiohttp.ClientSession) -> None:
    async with FakeRealtimeServer(first_audio_delay=5.0, default_response=AudioResponse(tone(500), "Hi.")) as server:
        client = await open_client(http, server)
        await client.send({"type": "response.create"})
        await client.next("response.content_part.added")
        await client.send({"type": "response.cancel"})
        done = (await client.next("response.done"))["response"]
        assert done["status"] == "cancelled"
        assert client.types()[client.types().index("response.created") :] == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        assert done["usage"]["output_tokens"] == 0
        assert server.violations == []
