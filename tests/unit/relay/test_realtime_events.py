"""Every client event the relay builds is a valid GA event (the openai package's own types decide)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.realtime import RealtimeClientEvent
from pydantic import TypeAdapter

from relay import realtime
from relay.line import LineSettings
from relay.settings import RelaySettings

CLIENT_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeClientEvent)


def _tools() -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": "end_call",
            "description": "End the call after saying goodbye.",
            "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}},
        }
    ]


@pytest.mark.parametrize("detection", ["server_vad", "semantic_vad"])
def test_session_update_is_ga_pcmu_both_ways(relay_env: dict[str, str], detection: str) -> None:
    relay_env["TURN_DETECTION"] = detection
    settings = RelaySettings.from_env(relay_env)
    event = realtime.session_update(
        realtime.session_config(
            settings, LineSettings.from_environment(settings), instructions="Be brief.", tools=_tools()
        )
    )
    parsed = CLIENT_EVENT.validate_python(event)
    assert parsed.type == "session.update"
    audio = event["session"]["audio"]
    assert audio["input"]["format"] == {"type": "audio/pcmu"}
    assert audio["output"]["format"] == {"type": "audio/pcmu"}
    assert audio["output"]["voice"] == "marin"
    assert audio["input"]["turn_detection"]["type"] == detection
    assert audio["input"]["transcription"] == {"model": "gpt-4o-transcribe"}


@pytest.mark.parametrize(
    "event",
    [
        realtime.instructions_update("new instructions"),
        realtime.append_audio("f39/fw=="),
        realtime.truncate("item_1", 1340),
        realtime.function_call_output("call_1", '{"ok":true}'),
        realtime.assistant_message("Thanks for calling."),
        realtime.assistant_message("Thanks for calling.", previous_item_id="root"),
        realtime.system_message("Wrap up."),
        realtime.user_message("The caller pressed 7 on the keypad."),
        realtime.function_call_item("call_1", "get_business_hours", "{}"),
        realtime.response_create(),
        realtime.response_create("Say goodbye."),
        realtime.out_of_band_speech("Hello there."),
    ],
)
def test_client_events_validate(event: dict[str, Any]) -> None:
    CLIENT_EVENT.validate_python(event)


def test_append_carries_the_payload_untouched() -> None:
    assert realtime.append_audio("abc+/==")["audio"] == "abc+/=="


@pytest.mark.parametrize("raw", [b"", b"a", b"ab", b"abc", b"\xff" * 160, bytes(range(256))])
def test_decoded_length_without_decoding(raw: bytes) -> None:
    import base64

    assert realtime.decoded_length(base64.b64encode(raw).decode()) == len(raw)
