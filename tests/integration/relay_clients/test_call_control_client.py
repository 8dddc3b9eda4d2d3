"""CallControlClient against a scripted call-control API on 127.0.0.1."""

from __future__ import annotations

import re
import socket
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from relay.call_control import CallControlClient, CallControlError

from .conftest import FakePeer, json_reply

CALL_SID = "CA" + "b2" * 16


async def serve(aiohttp_server, peer: FakePeer) -> TestServer:
    app = web.Application()
    app.router.add_post("/{tail:.*}", peer.handle)
    server: TestServer = await aiohttp_server(app)
    return server


async def test_transfer_posts_json_to_the_call_path(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer([json_reply({"callSid": CALL_SID, "outcome": "transferred"})])
    server = await serve(aiohttp_server, peer)
    client = CallControlClient(str(server.make_url("/stage")), http)
    result = await client.transfer(CALL_SID, reason="asked for a person", summary="Billing question.")
    assert result == {"callSid": CALL_SID, "outcome": "transferred"}
    [request] = peer.received
    assert request.path == f"/stage/calls/{CALL_SID}/transfer"
    assert request.json() == {"reason": "asked for a person", "summary": "Billing question."}
    assert request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers  # a loopback URL is not signed unless asked


async def test_hangup_retries_5xx_then_succeeds(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer(
        [json_reply({"message": "upstream"}, 502), json_reply({}, 503), json_reply({"outcome": "completed"})]
    )
    server = await serve(aiohttp_server, peer)
    client = CallControlClient(str(server.make_url("")), http, backoff_seconds=0.001)
    assert await client.hangup(CALL_SID, reason="goodbye said") == {"outcome": "completed"}
    assert len(peer.received) == 3
    assert all(r.json() == {"reason": "goodbye said"} for r in peer.received)


async def test_4xx_is_final_and_explained(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer([json_reply({"message": "call already ended"}, 409)])
    server = await serve(aiohttp_server, peer)
    client = CallControlClient(str(server.make_url("")), http, backoff_seconds=0.001)
    with pytest.raises(CallControlError) as caught:
        await client.hangup(CALL_SID, reason="done")
    assert (caught.value.status, caught.value.message) == (409, "call already ended")
    assert len(peer.received) == 1


def in_progress_reply(retry_after: str) -> Any:
    """What the transfer Lambda answers while an earlier attempt still holds the transfer."""
    body = {"message": "a transfer of this call is in progress", "inProgress": True}
    return lambda _request: web.json_response(body, status=409, headers={"Retry-After": retry_after})


async def test_a_transfer_in_progress_is_asked_again_until_it_resolves(
    aiohttp_server, http: aiohttp.ClientSession
) -> None:
    peer = FakePeer([in_progress_reply("0"), json_reply({"callSid": CALL_SID, "status": "transferred"})])
    server = await serve(aiohttp_server, peer)
    # attempts=1: waiting on an attempt in progress spends none of the retry budget.
    client = CallControlClient(str(server.make_url("")), http, attempts=1, backoff_seconds=0.001)
    assert await client.transfer(CALL_SID, reason="r", summary="s") == {"callSid": CALL_SID, "status": "transferred"}
    assert len(peer.received) == 2


async def test_a_transfer_stuck_in_progress_is_given_up_after_the_wait(
    aiohttp_server, http: aiohttp.ClientSession
) -> None:
    peer = FakePeer([in_progress_reply("0.5")])
    server = await serve(aiohttp_server, peer)
    client = CallControlClient(
        str(server.make_url("")), http, attempts=3, backoff_seconds=0.001, in_progress_wait_seconds=1.0
    )
    with pytest.raises(CallControlError) as caught:
        await client.transfer(CALL_SID, reason="r", summary="s")
    assert caught.value.status == 409
    assert caught.value.in_progress_retry_after == 0.5
    assert len(peer.received) == 3  # the first answer, then two waits of 0.5 s fill the 1 s allowance


async def test_persistent_5xx_gives_up_after_the_bounded_attempts(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer([json_reply({"error": "Twilio error"}, 502)])
    server = await serve(aiohttp_server, peer)
    client = CallControlClient(str(server.make_url("")), http, attempts=3, backoff_seconds=0.001)
    with pytest.raises(CallControlError) as caught:
        await client.transfer(CALL_SID, reason="r", summary="s")
    assert (caught.value.status, caught.value.message) == (502, "Twilio error")
    assert len(peer.received) == 3


async def test_connection_refused_is_retried_then_reported(http: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = CallControlClient(f"http://127.0.0.1:{port}", http, attempts=2, backoff_seconds=0.001)
    with pytest.raises(CallControlError) as caught:
        await client.hangup(CALL_SID, reason="done")
    assert caught.value.status == 0


async def test_slow_api_times_out_per_attempt(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer([json_reply({})], delay=1.0)
    server = await serve(aiohttp_server, peer)
    client = CallControlClient(
        str(server.make_url("")), http, attempts=2, backoff_seconds=0.001, attempt_timeout_seconds=0.05
    )
    with pytest.raises(CallControlError) as caught:
        await client.hangup(CALL_SID, reason="done")
    assert caught.value.status == 0
    assert len(peer.received) == 2


async def test_sigv4_signed_request_verifies_on_the_server(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer([json_reply({"outcome": "transferred"})])
    server = await serve(aiohttp_server, peer)
    base = str(server.make_url("/prod"))
    client = CallControlClient(base, http, sign_with_sigv4=True, region="eu-west-1")
    await client.transfer(CALL_SID, reason="r", summary="s")
    [request] = peer.received
    authorization = request.headers["Authorization"]
    # Credentials come from the default boto3 chain: the test environment's fake keys (the task role in ECS).
    scope = re.search(r"Credential=testing/(\d{8})/eu-west-1/execute-api/aws4_request", authorization)
    assert scope, authorization
    assert request.headers["X-Amz-Security-Token"] == "testing"

    # Verify as API Gateway would: rebuild the canonical request from what arrived and recompute the signature.
    signed = re.search(r"SignedHeaders=([^,]+)", authorization)
    assert signed
    url = f"{base}/calls/{CALL_SID}/transfer"
    lowered = {k.lower(): v for k, v in request.headers.items()}
    rebuilt = AWSRequest(
        method="POST", url=url, data=request.body, headers={h: lowered[h] for h in signed[1].split(";")}
    )
    rebuilt.context["timestamp"] = request.headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials("testing", "testing", "testing"), "execute-api", "eu-west-1")
    expected = signer.signature(signer.string_to_sign(rebuilt, signer.canonical_request(rebuilt)), rebuilt)
    assert authorization.endswith(f"Signature={expected}")


async def test_missing_region_is_not_retried(http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")  # no profile region either
    client = CallControlClient("http://127.0.0.1:9", http, sign_with_sigv4=True, boto_session=boto3.session.Session())
    with pytest.raises(CallControlError) as caught:
        await client.hangup(CALL_SID, reason="done")
    assert "no AWS region" in caught.value.message
    assert not caught.value.retryable
