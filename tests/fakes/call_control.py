"""A stand-in for the call-control API (`POST /calls/{callSid}/transfer` and `/hangup`) that the relay calls.

It keeps the contract's rules so a relay that misuses the API fails: JSON bodies with the right fields (400
otherwise), a well-formed CallSid (400), unknown calls 404 when `known_calls` is set, a call that ended cannot be
transferred (409), and repeats of the same action are idempotent (200, same answer). Tests can override the status,
body and latency of either action.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from callcore.models import CALL_SID_PATTERN

Action = Literal["transfer", "hangup"]
_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {"transfer": ("reason", "summary"), "hangup": ("reason",)}
_RESULT_STATUS = {"transfer": "transferring", "hangup": "completed"}


@dataclass
class ResponseOverride:
    status: int = 200
    body: dict[str, Any] | None = None  # None: the default body for `status`
    delay: float = 0.0
    times: int | None = None  # None: every request until reset


class FakeCallControl:
    """`url` is the relay's CALL_CONTROL_URL; `requests` lists (action, call_sid, json body) in arrival order."""

    def __init__(self, *, known_calls: set[str] | None = None) -> None:
        self.known_calls = known_calls  # None: every well-formed CallSid exists
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []  # the headers of each request, same order as `requests`
        self.violations: list[str] = []
        self.call_states: dict[str, str] = {}  # call_sid -> "transferring" | "completed"
        self.overrides: dict[str, ResponseOverride] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> FakeCallControl:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/calls/{call_sid}/transfer", self._transfer)
        app.router.add_post("/calls/{call_sid}/hangup", self._hangup)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def set_response(
        self,
        action: Action,
        *,
        status: int = 200,
        body: dict[str, Any] | None = None,
        delay: float = 0.0,
        times: int | None = None,
    ) -> None:
        """Answer `action` with `status` (and `body`) after `delay` seconds, for `times` requests (None: all)."""
        self.overrides[action] = ResponseOverride(status=status, body=body, delay=delay, times=times)

    def reset_responses(self) -> None:
        self.overrides.clear()

    def calls_for(self, action: str) -> list[tuple[str, dict[str, Any]]]:
        return [(call_sid, body) for kind, call_sid, body in self.requests if kind == action]

    async def wait_for(
        self,
        action: str,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        nth: int = 1,
    ) -> tuple[str, dict[str, Any]]:
        """The `nth` `action` request (already received or still to come): (call_sid, body)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls_for(action)
            if len(found) >= nth:
                return found[nth - 1]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for a {action} request")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def _transfer(self, request: web.Request) -> web.Response:
        return await self._handle("transfer", request)

    async def _hangup(self, request: web.Request) -> web.Response:
        return await self._handle("hangup", request)

    async def _handle(self, action: Action, request: web.Request) -> web.Response:
        call_sid = request.match_info["call_sid"]
        raw = await request.text()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append((action, call_sid, body if isinstance(body, dict) else {"_raw": raw}))
        self.headers.append(dict(request.headers))
        self._arrived.set()
        override = self._take_override(action)
        if override is not None:
            if override.delay:
                await asyncio.sleep(override.delay)
            return web.json_response(
                override.body or self._default_body(action, override.status, call_sid), status=override.status
            )
        return self._apply(action, call_sid, body, request)

    def _take_override(self, action: str) -> ResponseOverride | None:
        override = self.overrides.get(action)
        if override is None:
            return None
        if override.times is not None:
            override.times -= 1
            if override.times <= 0:
                del self.overrides[action]
        return override

    def _apply(self, action: Action, call_sid: str, body: Any, request: web.Request) -> web.Response:
        error = self._input_error(action, call_sid, body, request)
        if error is not None:
            self.violations.append(f"{action} {call_sid}: {error}")
            return web.json_response({"message": error}, status=400)
        if self.known_calls is not None and call_sid not in self.known_calls:
            return web.json_response({"message": f"call {call_sid} not found"}, status=404)
        state = self.call_states.get(call_sid)
        if state == "completed" and action == "transfer":
            return web.json_response({"message": f"call {call_sid} already ended"}, status=409)
        self.call_states[call_sid] = _RESULT_STATUS[action]
        return web.json_response({"callSid": call_sid, "status": _RESULT_STATUS[action]})

    @staticmethod
    def _input_error(action: Action, call_sid: str, body: Any, request: web.Request) -> str | None:
        if not CALL_SID_PATTERN.match(call_sid):
            return f"malformed CallSid {call_sid!r}"
        if not request.content_type.startswith("application/json"):
            return f"Content-Type must be application/json, got {request.content_type!r}"
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        for name in _REQUIRED_FIELDS[action]:
            value = body.get(name)
            if not isinstance(value, str) or not value.strip():
                return f"'{name}' must be a non-empty string"
        return None

    @staticmethod
    def _default_body(action: Action, status: int, call_sid: str) -> dict[str, Any]:
        if status == 200:
            return {"callSid": call_sid, "status": _RESULT_STATUS[action]}
        return {"message": f"fake call-control error {status}"}
