"""Signatures are made by twilio's own RequestValidator, as Twilio makes them; our checks must accept exactly the
URL Twilio used."""

from __future__ import annotations

from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from callcore.twilio_signature import (
    base_path_of,
    public_url_from_apigw_event,
    route_path,
    signature_headers,
    validate_form,
    validate_websocket,
)

TOKEN = "test-auth-token"
PARAMS: dict[str, str | list[str]] = {
    "CallSid": "CA" + "1" * 32,
    "From": "+14155550100",
    "To": "+14155550199",
    "CallStatus": "ringing",
}
PUBLIC = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/twilio/incoming"


def sign(url: str, params: dict[str, Any] | None = None, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params or {})


def apigw_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "resource": "/twilio/incoming",
        "path": "/twilio/incoming",
        "httpMethod": "POST",
        "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "X-Forwarded-Proto": "https"},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {
            "path": "/prod/twilio/incoming",
            "stage": "prod",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        },
    }
    event.update(overrides)
    return event


def test_correct_public_url_passes() -> None:
    url = public_url_from_apigw_event(apigw_event())
    assert url == PUBLIC
    assert validate_form(TOKEN, url, PARAMS, sign(PUBLIC, PARAMS))


def test_http_instead_of_https_fails() -> None:
    http_url = PUBLIC.replace("https://", "http://")
    assert not validate_form(TOKEN, PUBLIC, PARAMS, sign(http_url, PARAMS))
    # ...and a handler that rebuilt the URL as http would refuse Twilio's real https signature.
    event = apigw_event(headers={"Host": "abc123.execute-api.us-east-1.amazonaws.com", "X-Forwarded-Proto": "http"})
    assert not validate_form(TOKEN, public_url_from_apigw_event(event), PARAMS, sign(PUBLIC, PARAMS))


def test_missing_stage_path_fails() -> None:
    without_stage = "https://abc123.execute-api.us-east-1.amazonaws.com/twilio/incoming"
    assert not validate_form(TOKEN, without_stage, PARAMS, sign(PUBLIC, PARAMS))
    # The event's `path` lacks the stage: rebuilding from it alone would be the classic 403.
    event = apigw_event(requestContext={})
    assert public_url_from_apigw_event(event) == without_stage
    assert not validate_form(TOKEN, public_url_from_apigw_event(event), PARAMS, sign(PUBLIC, PARAMS))


def test_changed_parameter_fails() -> None:
    signature = sign(PUBLIC, PARAMS)
    assert not validate_form(TOKEN, PUBLIC, {**PARAMS, "From": "+14155550101"}, signature)
    assert not validate_form(TOKEN, PUBLIC, {**PARAMS, "Extra": "1"}, signature)
    assert not validate_form(TOKEN, PUBLIC, {k: v for k, v in PARAMS.items() if k != "To"}, signature)


def test_wrong_token_or_missing_signature_fails() -> None:
    assert not validate_form(TOKEN, PUBLIC, PARAMS, sign(PUBLIC, PARAMS, token="another-token"))
    assert not validate_form(TOKEN, PUBLIC, PARAMS, None)
    assert not validate_form(TOKEN, PUBLIC, PARAMS, "")
    assert not validate_form("", PUBLIC, PARAMS, sign(PUBLIC, PARAMS, token=""))


def test_query_string_is_part_of_the_signed_url() -> None:
    event = apigw_event(
        queryStringParameters={"direction": "outbound"}, multiValueQueryStringParameters={"direction": ["outbound"]}
    )
    url = public_url_from_apigw_event(event)
    assert url == PUBLIC + "?direction=outbound"
    assert validate_form(TOKEN, url, PARAMS, sign(url, PARAMS))
    assert not validate_form(TOKEN, url, PARAMS, sign(PUBLIC, PARAMS))


def test_base_url_override_for_a_custom_domain() -> None:
    url = public_url_from_apigw_event(apigw_event(), base_url="https://voice.example.com/api/")
    assert url == "https://voice.example.com/api/twilio/incoming"


CUSTOM_DOMAIN = "voice.example.com"


def custom_domain_event(base_path: str = "/api", **overrides: Any) -> dict[str, Any]:
    """The same request through a custom domain whose base path `api` maps to the `prod` stage: API Gateway puts the
    base path into `path` and `requestContext.path`, keeps `resource`, and the Host is the custom domain."""
    event = apigw_event(
        path=f"{base_path}/twilio/incoming",
        headers={"Host": CUSTOM_DOMAIN, "X-Forwarded-Proto": "https"},
        requestContext={"path": f"{base_path}/twilio/incoming", "stage": "prod", "domainName": CUSTOM_DOMAIN},
    )
    event.update(overrides)
    return event


@pytest.mark.parametrize("base_url", ["https://voice.example.com/api", "https://voice.example.com/api/"])
def test_a_custom_domain_base_path_is_not_doubled(base_url: str) -> None:
    signed = "https://voice.example.com/api/twilio/incoming"
    url = public_url_from_apigw_event(custom_domain_event(), base_url=base_url)
    assert url == signed
    assert validate_form(TOKEN, url, PARAMS, sign(signed, PARAMS))


def test_a_custom_domain_without_the_setting_is_rebuilt_from_the_request() -> None:
    assert public_url_from_apigw_event(custom_domain_event()) == "https://voice.example.com/api/twilio/incoming"
    # A domain mapped at its root: no base path at all.
    root = custom_domain_event(base_path="")
    assert public_url_from_apigw_event(root) == "https://voice.example.com/twilio/incoming"
    assert public_url_from_apigw_event(root, base_url="https://voice.example.com") == (
        "https://voice.example.com/twilio/incoming"
    )


def test_the_stage_url_as_base_url_matches_the_execute_api_request() -> None:
    stage_url = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
    assert public_url_from_apigw_event(apigw_event(), base_url=stage_url) == PUBLIC


def test_route_path_fills_path_parameters_and_ignores_stage_and_base_path() -> None:
    sid = "CA" + "2" * 32
    transfer = apigw_event(
        resource="/calls/{callSid}/transfer",
        path=f"/api/calls/{sid}/transfer",
        pathParameters={"callSid": sid},
    )
    assert route_path(transfer) == f"/calls/{sid}/transfer"
    assert route_path(custom_domain_event()) == "/twilio/incoming"
    assert route_path(apigw_event()) == "/twilio/incoming"
    assert route_path({"path": "/twilio/status"}) == "/twilio/status"  # no resource: the path is all there is


def test_base_path_of() -> None:
    assert base_path_of("https://voice.example.com/api/") == "/api"
    assert base_path_of("https://voice.example.com/v1/voice") == "/v1/voice"
    assert base_path_of("https://voice.example.com") == ""
    assert base_path_of(None) == ""


def test_repeated_form_fields_are_signed_value_by_value() -> None:
    params: dict[str, str | list[str]] = {**PARAMS, "StatusCallbackEvent": ["initiated", "answered"]}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC, {**PARAMS, "StatusCallbackEvent": "answered"})
    assert not validate_form(TOKEN, PUBLIC, params, signature)
    expected = RequestValidator(TOKEN).compute_signature(PUBLIC, _Multi(params))
    assert validate_form(TOKEN, PUBLIC, params, expected)


class _Multi(dict[str, Any]):
    def getall(self, name: str) -> list[str]:
        value = self[name]
        return value if isinstance(value, list) else [value]


def test_sha256_signature_settings_header() -> None:
    settings = "key=webhooks_sharedkey_x,algorithm=HMAC_SHA256"
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC, PARAMS, algorithm="HMAC_SHA256")
    assert validate_form(TOKEN, PUBLIC, PARAMS, signature, signature_settings=settings)
    assert not validate_form(TOKEN, PUBLIC, PARAMS, signature)


WSS = "wss://relay.example.com/media-stream"


def test_websocket_upgrade_signed_over_the_wss_url() -> None:
    assert validate_websocket(TOKEN, WSS, sign(WSS))


def test_websocket_signed_as_https_fails() -> None:
    assert not validate_websocket(TOKEN, WSS, sign("https://relay.example.com/media-stream"))


def test_websocket_signed_for_the_internal_address_fails() -> None:
    assert not validate_websocket(TOKEN, WSS, sign("ws://10.0.1.23:8080/media-stream"))
    assert not validate_websocket(TOKEN, WSS, sign("wss://relay.example.com:80/media-stream"))
    assert not validate_websocket(TOKEN, WSS, None)


def test_websocket_public_url_must_be_a_websocket_url() -> None:
    with pytest.raises(ValueError, match="ws://"):
        validate_websocket(TOKEN, "https://relay.example.com/media-stream", "x")


def test_signature_headers_any_case() -> None:
    assert signature_headers({"x-twilio-signature": "abc"}) == ("abc", None)
    assert signature_headers(None) == (None, None)
