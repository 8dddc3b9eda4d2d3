"""POST /twilio/stream-status: the `<Stream statusCallback>` (`lambdas.logic.stream_status`); when the stream to
the agent opens, the call is recorded if its line records calls (`lambdas.logic.recordings.start_recording`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.api import json_response, new_app, parse_model
from lambdas.logic.lines import deployment_lines
from lambdas.logic.stream_status import record_stream_event
from lambdas.models import StreamEvent, StreamStatusCallback
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.webhooks import RECORDING_STATUS_PATH, STREAM_STATUS_PATH, api_base_url, verify_twilio_request

app = new_app()


@app.post(STREAM_STATUS_PATH)
def stream_status() -> Response[str]:
    settings = load_settings()
    params = verify_twilio_request(app.current_event, settings)
    callback = parse_model(StreamStatusCallback, params)
    store = settings.call_store()
    recorded = record_stream_event(callback, store=store)
    lines = deployment_lines(settings)
    # Without profiles, CALL_RECORDING_ENABLED decides for every call; with them, each call's line (recording.enabled).
    if callback.stream_event is StreamEvent.STARTED and (settings.call_recording_enabled or lines.profiles_deployed()):
        # Imported here: the Twilio REST client is the heaviest import there is, and only recording needs it.
        from lambdas.logic.recordings import start_recording  # noqa: PLC0415
        from lambdas.twilio_calls import twilio_calls  # noqa: PLC0415

        start_recording(
            callback.call_sid,
            store=store,
            lines=lines,
            twilio=twilio_calls(settings),
            status_callback_url=api_base_url(app.current_event, settings) + RECORDING_STATUS_PATH,
        )
    return json_response(HTTPStatus.OK, {"recorded": recorded})


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
