from __future__ import annotations

import json

import pytest

from relay.twilio_stream import (
    CloseCode,
    Connected,
    Dtmf,
    FrameRejected,
    MarkEcho,
    Media,
    Start,
    Stop,
    clear_frame,
    mark_frame,
    media_frame,
    parse_frame,
)

START = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": "MZ" + "1" * 32,
    "start": {
        "streamSid": "MZ" + "1" * 32,
        "accountSid": "AC" + "0" * 32,
        "callSid": "CA" + "a" * 32,
        "tracks": ["inbound"],
        "customParameters": {"token": "v1.1.abc"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}


def test_parses_every_twilio_event() -> None:
    assert parse_frame('{"event":"connected","protocol":"Call","version":"1.0.0"}') == Connected("Call")
    start = parse_frame(json.dumps(START))
    assert isinstance(start, Start)
    assert start.call_sid == "CA" + "a" * 32
    assert start.custom_parameters == {"token": "v1.1.abc"}
    media = parse_frame('{"event":"media","media":{"track":"inbound","chunk":"2","timestamp":"40","payload":"AAEC"}}')
    assert media == Media("AAEC", 40)
    assert parse_frame('{"event":"mark","mark":{"name":"item_1:100"}}') == MarkEcho("item_1:100")
    assert parse_frame('{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"5"}}') == Dtmf("5")
    assert parse_frame('{"event":"stop","stop":{"callSid":"CA1"}}') == Stop("CA1")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", CloseCode.UNSUPPORTED),
        ("[1,2]", CloseCode.UNSUPPORTED),
        ('{"event":"hello"}', CloseCode.UNSUPPORTED),
        ('{"event":"media"}', CloseCode.POLICY),
        ('{"event":"media","media":{"payload":5}}', CloseCode.POLICY),
        ('{"event":"mark","mark":{}}', CloseCode.POLICY),
        ('{"event":"start","start":{"streamSid":"MZ1"}}', CloseCode.POLICY),
    ],
)
def test_refusals_carry_a_close_code(text: str, code: CloseCode) -> None:
    with pytest.raises(FrameRejected) as raised:
        parse_frame(text)
    assert raised.value.code is code


def test_other_encodings_are_refused() -> None:
    frame = json.loads(json.dumps(START))
    frame["start"]["mediaFormat"]["encoding"] = "audio/l16"
    with pytest.raises(FrameRejected) as raised:
        parse_frame(json.dumps(frame))
    assert raised.value.code is CloseCode.UNSUPPORTED


def test_outbound_frames_are_valid_json_with_the_payload_untouched() -> None:
    payload = "f39/fw=="
    assert json.loads(media_frame("MZ1", payload)) == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": payload},
    }
    assert json.loads(mark_frame("MZ1", "item:20")) == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "item:20"},
    }
    assert json.loads(clear_frame("MZ1")) == {"event": "clear", "streamSid": "MZ1"}


@pytest.mark.parametrize("timestamp", ["\u00b2", "\u2460", "12\u00b3", "-5", "4.5"])
def test_a_media_timestamp_that_is_not_a_plain_number_is_ignored_not_raised(timestamp: str) -> None:
    frame = parse_frame(json.dumps({"event": "media", "media": {"payload": "AA==", "timestamp": timestamp}}))
    assert frame == Media("AA==", None)
