"""Whether a failed call creation may have reached Twilio: decides between "try again" and "do not dial twice"."""

from __future__ import annotations

import pytest
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, ReadTimeout
from twilio.base.exceptions import TwilioRestException
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from lambdas.twilio_calls import _may_have_reached_twilio


def _no_connection() -> RequestsConnectionError:
    refused = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return RequestsConnectionError(MaxRetryError(None, "/2010-04-01/Accounts/AC/Calls.json", reason=refused))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "may_have"),
    [
        (ConnectTimeout("connect timed out"), False),
        (_no_connection(), False),
        (TwilioRestException(400, "uri", "bad From", code=21210), False),
        (ReadTimeout("read timed out"), True),  # sent; Twilio may have created the call before we gave up
        (RequestsConnectionError(ProtocolError("Connection aborted.")), True),
        (TwilioRestException(503, "uri", "unavailable", code=20503), True),
    ],
)
def test_only_a_request_that_never_arrived_is_safe_to_repeat(error: Exception, may_have: bool) -> None:
    assert _may_have_reached_twilio(error) is may_have
