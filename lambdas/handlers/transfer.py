"""POST /calls/{callSid}/transfer (IAM): warm transfer of a live call to the human line of its profile version
(`lambdas.logic.call_control.transfer_call`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.api import call_sid_from_path, json_response, new_app, parse_json_body
from lambdas.logic.call_control import transfer_call
from lambdas.logic.lines import deployment_lines
from lambdas.models import TransferRequest
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.twilio_calls import twilio_calls
from lambdas.webhooks import api_base_url

app = new_app()


@app.post("/calls/<callSid>/transfer")
def transfer(callSid: str) -> Response[str]:
    settings = load_settings()
    event = app.current_event
    call_sid = call_sid_from_path(callSid)
    request = parse_json_body(event.body, TransferRequest)
    result = transfer_call(
        call_sid,
        request,
        store=settings.call_store(),
        lines=deployment_lines(settings),
        calls=twilio_calls(settings),
        api_base_url=api_base_url(event, settings),
    )
    return json_response(HTTPStatus.OK, result.to_json())


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
