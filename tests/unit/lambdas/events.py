"""API Gateway REST (v1) proxy events for the Lambdas' tests, shaped as API Gateway delivers them: stage `prod`, a
Host header, `requestContext.path` with the stage, `path` without it. Twilio webhooks are signed with twilio's own
`RequestValidator` over the public URL, exactly as Twilio signs them.

Shared by the unit tests (in-process) and the integration tests (loopback sockets).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

from twilio.request_validator import RequestValidator

# Obviously fake values: nothing here is, or looks like, a real credential.
AUTH_TOKEN = "test-auth-token"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
STREAM_TOKEN_SECRET = "test-stream-token-secret"
CALLER_HASH_SECRET = "test-caller-hash-secret"
TABLE = "calls-test"
BUCKET = "transcripts-test"
API_ID = "abc123defg"
API_HOST = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
STAGE = "prod"
API_BASE = f"https://{API_HOST}/{STAGE}"
RELAY_URL = "wss://relay.example.test/media-stream"
HUMAN_NUMBER = "+15005550100"
AGENT_NUMBER = "+15005550001"
CALLER_NUMBER = "+15005550123"

LAMBDA_ENV: dict[str, str] = {
    "CALLS_TABLE": TABLE,
    "TRANSCRIPTS_BUCKET": BUCKET,
    "RELAY_PUBLIC_URL": RELAY_URL,
    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
    "STREAM_TOKEN_SECRET": STREAM_TOKEN_SECRET,
    "CALLER_HASH_SECRET": CALLER_HASH_SECRET,
    "HUMAN_TRANSFER_NUMBER": HUMAN_NUMBER,
    "TWILIO_PHONE_NUMBER": AGENT_NUMBER,
    "MAX_CONCURRENT_CALLS": "50",
    "STREAM_TOKEN_TTL_SECONDS": "120",
    "POWERTOOLS_SERVICE_NAME": "phone-agent",
    "POWERTOOLS_METRICS_NAMESPACE": "PhoneVoiceAgent",
}
SECRET_NAMES = ("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID", "STREAM_TOKEN_SECRET", "CALLER_HASH_SECRET")
# Needed by every function; the other two are checked together (see the settings tests).
ALWAYS_REQUIRED_SECRETS = ("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID")


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def public_url(path: str, query: Mapping[str, str] | None = None, *, stage: str | None = STAGE) -> str:
    prefix = f"/{stage}" if stage else ""
    url = f"https://{API_HOST}{prefix}{path}"
    return f"{url}?{urlencode(list(query.items()))}" if query else url


def sign(url: str, params: Mapping[str, str], auth_token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


def _proxy_event(
    *,
    method: str,
    path: str,
    resource: str,
    headers: dict[str, str],
    query: Mapping[str, str] | None,
    body: str | None,
    path_parameters: dict[str, str] | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    base_headers = {"Host": API_HOST, "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443", **headers}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": base_headers,
        "multiValueHeaders": {name: [value] for name, value in base_headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "domainName": API_HOST,
            "apiId": API_ID,
            "accountId": "123456789012",
            "requestId": str(uuid.uuid4()),
            "identity": identity or {"sourceIp": "203.0.113.10"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def twilio_event(
    path: str,
    params: Mapping[str, str],
    *,
    method: str = "POST",
    query: Mapping[str, str] | None = None,
    auth_token: str = AUTH_TOKEN,
    signed_url: str | None = None,
    signed_params: Mapping[str, str] | None = None,
    signature: str | None = None,
) -> dict[str, Any]:
    """A Twilio webhook. By default signed correctly; `auth_token`, `signed_url`, `signed_params` and `signature`
    make it wrong in one controlled way (another token, another URL, tampered parameters, a forged header)."""
    url = signed_url if signed_url is not None else public_url(path, query)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
    header = (
        signature
        if signature is not None
        else sign(url, signed_params if signed_params is not None else params, auth_token)
    )
    if header:
        headers["X-Twilio-Signature"] = header
    body = urlencode(list(params.items())) if method == "POST" else None
    return _proxy_event(method=method, path=path, resource=path, headers=headers, query=query, body=body)


def iam_event(
    path: str,
    body: Mapping[str, Any] | str | None,
    *,
    resource: str,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A call-control request as it arrives after API Gateway's IAM (SigV4) authorization."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    identity = {
        "sourceIp": "10.0.1.23",
        "caller": "AROAEXAMPLE:relay-task",
        "userArn": "arn:aws:sts::123456789012:assumed-role/relay-task-role/abc",
        "accountId": "123456789012",
    }
    return _proxy_event(
        method="POST",
        path=path,
        resource=resource,
        headers={"Content-Type": "application/json"},
        query=None,
        body=raw,
        path_parameters=path_parameters,
        identity=identity,
    )


def transfer_event(call_sid: str, body: Mapping[str, Any] | str | None) -> dict[str, Any]:
    return iam_event(
        f"/calls/{call_sid}/transfer", body, resource="/calls/{callSid}/transfer", path_parameters={"callSid": call_sid}
    )


def hangup_event(call_sid: str, body: Mapping[str, Any] | str | None) -> dict[str, Any]:
    return iam_event(
        f"/calls/{call_sid}/hangup", body, resource="/calls/{callSid}/hangup", path_parameters={"callSid": call_sid}
    )


def outbound_event(body: Mapping[str, Any] | str | None) -> dict[str, Any]:
    return iam_event("/calls", body, resource="/calls")


def voice_params(call_sid: str, **extra: str) -> dict[str, str]:
    """What Twilio posts to the voice URL of an incoming call (the fields the Lambda reads and a few it ignores)."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": AGENT_NUMBER,
        "Caller": CALLER_NUMBER,
        "Direction": "inbound",
        "From": CALLER_NUMBER,
        "To": AGENT_NUMBER,
        **extra,
    }


def status_params(call_sid: str, status: str, sequence: int, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "CallStatus": status,
        "SequenceNumber": str(sequence),
        "CallbackSource": "call-progress-events",
        "Timestamp": "Mon, 16 Aug 2025 03:45:01 +0000",
        **extra,
    }


@dataclass(frozen=True)
class FakeLambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "phone-agent-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:phone-agent-test"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/phone-agent-test"
    log_stream_name: str = "2025/01/01/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def parse_twiml(body: str) -> ElementTree.Element:
    """The answer must be well-formed XML with a <Response> root, as Twilio requires."""
    root = ElementTree.fromstring(body)
    assert root.tag == "Response", body
    return root


def node(root: ElementTree.Element, path: str) -> ElementTree.Element:
    found = root.find(path)
    assert found is not None, f"no {path} in {ElementTree.tostring(root, encoding='unicode')}"
    return found


def attribute(root: ElementTree.Element, path: str, name: str) -> str:
    value = node(root, path).get(name)
    assert value is not None, f"{path} has no {name} attribute"
    return value


def text(root: ElementTree.Element, path: str) -> str:
    return node(root, path).text or ""


def on_custom_domain(event: dict[str, Any], *, domain: str, base_path: str) -> dict[str, Any]:
    """`event` as API Gateway delivers it when the request came through a custom domain whose base path mapping
    (`base_path`, e.g. `/api`; empty for a root mapping) points at the stage: the Host is the domain, and `path` and
    `requestContext.path` carry the base path (not the stage); `resource` and `requestContext.stage` are unchanged."""
    path = f"{base_path}{event['path']}"
    headers = {**event["headers"], "Host": domain}
    return {
        **event,
        "path": path,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "requestContext": {**event["requestContext"], "path": path, "domainName": domain},
    }
