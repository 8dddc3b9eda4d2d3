"""The Lambda fixtures of the unit tier (environment, moto, invoke, records), plus the fake Twilio REST API served on
a real loopback socket that the twilio SDK reaches through TWILIO_API_BASE_URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lambdas.twilio_calls import use_http_client
from tests.fakes.twilio_rest import FakeTwilioRest, TwilioRestServer
from tests.unit.lambdas.conftest import _quiet_empty_metrics, aws, invoke, lambda_env, logs, make_call
from tests.unit.lambdas.events import ACCOUNT_SID, AUTH_TOKEN

__all__ = ["_quiet_empty_metrics", "aws", "invoke", "lambda_env", "logs", "make_call"]


@pytest.fixture
def twilio_server(lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TwilioRestServer]:
    fake = FakeTwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    with TwilioRestServer(fake) as server:
        monkeypatch.setenv("TWILIO_API_BASE_URL", server.base_url)
        use_http_client(None)  # the SDK's own TwilioHttpClient, rebased: real requests over a real socket
        yield server
        use_http_client(None)  # forget the client bound to this server's port
