"""POST /twilio/recording-status: a recording ended (`lambdas.logic.recordings.store_recording`): its audio is copied
into the transcripts bucket, linked on the call record and deleted at Twilio."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from callcore.transcripts import TranscriptArchive
from lambdas.api import json_response, new_app, parse_model
from lambdas.logic.recordings import store_recording
from lambdas.models import RecordingStatusCallback
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.twilio_calls import twilio_calls
from lambdas.webhooks import RECORDING_STATUS_PATH, verify_twilio_request

app = new_app()


@app.post(RECORDING_STATUS_PATH)
def recording_status() -> Response[str]:
    settings = load_settings()
    params = verify_twilio_request(app.current_event, settings)
    callback = parse_model(RecordingStatusCallback, params)
    state = store_recording(
        callback,
        store=settings.call_store(),
        archive=TranscriptArchive(settings.transcripts_bucket, hash_key=settings.caller_hash_key),
        twilio=twilio_calls(settings),
    )
    return json_response(HTTPStatus.OK, {"recording": state.value if state else None})


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
