"""The Twilio Media Streams adapter: inbound JSON frames -> small typed objects (or a refusal with a close code),
outbound `media` / `mark` / `clear` frames built as strings.

Media payloads stay base64 strings end to end: the relay never decodes caller audio, it hands the very same payload
to the model.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import orjson
from aiohttp import web

# WebSocket close codes (RFC 6455) the relay uses towards Twilio.


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED = 1003  # a frame the protocol does not have (unknown event, binary, not JSON)
    POLICY = 1008  # refused: bad signature / token, frames out of order, a second stream for the call
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # draining: this task takes no new calls


class FrameRejected(Exception):
    """An inbound frame the relay will not accept; the stream is closed with `code`."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    media_encoding: str = "audio/x-mulaw"


@dataclass(slots=True)  # not frozen: one per 20 ms of caller audio, and a frozen one costs more to build
class Media:
    payload: str  # base64 pcmu, passed through untouched
    timestamp_ms: int | None


@dataclass(slots=True)
class MarkEcho:
    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str | None


InboundFrame = Connected | Start | Media | MarkEcho | Dtmf | Stop

_SUPPORTED_ENCODING = "audio/x-mulaw"


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise FrameRejected(CloseCode.POLICY, f"{data.get('event')} frame without a {key!r} object")
    return value


def parse_frame(text: str | bytes) -> InboundFrame:
    """Parse one text frame from Twilio. Raises FrameRejected for anything Twilio does not send."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameRejected(CloseCode.UNSUPPORTED, "frame is not JSON") from None
    if not isinstance(data, dict):
        raise FrameRejected(CloseCode.UNSUPPORTED, "frame is not a JSON object")
    event = data.get("event")
    if event == "media":
        media = _object(data, "media")
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise FrameRejected(CloseCode.POLICY, "media frame without a payload")
        timestamp = media.get("timestamp")
        # isdigit() alone also accepts digits int() refuses (e.g. "²"): ASCII only, so a frame never raises here.
        if isinstance(timestamp, str) and timestamp.isascii() and timestamp.isdigit():
            return Media(payload, int(timestamp))
        return Media(payload, None)
    if event == "mark":
        name = _object(data, "mark").get("name")
        if not isinstance(name, str):
            raise FrameRejected(CloseCode.POLICY, "mark frame without a name")
        return MarkEcho(name)
    if event == "start":
        return _parse_start(data)
    if event == "connected":
        return Connected(str(data.get("protocol", "")))
    if event == "stop":
        stop = data.get("stop")
        call_sid = stop.get("callSid") if isinstance(stop, dict) else None
        return Stop(call_sid if isinstance(call_sid, str) else None)
    if event == "dtmf":
        digit = _object(data, "dtmf").get("digit")
        return Dtmf(digit if isinstance(digit, str) else "")
    raise FrameRejected(CloseCode.UNSUPPORTED, f"unknown event {str(event)[:40]!r}")


def _parse_start(data: dict[str, Any]) -> Start:
    start = _object(data, "start")
    stream_sid = start.get("streamSid") or data.get("streamSid")
    call_sid = start.get("callSid")
    if not isinstance(stream_sid, str) or not isinstance(call_sid, str) or not stream_sid or not call_sid:
        raise FrameRejected(CloseCode.POLICY, "start frame without streamSid/callSid")
    params = start.get("customParameters") or {}
    if not isinstance(params, dict):
        raise FrameRejected(CloseCode.POLICY, "start.customParameters is not an object")
    media_format = start.get("mediaFormat") or {}
    encoding = media_format.get("encoding", _SUPPORTED_ENCODING) if isinstance(media_format, dict) else None
    if encoding != _SUPPORTED_ENCODING:
        raise FrameRejected(CloseCode.UNSUPPORTED, f"media encoding {encoding!r} is not audio/x-mulaw")
    return Start(
        stream_sid=stream_sid,
        call_sid=call_sid,
        account_sid=str(start.get("accountSid", "")),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        media_encoding=encoding,
    )


# ---- outbound frames (strings, built by hand: they are on the audio path) ------------------------------------------


def media_frame(stream_sid: str, payload_b64: str) -> str:
    # stream_sid comes from Twilio's validated start frame and base64 has no characters JSON must escape.
    return '{"event":"media","streamSid":"' + stream_sid + '","media":{"payload":"' + payload_b64 + '"}}'


def mark_frame(stream_sid: str, name: str) -> str:
    return orjson.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}).decode()


def clear_frame(stream_sid: str) -> str:
    return orjson.dumps({"event": "clear", "streamSid": stream_sid}).decode()


# ---- the socket ------------------------------------------------------------------------------------------------------


class TwilioSide:
    """One call's Twilio socket: guarded sends (False once it is closed), a close bounded by `close_timeout`."""

    def __init__(self, ws: web.WebSocketResponse, stream_sid: str, *, close_timeout: float) -> None:
        self.ws = ws
        self.stream_sid = stream_sid
        self._close_timeout = close_timeout

    async def send(self, frame: str) -> bool:
        if self.ws.closed:
            return False
        try:
            await self.ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            async with asyncio.timeout(self._close_timeout):
                await self.ws.close(code=code, message=reason.encode()[:120])
