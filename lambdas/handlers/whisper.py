"""GET|POST /twilio/whisper?callSid=...: the `<Number url>` of a warm transfer, spoken to the human before the bridge
(`lambdas.logic.whisper`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.api import new_app, parse_model, twiml_response
from lambdas.logic.whisper import whisper_for
from lambdas.models import WhisperQuery
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.webhooks import WHISPER_PATH, verify_twilio_request

app = new_app()


@app.route(WHISPER_PATH, method=["GET", "POST"])
def whisper() -> Response[str]:
    settings = load_settings()
    event = app.current_event
    verify_twilio_request(event, settings)
    query = parse_model(WhisperQuery, dict(event.query_string_parameters or {}))
    return twiml_response(whisper_for(query, store=settings.call_store()))


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
