"""POST /twilio/incoming: the number's voice URL (and, with `?direction=outbound`, the answer URL of outbound calls).

Signature checked -> form validated -> the line of the dialled number picked (its receptionist profile) -> the call
admitted to the agent (`<Connect><Stream>` + token), sent to the line's human, or told the line is closed or not in
service. See `lambdas.logic.incoming_call`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from callcore.models import CallDirection
from lambdas.api import new_app, parse_model, twiml_response
from lambdas.errors import BadRequest
from lambdas.logic.incoming_call import answer_call
from lambdas.logic.lines import deployment_lines
from lambdas.models import VoiceWebhook
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.webhooks import INCOMING_PATH, api_base_url, verify_twilio_request

app = new_app()


def _direction(query: dict[str, str] | None) -> CallDirection:
    value = (query or {}).get("direction")
    if value is None:
        return CallDirection.INBOUND
    if value == CallDirection.OUTBOUND.value:
        return CallDirection.OUTBOUND
    raise BadRequest("direction must be absent (inbound) or 'outbound'", field="direction")


@app.post(INCOMING_PATH)
def incoming_call() -> Response[str]:
    settings = load_settings()
    settings.token_secret()  # this function mints stream tokens: without the secret it must fail, naming it, at once
    event = app.current_event
    params = verify_twilio_request(event, settings)
    direction = _direction(event.query_string_parameters)
    webhook = parse_model(VoiceWebhook, params)
    xml = answer_call(
        webhook,
        direction,
        settings=settings,
        store=settings.call_store(),
        lines=deployment_lines(settings),
        api_base_url=api_base_url(event, settings),
    )
    return twiml_response(xml)


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
