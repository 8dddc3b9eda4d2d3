"""The API Gateway side of every handler: the resolver factory, the one error-to-HTTP mapping, request parsing and
response shapes. Handlers register their route on `new_app()` and never build an error response themselves."""

from __future__ import annotations

import json
import os
import re
from http import HTTPStatus
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from pydantic import BaseModel, ValidationError

from callcore.models import CALL_SID_PATTERN
from callcore.settings import SettingsError
from callcore.twilio_signature import base_path_of
from lambdas.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    InProgress,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    UpstreamError,
)
from lambdas.observability import logger

ModelT = TypeVar("ModelT", bound=BaseModel)

JSON = "application/json"
TWIML = "application/xml"

# The only place a refusal becomes an HTTP status.
STATUS_BY_ERROR: dict[type[ApiError], HTTPStatus] = {
    BadRequest: HTTPStatus.BAD_REQUEST,
    Forbidden: HTTPStatus.FORBIDDEN,
    NotFound: HTTPStatus.NOT_FOUND,
    Conflict: HTTPStatus.CONFLICT,
    Unprocessable: HTTPStatus.UNPROCESSABLE_ENTITY,
    ServiceUnavailable: HTTPStatus.SERVICE_UNAVAILABLE,
    UpstreamError: HTTPStatus.BAD_GATEWAY,
}


def status_for(error: ApiError) -> HTTPStatus:
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return HTTPStatus.INTERNAL_SERVER_ERROR


def json_response(
    status: HTTPStatus, payload: dict[str, Any], *, headers: dict[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status.value,
        content_type=JSON,
        body=json.dumps(payload, separators=(",", ":")),
        headers=headers,
    )


def twiml_response(xml: str) -> Response[str]:
    return Response(status_code=HTTPStatus.OK.value, content_type=TWIML, body=xml)


def new_app() -> APIGatewayRestResolver:
    """A resolver with the error mapping installed. One per handler module, created at import (Lambda init).

    Behind a custom domain with a base path mapping (PUBLIC_API_BASE_URL `https://voice.example.com/api`), API
    Gateway puts the base path into the event's `path` (`/api/twilio/incoming`): the resolver strips it to route. The
    variable is read here, not through the settings model, because the resolver is built at import, before any
    secret may be read; the settings model still validates the same value on every request.
    """
    base_path = base_path_of(os.environ.get("PUBLIC_API_BASE_URL"))
    app = APIGatewayRestResolver(strip_prefixes=[base_path] if base_path else None)

    def _refused(error: ApiError) -> Response[str]:
        status = status_for(error)
        payload: dict[str, Any] = {"error": status.phrase, "message": error.message}
        if isinstance(error, BadRequest | Unprocessable):
            payload["field"] = error.field
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.error("request failed", extra={"status": status.value, "reason": error.message})
        else:
            logger.info("request refused", extra={"status": status.value, "reason": error.message})
        if isinstance(error, InProgress):
            # Not final: says so in the body (clients that only read JSON) and in the standard header.
            payload["inProgress"] = True
            return json_response(status, payload, headers={"Retry-After": str(error.retry_after_seconds)})
        return json_response(status, payload)

    def _misconfigured(error: SettingsError) -> Response[str]:
        # The message names environment variables and what is wrong with them, never a secret's value.
        logger.error("the function is misconfigured", extra={"problems": error.problems})
        return json_response(
            HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "Internal Server Error", "message": "misconfigured"}
        )

    def _unexpected(error: Exception) -> Response[str]:
        # A 5xx makes Twilio use the number's fallback URL (which dials the human line) instead of dropping the call.
        # Powertools calls this handler outside the `except` block, so the exception is passed explicitly.
        logger.error("unexpected error", exc_info=error)
        return json_response(
            HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "Internal Server Error", "message": "unexpected error"}
        )

    # Registered by call rather than as decorators: Powertools' decorator is untyped and would hide these signatures.
    app.exception_handler(ApiError)(_refused)
    app.exception_handler(SettingsError)(_misconfigured)
    app.exception_handler(Exception)(_unexpected)
    return app


def describe_validation_error(error: ValidationError) -> tuple[str, str]:
    """(field, message) of the first problem pydantic found, in the request's own field names."""
    first = error.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "missing":
        return field, f"{field} is required"
    return field, f"{field}: {first['msg']}"


def parse_model(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        field, message = describe_validation_error(error)
        raise BadRequest(message, field=field) from None


def parse_json_body(body: str | None, model: type[ModelT]) -> ModelT:
    """A JSON object body validated by `model`; anything else is a 400 naming the field."""
    if not body:
        raise BadRequest("a JSON object body is required", field="body")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest("the body is not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    return parse_model(model, data)


def call_sid_from_path(value: str | None) -> str:
    """The `{callSid}` path parameter of the call-control routes, checked before anything is read or written."""
    if not value or not CALL_SID_PATTERN.match(value):
        raise BadRequest("callSid must be a Twilio Call SID: CA followed by 32 hex digits", field="callSid")
    return value


# Idempotency keys: 1-128 printable ASCII characters (what clients generate: UUIDs, ULIDs, request ids).
_IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,128}$")


def idempotency_key_from(headers: dict[str, str] | None, name: str) -> str | None:
    """The optional idempotency key header (any casing); a 400 naming it when present but malformed."""
    for header, value in (headers or {}).items():
        if header.lower() == name.lower():
            if not _IDEMPOTENCY_KEY.match(value):
                raise BadRequest(f"{name} must be 1 to 128 printable ASCII characters", field=name)
            return value
    return None
