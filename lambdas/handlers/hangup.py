"""POST /calls/{callSid}/hangup (IAM): end a live call (`lambdas.logic.call_control.hang_up_call`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.api import call_sid_from_path, json_response, new_app, parse_json_body
from lambdas.logic.call_control import hang_up_call
from lambdas.models import HangupRequest
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.twilio_calls import twilio_calls

app = new_app()


@app.post("/calls/<callSid>/hangup")
def hangup(callSid: str) -> Response[str]:
    settings = load_settings()
    call_sid = call_sid_from_path(callSid)
    request = parse_json_body(app.current_event.body, HangupRequest)
    result = hang_up_call(call_sid, request, store=settings.call_store(), calls=twilio_calls(settings))
    return json_response(HTTPStatus.OK, result.to_json())


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
