"""Client of the call-control API (the transfer and hang-up Lambdas behind API Gateway).

    POST {base}/calls/{callSid}/transfer  {"reason": str, "summary": str}
    POST {base}/calls/{callSid}/hangup    {"reason": str}

Both endpoints are idempotent, so connection errors, 429 and 5xx are retried a few times with backoff; other 4xx
are final (404 unknown call, 409 call already ended, 400 bad input). One 409 is not: `{"inProgress": true}` with a
`Retry-After` header says an earlier attempt (one this client timed out on) still holds the transfer and may yet
succeed or fail. The client then asks again after `Retry-After`, for up to `in_progress_wait_seconds` in all, without
spending its retry budget: the answer it waits for is the first attempt's. In AWS the API uses IAM auth: requests are
SigV4-signed (service `execute-api`) with the task role's credentials from boto3's default chain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from callcore.models import CALL_SID_PATTERN

logger = logging.getLogger(__name__)

SIGV4_SERVICE = "execute-api"
_API_GATEWAY_HOST = re.compile(r"\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_DEFAULT_IN_PROGRESS_PAUSE = 2.0


class CallControlError(Exception):
    """A transfer or hang-up that did not happen. `status` is the HTTP status, or 0 when no answer came back."""

    def __init__(
        self, status: int, message: str, *, retryable: bool | None = None, in_progress_retry_after: float | None = None
    ) -> None:
        super().__init__(f"call control failed ({status or 'no response'}): {message}")
        self.status = status
        self.message = message
        # By default: no answer, throttling and server errors may pass; a 4xx will not change on a retry.
        self.retryable = status == 0 or status in _RETRYABLE_STATUSES if retryable is None else retryable
        # Set when the API says another attempt is still under way: seconds to wait before asking again.
        self.in_progress_retry_after = in_progress_retry_after


def sigv4_headers(method: str, url: str, body: bytes, credentials: Credentials, region: str) -> dict[str, str]:
    """The headers (Authorization, X-Amz-Date, X-Amz-Security-Token) that sign this exact request for API Gateway."""
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, SIGV4_SERVICE, region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def region_from_host(host: str) -> str | None:
    match = _API_GATEWAY_HOST.search(host)
    return match["region"] if match else None


class CallControlClient:
    def __init__(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        *,
        sign_with_sigv4: bool | None = None,
        region: str | None = None,
        attempts: int = 3,
        backoff_seconds: float = 0.2,
        # Longer than the Lambda's worst case (cold start, a secret read, DynamoDB, Twilio REST's own 5 s timeout), so
        # a slow first attempt is not retried while it still works; API Gateway itself gives up at 29 s.
        attempt_timeout_seconds: float = 12.0,
        # Longer than the transfer Lambda's claim lease (30 s): by then the attempt holding the transfer has finished,
        # or it died and its claim can be taken over by the next ask.
        in_progress_wait_seconds: float = 35.0,
        boto_session: boto3.session.Session | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("call control base URL must be a full http(s):// URL")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._http = http
        host = parts.hostname
        self.sign = host.endswith(".amazonaws.com") if sign_with_sigv4 is None else sign_with_sigv4
        self._boto_session = boto_session
        self.region = region or region_from_host(host)
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._timeout = aiohttp.ClientTimeout(total=attempt_timeout_seconds)
        self._in_progress_wait = in_progress_wait_seconds

    async def transfer(self, call_sid: str, *, reason: str, summary: str) -> dict[str, Any]:
        return await self._post(call_sid, "transfer", {"reason": reason, "summary": summary})

    async def hangup(self, call_sid: str, *, reason: str) -> dict[str, Any]:
        return await self._post(call_sid, "hangup", {"reason": reason})

    async def _post(self, call_sid: str, action: str, payload: Mapping[str, str]) -> dict[str, Any]:
        if not CALL_SID_PATTERN.match(call_sid):
            # It becomes part of the URL path: refuse anything that is not a Call SID.
            raise ValueError("not a Twilio Call SID")
        url = f"{self.base_url}/calls/{call_sid}/{action}"
        body = json.dumps(payload, separators=(",", ":")).encode()
        attempt = 1
        waited_in_progress = 0.0
        while True:
            try:
                return await self._attempt(url, body)
            except CallControlError as error:
                pause = error.in_progress_retry_after
                if pause is not None and waited_in_progress + pause <= self._in_progress_wait:
                    logger.info(
                        "call control %s for %s is in progress: asking again in %.1f s", action, call_sid, pause
                    )
                    waited_in_progress += pause
                    await asyncio.sleep(pause)
                    continue
                if not error.retryable or attempt >= self._attempts:
                    raise
                logger.warning(
                    "call control %s for %s failed (attempt %d/%d): %s",
                    action,
                    call_sid,
                    attempt,
                    self._attempts,
                    error.status or error.message,
                )
            # Full jitter: many calls failing at once (an API blip) should not retry in lockstep.
            await asyncio.sleep(random.uniform(0, self._backoff * 2 ** (attempt - 1)))  # noqa: S311
            attempt += 1

    async def _attempt(self, url: str, body: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.sign:
            headers.update(await self._signature(url, body))
        try:
            async with self._http.post(url, data=body, headers=headers, timeout=self._timeout) as response:
                text = await response.text()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise CallControlError(0, type(error).__name__) from None
        if 200 <= status < 300:
            return _json_object(text)
        in_progress = status == HTTPStatus.CONFLICT and _json_object(text).get("inProgress") is True
        raise CallControlError(
            status,
            _error_message(text, response.reason),
            in_progress_retry_after=_retry_after_seconds(retry_after) if in_progress else None,
        )

    async def _signature(self, url: str, body: bytes) -> dict[str, str]:
        # Resolving (and refreshing) the task role's credentials may call the ECS credentials endpoint: a thread.
        credentials, region = await asyncio.to_thread(self._credentials_and_region)
        return sigv4_headers("POST", url, body, credentials, region)

    def _credentials_and_region(self) -> tuple[Credentials, str]:
        if self._boto_session is None:
            self._boto_session = boto3.session.Session()
        region = self.region or self._boto_session.region_name
        if not region:
            raise CallControlError(0, "no AWS region to sign for (set AWS_REGION)", retryable=False)
        resolved = self._boto_session.get_credentials()
        # Frozen: a refreshing credential set must not rotate between reading the key and the token.
        frozen = resolved.get_frozen_credentials() if resolved is not None else None
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            raise CallControlError(0, "no AWS credentials to sign with", retryable=False)
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token), region


def _retry_after_seconds(header: str | None) -> float:
    """Retry-After in seconds (the API sends delta-seconds), kept within [0.5, 5] so a bad value neither spins nor
    stalls the call."""
    try:
        seconds = float(header) if header is not None else _DEFAULT_IN_PROGRESS_PAUSE
    except ValueError:
        seconds = _DEFAULT_IN_PROGRESS_PAUSE
    return min(max(seconds, 0.5), 5.0)


def _json_object(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {"result": value}


def _error_message(text: str, reason: str | None) -> str:
    body = _json_object(text)
    for key in ("message", "error", "Message"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value[:300]
    return reason or "error"
