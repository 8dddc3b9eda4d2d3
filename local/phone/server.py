"""The softphone's web server: the page (plain HTML, CSS and JavaScript modules, no build step) and one WebSocket per
page that carries the call: the browser's microphone frames and keypad in, the agent's audio, marks and `clear` out,
and the call as it is stored (each turn as the relay writes it, tools with their results, transfer and hang-up as
they happen, and the record's outcome at the end).

Page -> server: `dial` {direction: inbound|outbound, number, context?}, `media` {payload}, `played` {mark,
playedBytes}, `dtmf` {digit}, `hangup`. Server -> page: `dialing`, `connected` {callSid, direction}, `media`, `mark`,
`clear`, `turn` {...}, `line` {event: hangup|transfer}, `summary` {...}, `error` {message}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from callcore.masking import mask_phone
from callcore.models import TranscriptTurn, TurnRole
from local.phone.gateway import DialError, PlacedCall, call_completed, decode_frame, dial_inbound, dial_outbound
from local.stack import STREAM_END_AFTER_UPDATE_S, LocalStack

STATIC = Path(__file__).parent / "static"
TURN_POLL_S = 0.3
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
log = logging.getLogger("local.phone")


def turn_view(turn: TranscriptTurn, previous: TranscriptTurn | None) -> dict[str, Any]:
    """A stored turn as the page shows it; an agent turn answering the caller carries its latency (the caller's
    turn ended -> the agent's started)."""
    latency_ms = None
    if turn.role is TurnRole.AGENT and previous is not None and previous.role is TurnRole.CALLER:
        latency_ms = max(0, round((turn.started_at - previous.ended_at).total_seconds() * 1000))
    return {
        "type": "turn",
        "index": turn.index,
        "role": turn.role.value,
        "text": turn.text,
        "interrupted": turn.interrupted,
        "heardMs": turn.heard_ms,
        "latencyMs": latency_ms,
        "tools": [
            {"name": t.name, "arguments": t.arguments, "result": t.result, "ok": t.ok, "durationMs": t.duration_ms}
            for t in turn.tool_calls
        ],
    }


class PhoneSession:
    """One page's phone: at most one call at a time."""

    def __init__(self, stack: LocalStack, ws: web.WebSocketResponse) -> None:
        self.stack = stack
        self.ws = ws
        self.call: PlacedCall | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._turns_sent = 0
        self._started = 0.0
        self._ending: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_json(message)

    async def error(self, message: str) -> None:
        await self.send({"type": "error", "message": message})

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        call = self.call
        if kind == "dial":
            await self.dial(message)
        elif call is None or self._ending is not None:
            return  # audio or keys after the call ended: nowhere to go
        elif kind == "media":
            if not call.stream.closed.is_set():
                await call.stream.send_audio(decode_frame(str(message.get("payload", ""))), realtime=False)
        elif kind == "played":
            await call.stream.browser_played(str(message.get("mark", "")), int(message.get("playedBytes", 0)))
        elif kind == "dtmf":
            digit = str(message.get("digit", ""))
            if not call.stream.closed.is_set():
                await call.stream.send_dtmf(digit)
        elif kind == "hangup":
            self.end("caller")
        else:
            await self.error(f"unknown message {kind!r}")

    async def dial(self, message: dict[str, Any]) -> None:
        if self.call is not None:
            await self.error("a call is already in progress: hang up first")
            return
        direction = message.get("direction")
        number = str(message.get("number", "")).strip()
        if not E164.match(number):
            await self.error(f"{number or 'the number'} is not an E.164 phone number (like +15550100123)")
            return
        await self.send({"type": "dialing", "direction": direction})
        try:
            if direction == "outbound":
                context = str(message.get("context") or "").strip() or None
                self.call = await dial_outbound(self.stack, callee=number, context=context)
            else:
                self.call = await dial_inbound(self.stack, caller=number)
        except DialError as error:
            await self.error(str(error))
            return
        self._started = time.monotonic()
        self._turns_sent = 0
        self._ending = None
        call = self.call
        log.info("call %s connected (%s, %s)", call.call_sid, call.direction, mask_phone(number))
        await self.send({"type": "connected", "callSid": call.call_sid, "direction": call.direction})
        self._tasks = [
            asyncio.create_task(self._to_browser(call), name="phone-to-browser"),
            asyncio.create_task(self._watch_turns(call), name="phone-turns"),
            asyncio.create_task(self._watch_line(call), name="phone-line"),
        ]

    def end(self, ended_by: str) -> None:
        if self._ending is None and self.call is not None:
            self._ending = asyncio.create_task(self._finish(self.call, ended_by), name="phone-finish")

    async def _to_browser(self, call: PlacedCall) -> None:
        while True:
            await self.send(await call.stream.to_browser.get())

    async def _watch_turns(self, call: PlacedCall) -> None:
        while True:
            await self._send_new_turns(call)
            await asyncio.sleep(TURN_POLL_S)

    async def _send_new_turns(self, call: PlacedCall) -> None:
        turns = await asyncio.to_thread(self.stack.store.list_turns, call.call_sid)
        for position in range(self._turns_sent, len(turns)):
            previous = turns[position - 1] if position else None
            await self.send(turn_view(turns[position], previous))
        self._turns_sent = max(self._turns_sent, len(turns))

    async def _watch_line(self, call: PlacedCall) -> None:
        """The agent hangs up or transfers (Twilio's REST API is told, and ends the stream), or the relay closes."""
        ended = asyncio.create_task(self.stack.network.wait_ended(call.call_sid))
        closed = asyncio.create_task(call.stream.closed.wait())
        try:
            await asyncio.wait({ended, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not ended.done():
                # The relay may close its socket right after asking Twilio to hang up or transfer, before Twilio
                # (here, a moment after its REST answer) tears the stream down: which one it was comes just after.
                await asyncio.wait({ended}, timeout=2 * STREAM_END_AFTER_UPDATE_S)
        finally:
            ended.cancel()
            closed.cancel()
        if ended.done() and not ended.cancelled():
            event = ended.result()
            await self.send({"type": "line", "event": event})
            self.end(event)
        else:
            self.end("relay")

    async def _finish(self, call: PlacedCall, ended_by: str) -> None:
        try:
            if not call.stream.closed.is_set():
                await call.stream.stop()
            fake_call = self.stack.network.calls.get(call.call_sid)
            if fake_call is not None and fake_call.status == "in-progress":
                self.stack.network.end_call(call.call_sid)
            duration = max(1, round(time.monotonic() - self._started))
            await call_completed(self.stack, call, duration_seconds=duration)
            from relay.app import STATE  # noqa: PLC0415 - imported with the stack's environment

            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.stack.relay_app[STATE].idle.wait()
            await self._send_new_turns(call)
            await self.send(self._summary(call, ended_by))
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await call.stream.close()
            self.call = None

    def _summary(self, call: PlacedCall, ended_by: str) -> dict[str, Any]:
        record = self.stack.store.require_call(call.call_sid)
        return {
            "type": "summary",
            "callSid": record.call_sid,
            "direction": record.direction.value,
            "status": record.status.value,
            "outcome": record.outcome.value if record.outcome else None,
            "endedBy": ended_by,
            "durationSeconds": record.duration_seconds,
            "turns": record.turn_count,
            "tools": record.tool_call_count,
            "bargeIns": record.barge_in_count,
            "greetingMs": record.latencies.greeting_ms,
            "turnP50Ms": record.latencies.turn_p50_ms,
            "transferTarget": mask_phone(record.transfer_target) if record.transfer_target else None,
            "transcriptKey": record.transcript_key,
            "marksEchoed": len(call.stream.marks_echoed),
            "clears": call.stream.clears,
        }

    async def close(self) -> None:
        self.end("caller")
        if self._ending is not None:
            await self._ending


def create_phone_app(stack: LocalStack, *, model_description: str, profile: str) -> web.Application:
    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def config(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "model": stack.model_kind,
                "modelDescription": model_description,
                "profile": profile,
                "businessName": stack.options.business_name,
                "agentNumber": stack.options.agent_number,
                "callerNumber": "+15550100123",
            }
        )

    async def phone(request: web.Request) -> web.WebSocketResponse:
        # Only this page may drive the phone: a page of another origin open in the same browser must not.
        if request.headers.get("Origin") != f"http://{request.host}":
            raise web.HTTPForbidden(text="the softphone's socket is for its own page only")
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=64 * 1024)
        await ws.prepare(request)
        session = PhoneSession(stack, ws)
        pages.add(ws)
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(message.data)
                    await session.handle(data if isinstance(data, dict) else {})
                except (ValueError, TypeError) as error:
                    await session.error(f"bad message from the page: {error}")
        finally:
            pages.discard(ws)
            await session.close()
        return ws

    async def close_pages(_: web.Application) -> None:
        """On shutdown: each page's call ends as a hang-up would, and the page is told the server is going."""
        for ws in list(pages):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the softphone server is stopping")

    pages: set[web.WebSocketResponse] = set()
    app = web.Application()
    app.on_shutdown.append(close_pages)
    app.router.add_get("/", index)
    app.router.add_get("/config", config)
    app.router.add_get("/phone", phone)
    app.router.add_static("/static", STATIC)
    return app
