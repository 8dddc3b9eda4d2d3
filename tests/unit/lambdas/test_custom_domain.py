"""A custom domain with a base path mapping (PUBLIC_API_BASE_URL `https://voice.example.test/api`): API Gateway puts
the base path into the event's `path`; the routes must still match and the signature must be checked over the URL
Twilio used, with the base path once."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

from callcore.models import CallStatus
from lambdas.handlers import call_status, incoming_call, transfer
from tests.unit.lambdas.events import (
    API_BASE,
    attribute,
    new_call_sid,
    on_custom_domain,
    parse_twiml,
    status_params,
    transfer_event,
    twilio_event,
    voice_params,
)

DOMAIN = "voice.example.test"
BASE_PATH = "/api"
BASE_URL = f"https://{DOMAIN}{BASE_PATH}"
HANDLERS: tuple[ModuleType, ...] = (incoming_call, call_status, transfer)


@pytest.fixture
def custom_domain(lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The resolver (and its strip_prefixes) is built when a handler module is imported, at Lambda init.
    monkeypatch.setenv("PUBLIC_API_BASE_URL", BASE_URL)
    for module in HANDLERS:
        importlib.reload(module)
    yield
    monkeypatch.delenv("PUBLIC_API_BASE_URL")
    for module in HANDLERS:
        importlib.reload(module)


def signed_on_domain(path: str, params: dict[str, str], query: dict[str, str] | None = None) -> dict[str, Any]:
    url = f"{BASE_URL}{path}" + (f"?{urlencode(list(query.items()))}" if query else "")
    event = twilio_event(path, params, query=query, signed_url=url)
    return on_custom_domain(event, domain=DOMAIN, base_path=BASE_PATH)


def test_incoming_call_through_the_custom_domain_routes_and_verifies(aws, invoke, custom_domain):
    answer = invoke(incoming_call.handler, signed_on_domain("/twilio/incoming", voice_params(new_call_sid())))
    assert answer.status == 200
    stream = attribute(parse_twiml(answer.body), "./Connect/Stream", "statusCallback")
    assert stream == f"{BASE_URL}/twilio/stream-status"


def test_a_query_string_on_the_custom_domain_is_signed_too(aws, invoke, custom_domain, make_call):
    call = make_call(status=CallStatus.IN_PROGRESS, admitted=False)
    params = voice_params(call.call_sid, Direction="outbound-api")
    answer = invoke(incoming_call.handler, signed_on_domain("/twilio/incoming", params, {"direction": "outbound"}))
    assert answer.status == 200


def test_status_callback_through_the_custom_domain(aws, invoke, custom_domain, make_call):
    call = make_call(status=CallStatus.RINGING)
    answer = invoke(call_status.handler, signed_on_domain("/twilio/status", status_params(call.call_sid, "ringing", 1)))
    assert answer.status == 200
    assert answer.json() == {"applied": True}


def test_a_signature_over_the_doubled_path_is_refused(aws, invoke, custom_domain):
    doubled = f"{BASE_URL}{BASE_PATH}/twilio/incoming"
    event = twilio_event("/twilio/incoming", voice_params(new_call_sid()), signed_url=doubled)
    assert invoke(incoming_call.handler, on_custom_domain(event, domain=DOMAIN, base_path=BASE_PATH)).status == 403


def test_the_execute_api_address_still_routes_with_the_setting(aws, invoke, custom_domain):
    # Twilio is given the custom domain; a request that reached the stage URL directly is routed, and refused unless
    # it was signed over the URL Twilio was given.
    params = voice_params(new_call_sid())
    assert invoke(incoming_call.handler, twilio_event("/twilio/incoming", params)).status == 403
    signed = twilio_event("/twilio/incoming", params, signed_url=f"{BASE_URL}/twilio/incoming")
    assert invoke(incoming_call.handler, signed).status == 200


def test_transfer_through_the_custom_domain_builds_the_whisper_url_once(aws, twilio, invoke, custom_domain, make_call):
    call = make_call()
    twilio.add_call(call.call_sid)
    event = on_custom_domain(
        transfer_event(call.call_sid, {"reason": "asked", "summary": "wants a person"}),
        domain=DOMAIN,
        base_path=BASE_PATH,
    )
    assert invoke(transfer.handler, event).status == 200
    [request] = twilio.requests
    assert f"{BASE_URL}/twilio/whisper?callSid={call.call_sid}" in (request.value("Twiml") or "")


def test_without_the_setting_a_custom_domain_request_builds_urls_from_itself(aws, twilio, invoke, make_call):
    # A domain mapped at its root needs no prefix stripping; URLs handed to Twilio come from the request itself.
    call = make_call()
    twilio.add_call(call.call_sid)
    event = on_custom_domain(
        transfer_event(call.call_sid, {"reason": "asked", "summary": "wants a person"}), domain=DOMAIN, base_path=""
    )
    assert invoke(transfer.handler, event).status == 200
    assert f"https://{DOMAIN}/twilio/whisper" in (twilio.requests[0].value("Twiml") or "")
    assert API_BASE not in (twilio.requests[0].value("Twiml") or "")
