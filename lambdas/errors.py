"""Typed refusals of the Lambdas' use cases. The HTTP status of each is decided in one place: `lambdas.api`.

Logic raises these with a message written for the caller of the API (the relay, an operator, Twilio's debugger); a
`BadRequest` also names the field that was wrong.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base of every refusal that has an HTTP answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    """The request itself is wrong: a missing or malformed parameter, a bad JSON body, a number Twilio refuses."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class Forbidden(ApiError):
    """The request is not from Twilio (bad or missing X-Twilio-Signature)."""


class NotFound(ApiError):
    """No call record for this CallSid."""


class Conflict(ApiError):
    """The call is not in a state that allows the request (it already ended, it was transferred)."""


class InProgress(Conflict):
    """Another request is doing the same thing right now (a transfer, an outbound call with the same Idempotency-Key):
    the answer is not final. `retry_after_seconds` says when asking again can get the final one."""

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unprocessable(ApiError):
    """Well-formed, but refused on its merits (e.g. Twilio will not dial a syntactically valid number)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class ServiceUnavailable(ApiError):
    """The agent cannot take the request now: over capacity, relay unhealthy, or a needed setting is not configured."""


class UpstreamError(ApiError):
    """Twilio's REST API failed or could not be reached."""
