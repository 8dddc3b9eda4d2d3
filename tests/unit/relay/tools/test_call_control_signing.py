"""SigV4 signing of call-control requests, checked by recomputing the signature as API Gateway would."""

from __future__ import annotations

import re

import aiohttp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from relay.call_control import CallControlClient, CallControlError, region_from_host, sigv4_headers

CREDENTIALS = Credentials("AKIDEXAMPLETEST", "test-secret-key", "test-session-token")
URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/calls/CA" + "0" * 32 + "/transfer"
BODY = b'{"reason":"r","summary":"s"}'
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def recompute_signature(headers: dict[str, str], body: bytes, region: str) -> str:
    request = AWSRequest(method="POST", url=URL, data=body, headers={"Content-Type": headers["Content-Type"]})
    request.headers["X-Amz-Date"] = headers["X-Amz-Date"]
    request.headers["X-Amz-Security-Token"] = headers["X-Amz-Security-Token"]
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(CREDENTIALS, "execute-api", region)
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


def test_authorization_has_the_execute_api_scope_and_a_valid_signature() -> None:
    headers = sigv4_headers("POST", URL, BODY, CREDENTIALS, "eu-west-1")
    match = _AUTH.match(headers["Authorization"])
    assert match, headers["Authorization"]
    assert match["key"] == "AKIDEXAMPLETEST"
    assert match["region"] == "eu-west-1"
    assert match["service"] == "execute-api"
    assert match["day"] == headers["X-Amz-Date"][:8]
    assert set(match["signed"].split(";")) >= {"host", "x-amz-date", "x-amz-security-token", "content-type"}
    assert headers["X-Amz-Security-Token"] == "test-session-token"
    assert match["signature"] == recompute_signature(headers, BODY, "eu-west-1")
    # The signature covers the body: a different body would not verify.
    assert match["signature"] != recompute_signature(headers, b'{"reason":"x","summary":"s"}', "eu-west-1")


def test_region_comes_from_an_api_gateway_host() -> None:
    assert region_from_host("abc123.execute-api.eu-west-1.amazonaws.com") == "eu-west-1"
    assert region_from_host("calls.example.com") is None


async def test_signing_is_automatic_only_for_amazonaws_hosts() -> None:
    async with aiohttp.ClientSession() as http:
        assert CallControlClient("https://abc.execute-api.us-east-2.amazonaws.com/prod", http).sign
        aws = CallControlClient("https://abc.execute-api.us-east-2.amazonaws.com/prod", http)
        assert aws.region == "us-east-2"
        assert not CallControlClient("http://127.0.0.1:8000", http).sign
        assert CallControlClient("http://127.0.0.1:8000", http, sign_with_sigv4=True, region="eu-west-1").sign
        assert not CallControlClient("https://x.amazonaws.com", http, sign_with_sigv4=False).sign


async def test_bad_inputs_are_refused_before_any_request() -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ValueError, match="http"):
            CallControlClient("ftp://example.test", http)
        client = CallControlClient("http://127.0.0.1:9", http)
        with pytest.raises(ValueError, match="Call SID"):
            await client.hangup("CA../../admin", reason="done")


def test_error_carries_status_and_message() -> None:
    error = CallControlError(409, "call already ended")
    assert (error.status, error.message) == (409, "call already ended")
    assert "409" in str(error)
    assert "no response" in str(CallControlError(0, "ClientConnectorError"))
