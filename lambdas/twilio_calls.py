"""Twilio's REST API behind a small adapter: place a call, redirect a live call to new TwiML, complete a call, read
a call's state.

Only the call-control and outbound routes and the sweep import this module (twilio.rest is the heaviest import of the
bundle and the TwiML routes never need it). Twilio's error codes become the Lambdas' typed refusals here, so logic never
inspects a TwilioRestException.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, RequestException
from twilio.base.exceptions import TwilioException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from callcore.models import CallStatus
from lambdas.errors import Conflict, Unprocessable, UpstreamError
from lambdas.observability import logger
from lambdas.settings import LambdaSettings

TWILIO_API_ORIGIN = "https://api.twilio.com"
# A phone call is waiting on this answer: fail fast and let the caller of the API decide what to do.
REQUEST_TIMEOUT_SECONDS = 5.0

# 20404: the call resource is gone; 21220: "Call is not in-progress. Cannot redirect."
CALL_NOT_LIVE_CODES = frozenset({20404, 21220})
# 21211 invalid 'To', 21214 'To' cannot be reached, 21217 not a valid number, 13223/13224 <Dial> number refused.
NUMBER_REFUSED_CODES = frozenset({21211, 21214, 21217, 13223, 13224})


class CallNotLive(Conflict):
    """Twilio says the call is no longer in progress (it ended, or it never existed on Twilio's side)."""


class NumberRefused(Unprocessable):
    """Twilio will not dial this number."""


class TwilioFailure(UpstreamError):
    """Any other Twilio REST failure, or Twilio could not be reached in time."""


class TwilioOutcomeUnknown(TwilioFailure):
    """Creating a call failed after the request may have reached Twilio (no answer in time, a connection lost after
    sending, a Twilio 5xx): the call may exist. Whoever asked must not simply try again."""


class RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """twilio's HTTP client, sending api.twilio.com requests to another base URL (TWILIO_API_BASE_URL: a local fake
    of the REST API in tests). Paths, form encoding, auth and headers stay exactly as the SDK makes them."""

    def __init__(self, base_url: str, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(TWILIO_API_ORIGIN):
            url = self.base_url + url[len(TWILIO_API_ORIGIN) :]
        return super().request(method, url, *args, **kwargs)


@dataclass(frozen=True)
class OutboundCall:
    to: str
    from_number: str
    answer_url: str  # Twilio fetches the call's TwiML here when the callee answers (it then knows the CallSid)
    status_callback_url: str
    fallback_url: str
    machine_detection: str | None  # None, "Enable" or "DetectMessageEnd"


STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")


@dataclass(frozen=True)
class TwilioCallState:
    """A call as Twilio's REST API describes it (GET .../Calls/{sid}.json)."""

    status: CallStatus
    ended_at: datetime | None
    duration_seconds: int | None


class TwilioCalls:
    def __init__(self, client: Client) -> None:
        self._client = client

    def place_call(self, call: OutboundCall) -> str:
        """Create the call; returns the CallSid Twilio assigned."""
        kwargs: dict[str, Any] = {
            "to": call.to,
            "from_": call.from_number,
            "url": call.answer_url,
            "method": "POST",
            "fallback_url": call.fallback_url,
            "fallback_method": "POST",
            "status_callback": call.status_callback_url,
            "status_callback_method": "POST",
            "status_callback_event": list(STATUS_CALLBACK_EVENTS),
        }
        if call.machine_detection:
            kwargs["machine_detection"] = call.machine_detection
        try:
            created = self._client.calls.create(**kwargs)
        except (TwilioException, RequestException) as error:
            refusal = _refusal(error, action="place the call", number_field="to")
            if isinstance(refusal, TwilioFailure) and _may_have_reached_twilio(error):
                raise TwilioOutcomeUnknown(refusal.message) from None
            raise refusal from None
        return str(created.sid)

    def redirect(self, call_sid: str, twiml: str, *, number_field: str) -> None:
        """Replace the live call's TwiML (the media stream stops; the new verbs run)."""
        try:
            self._client.calls(call_sid).update(twiml=twiml)
        except (TwilioException, RequestException) as error:
            raise _refusal(error, action="redirect the call", number_field=number_field) from None

    def call_state(self, call_sid: str) -> TwilioCallState:
        """Where the call is now: the answer to a lost status callback. CallNotLive when Twilio has no such call."""
        try:
            call = self._client.calls(call_sid).fetch()
        except (TwilioException, RequestException) as error:
            raise _refusal(error, action="read the call", number_field=None) from None
        try:
            status = CallStatus(str(call.status))
        except ValueError:
            raise TwilioFailure(f"could not read the call: unknown status {call.status!r}") from None
        duration = str(call.duration) if call.duration is not None else ""
        return TwilioCallState(
            status=status,
            ended_at=call.end_time,
            duration_seconds=int(duration) if duration.isdigit() else None,
        )

    def complete(self, call_sid: str) -> None:
        """Hang up the live call."""
        try:
            self._client.calls(call_sid).update(status="completed")
        except (TwilioException, RequestException) as error:
            raise _refusal(error, action="hang up the call", number_field=None) from None


def _may_have_reached_twilio(error: Exception) -> bool:
    """False only when the request certainly never arrived: no connection was made (refused, no route, name not
    resolved, connect timeout). A read timeout, a connection lost mid-request or a 5xx leave the outcome open."""
    if isinstance(error, ConnectTimeout):
        return False
    if isinstance(error, RequestsConnectionError):
        reason = getattr(error.args[0], "reason", None) if error.args else None
        return not isinstance(reason, NewConnectionError | ConnectTimeoutError)
    if isinstance(error, RequestException):
        return True
    status = getattr(error, "status", None)
    return isinstance(status, int) and status >= 500


def _refusal(error: Exception, *, action: str, number_field: str | None) -> Exception:
    code = getattr(error, "code", None)
    status = getattr(error, "status", None)
    logger.warning("twilio refused a request", extra={"action": action, "twilio_code": code, "http_status": status})
    if code in CALL_NOT_LIVE_CODES:
        return CallNotLive(f"the call is no longer in progress (Twilio error {code})")
    if code in NUMBER_REFUSED_CODES and number_field:
        return NumberRefused(f"Twilio refused the number in {number_field} (Twilio error {code})", field=number_field)
    if isinstance(error, RequestException):
        return TwilioFailure(f"could not {action}: Twilio did not answer ({type(error).__name__})")
    return TwilioFailure(f"could not {action}: Twilio error {code or status}")


# ---- construction: one client per container (its HTTP session keeps the TLS connection to Twilio warm) ----------

_http_client_override: HttpClient | None = None


def use_http_client(client: HttpClient | None) -> None:
    """Tests: send every Twilio request through `client` (an in-process fake of the REST API); None restores."""
    global _http_client_override  # noqa: PLW0603 - a process-wide test seam, reset by the tests that set it
    _http_client_override = client
    _cached_calls.cache_clear()


@lru_cache(maxsize=2)
def _cached_calls(account_sid: str, auth_token: str, api_base_url: str | None) -> TwilioCalls:
    http_client: HttpClient
    if _http_client_override is not None:
        http_client = _http_client_override
    elif api_base_url:
        http_client = RebasedHttpClient(api_base_url)
    else:
        http_client = TwilioHttpClient(timeout=REQUEST_TIMEOUT_SECONDS)
    return TwilioCalls(Client(account_sid, auth_token, account_sid=account_sid, http_client=http_client))


def twilio_calls(settings: LambdaSettings) -> TwilioCalls:
    return _cached_calls(
        settings.twilio_account_sid.get_secret_value(),
        settings.twilio_auth_token.get_secret_value(),
        settings.twilio_api_base_url,
    )
