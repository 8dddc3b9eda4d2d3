"""Call recordings end to end against the fake Twilio REST API on a loopback socket: the stream-started callback
starts a dual-channel recording, Twilio's signed recording-status callback makes the Lambda copy the audio into S3
(KMS), link it on the record and delete it at Twilio, and `calls show --audio` downloads it."""

from __future__ import annotations

import io
import wave
from typing import Any

import pytest

from analyst.cli import main as calls_main
from callcore.models import CallOutcome, RecordingState
from callcore.transcripts import recording_key
from lambdas.handlers import incoming_call, recording_status, stream_status
from lambdas.webhooks import INCOMING_PATH, RECORDING_STATUS_PATH, STREAM_STATUS_PATH
from tests.unit.lambdas.events import (
    ACCOUNT_SID,
    AGENT_NUMBER,
    API_BASE,
    BUCKET,
    new_call_sid,
    public_url,
    twilio_event,
    voice_params,
)
from tests.unit.lambdas.lines import CLINIC_NUMBER, bistro, clinic, publish


def wav_bytes(seconds: float = 0.5) -> bytes:
    """Dual-channel 8 kHz 16-bit PCM, as Twilio serves a dual-channel recording."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(2)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(bytes(range(256)) * int(8000 * seconds * 4 / 256))
    return buffer.getvalue()


@pytest.fixture
def recording_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALL_RECORDING_ENABLED", "true")


def stream_started(call_sid: str) -> dict[str, Any]:
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "StreamSid": "MZ" + "0" * 32,
        "StreamEvent": "stream-started",
        "StreamName": "agent",
        "Timestamp": "2026-11-22T10:00:00Z",
    }
    return twilio_event(STREAM_STATUS_PATH, params)


def recorded_call(aws, invoke, make_call, twilio_server) -> tuple[Any, str]:
    call = make_call()
    twilio_server.fake.add_call(call.call_sid)
    assert invoke(stream_status.handler, stream_started(call.call_sid)).status == 200
    [recording_sid] = twilio_server.fake.recordings
    return call, recording_sid


def test_the_agent_answering_starts_a_dual_channel_recording(aws, invoke, make_call, twilio_server, recording_on):
    call, recording_sid = recorded_call(aws, invoke, make_call, twilio_server)

    [request] = [r for r in twilio_server.fake.requests if r.path.endswith("/Recordings.json")]
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call.call_sid}/Recordings.json"
    assert request.value("RecordingChannels") == "dual"
    assert request.value("RecordingStatusCallback") == f"{API_BASE}{RECORDING_STATUS_PATH}"
    assert request.values("RecordingStatusCallbackEvent") == ["completed", "absent"]
    recording = aws.store.require_call(call.call_sid).recording
    assert recording is not None
    assert (recording.recording_sid, recording.state) == (recording_sid, RecordingState.REQUESTED)

    # A repeated stream-started callback does not start a second recording.
    assert invoke(stream_status.handler, stream_started(call.call_sid)).status == 200
    assert len(twilio_server.fake.recordings) == 1


def test_each_line_records_its_calls_as_its_profile_says(aws, invoke, twilio_server):
    # CALL_RECORDING_ENABLED is off: with profiles deployed, each line's recording.enabled decides.
    publish(bistro(recording={"enabled": True}), clinic(hours={"weekly": "mon-sun 00:00-24:00"}))
    recorded, unrecorded = new_call_sid(), new_call_sid()
    for call_sid, number in ((recorded, AGENT_NUMBER), (unrecorded, CLINIC_NUMBER)):
        assert (
            invoke(incoming_call.handler, twilio_event(INCOMING_PATH, voice_params(call_sid, To=number))).status == 200
        )
        twilio_server.fake.add_call(call_sid)
        assert invoke(stream_status.handler, stream_started(call_sid)).status == 200

    [recording_request] = [r for r in twilio_server.fake.requests if r.path.endswith("/Recordings.json")]
    assert recording_request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{recorded}/Recordings.json"
    assert aws.store.require_call(recorded).recording is not None
    assert aws.store.require_call(unrecorded).recording is None


def test_the_recording_is_copied_linked_and_deleted_at_twilio(aws, invoke, make_call, twilio_server, recording_on):
    call, recording_sid = recorded_call(aws, invoke, make_call, twilio_server)
    audio = wav_bytes()
    callback = twilio_server.fake.finish_recording(recording_sid, audio=audio, duration=42)
    assert callback.url == public_url(RECORDING_STATUS_PATH)

    answer = invoke(
        recording_status.handler,
        twilio_event(RECORDING_STATUS_PATH, callback.params, signature=callback.signature),
    )

    assert answer.status == 200
    assert answer.json() == {"recording": "stored"}
    key = recording_key(call.call_sid, call.created_at)
    assert key.startswith("recordings/year=")
    assert key.endswith(f"/{call.call_sid}.wav")
    stored = aws.archive.client.get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == audio
    assert stored["ServerSideEncryption"] == "aws:kms"
    recording = aws.store.require_call(call.call_sid).recording
    assert recording is not None
    assert (recording.state, recording.key, recording.duration_seconds, recording.channels) == (
        RecordingState.STORED, key, 42, 2,
    )  # fmt: skip
    assert recording.deleted_at is not None
    assert recording_sid in twilio_server.fake.deleted_recordings

    # Twilio posts the callback again: nothing is fetched or deleted twice.
    requests_before = len(twilio_server.fake.requests)
    again = invoke(
        recording_status.handler, twilio_event(RECORDING_STATUS_PATH, callback.params, signature=callback.signature)
    )
    assert again.json() == {"recording": "stored"}
    assert len(twilio_server.fake.requests) == requests_before


def test_calls_show_audio_downloads_the_recording(
    aws, invoke, make_call, twilio_server, recording_on, capsys, tmp_path
):
    call, recording_sid = recorded_call(aws, invoke, make_call, twilio_server)
    audio = wav_bytes(1.0)
    callback = twilio_server.fake.finish_recording(recording_sid, audio=audio, duration=1)
    invoke(recording_status.handler, twilio_event(RECORDING_STATUS_PATH, callback.params, signature=callback.signature))
    aws.archive.write_transcript(aws.store.require_call(call.call_sid), [])

    target = tmp_path / "call.wav"
    assert calls_main(["show", call.call_sid, "--audio", str(target)]) == 0
    assert target.read_bytes() == audio
    assert "left: caller, right: agent" in capsys.readouterr().err


def test_a_forged_recording_callback_stores_nothing(aws, invoke, make_call, twilio_server, recording_on):
    call, recording_sid = recorded_call(aws, invoke, make_call, twilio_server)
    callback = twilio_server.fake.finish_recording(recording_sid, audio=wav_bytes(), duration=3)

    answer = invoke(recording_status.handler, twilio_event(RECORDING_STATUS_PATH, callback.params, signature="forged"))

    assert answer.status == 403
    assert aws.store.require_call(call.call_sid).recording.state is RecordingState.REQUESTED
    assert recording_sid not in twilio_server.fake.deleted_recordings


def test_an_absent_recording_is_marked_failed_and_deleted(aws, invoke, make_call, twilio_server, recording_on):
    call, recording_sid = recorded_call(aws, invoke, make_call, twilio_server)
    callback = twilio_server.fake.finish_recording(recording_sid, audio=b"", duration=0, status="absent")

    answer = invoke(
        recording_status.handler, twilio_event(RECORDING_STATUS_PATH, callback.params, signature=callback.signature)
    )

    assert answer.json() == {"recording": "failed"}
    recording = aws.store.require_call(call.call_sid).recording
    assert recording.state is RecordingState.FAILED
    assert recording.key is None
    assert recording_sid in twilio_server.fake.deleted_recordings


def test_nothing_is_recorded_when_recording_is_off(aws, invoke, make_call, twilio_server):
    call = make_call()
    twilio_server.fake.add_call(call.call_sid)
    assert invoke(stream_status.handler, stream_started(call.call_sid)).status == 200
    assert twilio_server.fake.recordings == {}
    assert aws.store.require_call(call.call_sid).recording is None


def test_a_call_the_agent_did_not_answer_is_not_recorded(aws, invoke, make_call, twilio_server, recording_on):
    call = make_call(admitted=False, outcome=CallOutcome.OVERFLOW_TO_HUMAN)  # no greeting, so no announcement
    twilio_server.fake.add_call(call.call_sid)
    assert invoke(stream_status.handler, stream_started(call.call_sid)).status == 200
    assert twilio_server.fake.recordings == {}


def test_a_call_no_longer_live_goes_on_unrecorded(aws, invoke, make_call, twilio_server, recording_on):
    call = make_call()
    twilio_server.fake.add_call(call.call_sid, status="completed")
    assert invoke(stream_status.handler, stream_started(call.call_sid)).status == 200
    assert aws.store.require_call(call.call_sid).recording is None
