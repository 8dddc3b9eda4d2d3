"""Twilio webhooks as they reach a Lambda through API Gateway: the signature check and the public URLs.

Twilio signs the URL it requested (`https://<api host>/<stage>/twilio/...` or the custom domain in
PUBLIC_API_BASE_URL) plus the form parameters. `callcore.twilio_signature` rebuilds that URL from the proxy event and
runs twilio's own `RequestValidator`; this module feeds it the event and turns a mismatch into a 403 before anything
is read or written.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from callcore.twilio_signature import public_url_from_apigw_event, route_path, signature_headers, validate_form
from lambdas.errors import Forbidden
from lambdas.observability import Metric, count, logger
from lambdas.settings import LambdaSettings

# Routes, relative to the API's public base URL. Twilio is given these as absolute URLs.
INCOMING_PATH = "/twilio/incoming"
STATUS_PATH = "/twilio/status"
STREAM_STATUS_PATH = "/twilio/stream-status"
FALLBACK_PATH = "/twilio/fallback"
WHISPER_PATH = "/twilio/whisper"
RECORDING_STATUS_PATH = "/twilio/recording-status"


def form_params(event: APIGatewayProxyEvent) -> dict[str, list[str]]:
    """The form-encoded body, every value of every field (a repeated field is signed with all its values)."""
    body = event.decoded_body or ""
    return parse_qs(body, keep_blank_values=True)


def verify_twilio_request(event: APIGatewayProxyEvent, settings: LambdaSettings) -> dict[str, str]:
    """The form parameters of a request Twilio signed; `Forbidden` (metric RejectedSignatures) otherwise."""
    params = form_params(event)
    signature, signature_settings = signature_headers(event.headers)
    try:
        url = public_url_from_apigw_event(event.raw_event, base_url=settings.public_api_base_url)
    except ValueError:
        url = None
    signed: dict[str, str | list[str]] = {
        name: values[0] if len(values) == 1 else values for name, values in params.items()
    }
    if url is None or not validate_form(
        settings.twilio_auth_token.get_secret_value(),
        url,
        signed,
        signature,
        signature_settings=signature_settings,
    ):
        count(Metric.REJECTED_SIGNATURES)
        # The URL without its query is logged (compare it with the webhook URL configured at Twilio); parameters
        # and query are not: they carry phone numbers.
        logger.warning(
            "rejected a request without a valid Twilio signature",
            extra={"url": url.partition("?")[0] if url else None, "had_signature": bool(signature)},
        )
        raise Forbidden("invalid Twilio signature")
    return {name: values[0] for name, values in params.items()}


def api_base_url(event: APIGatewayProxyEvent, settings: LambdaSettings) -> str:
    """The API's public base URL (scheme, host, stage or base path), to build the URLs handed to Twilio."""
    if settings.public_api_base_url:
        return settings.public_api_base_url
    without_query: dict[str, Any] = {
        **event.raw_event,
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
    }
    url = public_url_from_apigw_event(without_query)
    # What precedes the route is the stage (execute-api) or the base path (custom domain): both belong to the base.
    route = route_path(event.raw_event)
    return url[: -len(route)] if url.endswith(route) else url.rstrip("/")
