"""POST /twilio/status: call progress callbacks, applied in SequenceNumber order (`lambdas.logic.call_status`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from callcore.transcripts import TranscriptArchive
from lambdas.api import json_response, new_app, parse_model
from lambdas.logic.call_status import apply_call_status
from lambdas.models import CallStatusCallback
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.webhooks import STATUS_PATH, verify_twilio_request

app = new_app()


@app.post(STATUS_PATH)
def call_status() -> Response[str]:
    settings = load_settings()
    params = verify_twilio_request(app.current_event, settings)
    callback = parse_model(CallStatusCallback, params)
    applied = apply_call_status(
        callback,
        settings=settings,
        store=settings.call_store(),
        archive=TranscriptArchive(settings.transcripts_bucket, hash_key=settings.caller_hash_key),
    )
    # 200 either way: a duplicate or late callback is not an error Twilio should retry or report.
    return json_response(HTTPStatus.OK, {"applied": applied})


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
