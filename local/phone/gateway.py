"""Twilio's part of a call, with a browser as the phone.

Twilio's signalling is the project's own fake Twilio (`tests.fakes.twilio_media.FakeTwilioCall`: the signed upgrade,
`connected` / `start` with the stream token, sequenced `media` frames, `dtmf`, `stop`), so the relay cannot tell this
from Twilio. What differs is who plays the agent's audio: not a clock, but the browser. So a `mark` is echoed only
when the browser reports that the audio queued before it has played, and `clear` is passed on for the browser to
flush its playback buffer at once, with every mark still pending echoed then (as Twilio does).

Messages to the browser (`BrowserPlayedStream.to_browser`): `{"type": "media", "payload": base64 μ-law}`,
`{"type": "mark", "name"}`, `{"type": "clear"}`. From the browser: `browser_played(name, played_bytes)` and caller audio
through `send_audio`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from local.stack import LocalStack, parse_stream_twiml
from tests.fakes.twilio_media import FakeTwilioCall


class DialError(RuntimeError):
    """The call could not be placed or connected; the message says why, for the page."""


class BrowserPlayedStream(FakeTwilioCall):
    """One call's media stream from Twilio's side, played by the browser rather than on a clock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.to_browser: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._awaiting_playback: list[str] = []  # marks sent to the browser, in order, not yet echoed
        self.played_bytes = 0  # what the browser last reported as played

    def _on_media(self, data: dict[str, Any], now_ns: int) -> None:
        before = len(self.received_media)
        super()._on_media(data, now_ns)
        if len(self.received_media) > before:  # a valid, non-empty payload: the browser plays it
            self.to_browser.put_nowait({"type": "media", "payload": data["media"]["payload"]})

    def _on_mark(self, data: dict[str, Any], now_ns: int) -> None:
        name = self._received_mark(data)
        if name is None:
            return
        self._awaiting_playback.append(name)
        self.to_browser.put_nowait({"type": "mark", "name": name})

    async def _on_clear(self, now_ns: int) -> None:
        self.clears += 1
        self.timeline.clear(now_ns)
        self.to_browser.put_nowait({"type": "clear"})
        pending, self._awaiting_playback = self._awaiting_playback, []
        for name in pending:
            await self._echo(name, self.played_bytes, cleared=True)

    async def browser_played(self, name: str, played_bytes: int) -> None:
        """The browser has played everything queued before mark `name`: echo it (and any earlier one still
        pending, since marks play in order). A mark already echoed by a `clear` is ignored."""
        self.played_bytes = max(self.played_bytes, played_bytes)
        if name not in self._awaiting_playback:
            return
        upto = self._awaiting_playback.index(name) + 1
        echoed, self._awaiting_playback = self._awaiting_playback[:upto], self._awaiting_playback[upto:]
        for each in echoed:
            await self._echo(each, self.played_bytes, cleared=False)

    @property
    def marks_awaiting_playback(self) -> list[str]:
        return list(self._awaiting_playback)


@dataclass
class PlacedCall:
    call_sid: str
    direction: str  # "inbound" | "outbound"
    caller: str  # who is on the browser's side of the line
    agent_number: str
    stream: BrowserPlayedStream
    status_callback_route: str  # where Twilio posts this call's status changes


def _form(stack: LocalStack, **values: str) -> dict[str, str]:
    return {"AccountSid": stack.environment["TWILIO_ACCOUNT_SID"], "ApiVersion": "2010-04-01", **values}


def _route(stack: LocalStack, url: str) -> str:
    if not url.startswith(stack.api_base):
        raise DialError(f"the Lambda handed Twilio a URL outside the local API: {url}")
    return url.removeprefix(stack.api_base)


async def _open_stream(stack: LocalStack, call_sid: str, stream_url: str, token: str) -> BrowserPlayedStream:
    stream = stack.media_stream(call_sid, stream_url, token, kind=BrowserPlayedStream)
    try:
        await stream.connect()
    except aiohttp.ClientError as error:
        raise DialError(
            f"the relay is down: {stack.relay_media_url} did not accept the connection ({error})"
        ) from error
    if stream.handshake_status is not None:
        raise DialError(f"the relay refused the media stream (HTTP {stream.handshake_status})")
    return stream


async def dial_inbound(stack: LocalStack, *, caller: str) -> PlacedCall:
    """A call from the browser to the agent's number: the signed voice webhook, the TwiML read, the stream opened."""
    call_sid = "CA" + uuid.uuid4().hex
    try:
        stream_url, token = await stack.incoming_call(call_sid, caller=caller)
    except RuntimeError as error:
        raise DialError(str(error)) from error
    stream = await _open_stream(stack, call_sid, stream_url, token)
    return PlacedCall(call_sid, "inbound", caller, stack.options.agent_number, stream, "/twilio/status")


async def dial_outbound(stack: LocalStack, *, callee: str, context: str | None) -> PlacedCall:
    """The agent calls the browser: `POST /calls` on the local API, then Twilio's part once the callee answers:
    the call's `Url` requested (signed, with the CallSid), its TwiML read, the stream opened."""
    body: dict[str, str] = {"to": callee}
    if context:
        body["context"] = context
    async with stack.http.post(f"{stack.api_base}/calls", json=body) as response:
        text = await response.text()
        if response.status != 201:
            raise DialError(f"POST /calls answered {response.status}: {text}")
    call_sid = str(json.loads(text)["callSid"])
    create = next(
        (
            request
            for request in reversed(stack.network.requests)
            if request.method == "POST" and request.path.endswith("/Calls.json") and request.value("To") == callee
        ),
        None,
    )
    if create is None:
        raise DialError(f"POST /calls answered {call_sid} but Twilio was never asked to place it")
    answer_route = _route(stack, create.value("Url") or "")
    status_route = _route(stack, create.value("StatusCallback") or f"{stack.api_base}/twilio/status")
    agent_number = create.value("From") or stack.options.agent_number
    stack.network.calls[call_sid].status = "in-progress"
    form = _form(
        stack, CallSid=call_sid, CallStatus="in-progress", Direction="outbound-api", From=agent_number, To=callee
    )
    status, twiml = await stack.post_webhook(answer_route, form)
    if status != 200:
        raise DialError(f"the answer webhook answered {status}: {twiml}")
    try:
        stream_url, token = parse_stream_twiml(twiml)
    except RuntimeError as error:
        raise DialError(str(error)) from error
    await stack.post_webhook(status_route, {**form, "CallbackSource": "call-progress-events", "SequenceNumber": "0"})
    stream = await _open_stream(stack, call_sid, stream_url, token)
    return PlacedCall(call_sid, "outbound", callee, agent_number, stream, status_route)


async def call_completed(stack: LocalStack, call: PlacedCall, *, duration_seconds: int) -> None:
    """Twilio's final status callback for the call."""
    inbound = call.direction == "inbound"
    form = _form(
        stack,
        CallSid=call.call_sid,
        CallStatus="completed",
        Direction="inbound" if inbound else "outbound-api",
        From=call.caller if inbound else call.agent_number,
        To=call.agent_number if inbound else call.caller,
        CallbackSource="call-progress-events",
        SequenceNumber="1",
        CallDuration=str(duration_seconds),
    )
    await stack.post_webhook(call.status_callback_route, form)


def decode_frame(payload: str) -> bytes:
    """A caller frame from the browser: base64 μ-law, at most one 20 ms frame's worth."""
    audio = base64.b64decode(payload, validate=True)
    if len(audio) > 160:
        raise ValueError(f"a caller frame of {len(audio)} bytes (at most 160: 20 ms of 8 kHz μ-law)")
    return audio
