"""POST /calls (IAM): place an outbound call with the agent for a business line (`profileId`;
`lambdas.logic.outbound_call`); an optional `Idempotency-Key` header makes a client retry safe."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.api import idempotency_key_from, json_response, new_app, parse_json_body
from lambdas.logic.lines import deployment_lines
from lambdas.logic.outbound_call import IDEMPOTENCY_HEADER, place_outbound_call
from lambdas.models import OutboundCallRequest
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.twilio_calls import twilio_calls
from lambdas.webhooks import api_base_url

app = new_app()


@app.post("/calls")
def outbound_call() -> Response[str]:
    settings = load_settings()
    event = app.current_event
    idempotency_key = idempotency_key_from(event.headers, IDEMPOTENCY_HEADER)
    request = parse_json_body(event.body, OutboundCallRequest)
    result = place_outbound_call(
        request,
        settings=settings,
        store=settings.call_store(),
        lines=deployment_lines(settings),
        calls=twilio_calls(settings),
        api_base_url=api_base_url(event, settings),
        idempotency_key=idempotency_key,
    )
    return json_response(HTTPStatus.CREATED, result.to_json())


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
