"""POST /twilio/stream-status: the `<Stream statusCallback>` (`lambdas.logic.stream_status`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.api import json_response, new_app, parse_model
from lambdas.logic.stream_status import record_stream_event
from lambdas.models import StreamStatusCallback
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.webhooks import STREAM_STATUS_PATH, verify_twilio_request

app = new_app()


@app.post(STREAM_STATUS_PATH)
def stream_status() -> Response[str]:
    settings = load_settings()
    params = verify_twilio_request(app.current_event, settings)
    callback = parse_model(StreamStatusCallback, params)
    recorded = record_stream_event(callback, store=settings.call_store())
    return json_response(HTTPStatus.OK, {"recorded": recorded})


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
