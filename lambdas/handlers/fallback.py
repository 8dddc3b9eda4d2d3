"""POST /twilio/fallback: the number's fallback URL. Twilio requests it when the voice URL failed (error, timeout,
invalid TwiML); the caller is sent to the human line of the call's business line (its receptionist profile's, by our
number on the call) rather than hearing Twilio's application-error message.

Nothing is written: the call may have no record, and this route must answer even when DynamoDB is the reason the
voice URL failed (then, as without profiles, HUMAN_TRANSFER_NUMBER is dialled).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas import twiml
from lambdas.api import new_app, parse_model, twiml_response
from lambdas.logic.lines import deployment_lines
from lambdas.models import FallbackWebhook
from lambdas.observability import bind_call, logger, observed
from lambdas.settings import load_settings
from lambdas.webhooks import FALLBACK_PATH, verify_twilio_request

app = new_app()


@app.post(FALLBACK_PATH)
def fallback() -> Response[str]:
    settings = load_settings()
    params = verify_twilio_request(app.current_event, settings)
    webhook = parse_model(FallbackWebhook, params)
    bind_call(webhook.call_sid)
    logger.error(
        "the voice URL failed: Twilio used the fallback URL",
        extra={"twilio_error_code": webhook.error_code, "failed_url": webhook.error_url},
    )
    human = deployment_lines(settings).human_of_number(webhook.business_number)
    return twiml_response(twiml.route_to_human(human))


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
