"""A fake OpenAI Realtime (GA) server on a real loopback WebSocket.

It answers the way the real service does and refuses what the real service refuses, so a relay that drifts from the
protocol fails its tests instead of passing against a yes-man:

- every client event is checked against `openai.types.realtime.RealtimeClientEvent` (the SDK's GA definition), and
  unknown fields are refused like the service does ("Unknown parameter"), which is what rejects beta-only fields;
- every event this fake sends is checked against `RealtimeServerEvent` first, so the fake itself cannot drift;
- the stateful rules are enforced: one active response per conversation, cancel only an active response, truncate
  only assistant audio that was actually sent, function outputs only for known calls, voice fixed after audio.

Model behaviour is scripted: `script()` queues what the next `response.create` says (audio + transcript, a tool
call, or audio then a tool call in one response). Caller speech is either driven by the test (`speech_started` /
`speech_stopped`) or detected from the appended μ-law by an energy VAD (`vad=True`). Timing the real service has and a
loopback socket lacks is opt-in: `interrupt_lag_chunks` (audio deltas still in flight after an interruption) and
`before_next()` (a server event crossing a client event on the wire).

Sessions end as the service ends them: a session older than `session_max_seconds` (60 minutes by default, settable
for tests) gets `error` session_expired and is closed with 1001, whatever the client is doing. `refuse_sessions`
makes every new upgrade fail the way an outage does (HTTP 503), for reconnect tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, get_args

from aiohttp import WSMessage, WSMsgType, web
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, TypeAdapter, ValidationError

from local.voice_model.protocol import (
    INPUT_AUDIO_TOKENS_PER_SECOND,
    OUTPUT_AUDIO_TOKENS_PER_SECOND,
    SESSION_MAX_SECONDS,
    default_session,
    merge_session,
    new_id,
)
from local.voice_model.protocol import audio_tokens as _audio_tokens
from local.voice_model.protocol import split_words as _split_words
from local.voice_model.protocol import text_tokens as _text_tokens
from tests.fakes.audio import BYTES_PER_MS, rms
from tests.fakes.signal import Signal

REALTIME_PATH = "/v1/realtime"
DEFAULT_MODEL = "gpt-realtime"
DEFAULT_CALLER_TRANSCRIPT = "(caller speech)"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

PROMPT_CACHE_MIN_TOKENS = 1024

# A commit needs at least this much buffered audio (the service's "buffer too small" rule).
MIN_COMMIT_MS = 100

# Fields the service puts in its session object that the SDK's request model does not declare.
_SERVER_ONLY_SESSION_FIELDS = frozenset({"session.id", "session.object", "session.expires_at"})


# ---- scripted model behaviour ---------------------------------------------------------------------------------------


@dataclass
class AudioResponse:
    """The model says something: raw μ-law (pcmu) bytes, 8 bytes = 1 ms, and what it said. With `then_call`, the same
    response goes on to call a tool after speaking (a second output item), as models do ("Let me check that.")."""

    audio: bytes
    transcript: str
    then_call: FunctionCallResponse | None = None


@dataclass
class FunctionCallResponse:
    """The model calls a tool."""

    name: str
    arguments: dict[str, Any] | str
    call_id: str | None = None  # generated when None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


ScriptedResponse = AudioResponse | FunctionCallResponse


# ---- protocol validation --------------------------------------------------------------------------------------------


class RealtimeProtocolError(Exception):
    """A client event the real service refuses, with the `error` it answers."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None,
        param: str | None = None,
        error_type: str = "invalid_request_error",
        violation: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type
        # False for an error a correct client can still run into (events crossing on the wire): answered, not blamed.
        self.violation = violation


class FakeDriftError(AssertionError):
    """The fake tried to send an event that is not a valid GA server event: a bug in the fake or in a test."""


def _models_by_type(union: Any) -> dict[str, type[BaseModel]]:
    members: tuple[type[BaseModel], ...] = get_args(get_args(union)[0])
    return {get_args(member.model_fields["type"].annotation)[0]: member for member in members}


_CLIENT_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(RealtimeClientEvent)
_SERVER_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
CLIENT_EVENT_MODELS = _models_by_type(RealtimeClientEvent)
SERVER_EVENT_MODELS = _models_by_type(RealtimeServerEvent)
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _unknown_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths of every field the SDK models do not declare (they accept extras; the service does not)."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found.extend(f"{path}.{name}".lstrip(".") for name in value.model_extra or {})
        for name in type(value).model_fields:
            found.extend(_unknown_fields(getattr(value, name), f"{path}.{name}"))
    elif isinstance(value, list):
        for index, element in enumerate(value):
            found.extend(_unknown_fields(element, f"{path}[{index}]"))
    return found


def _param_path(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as the service names parameters: union member tags dropped, indexes bracketed."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _FIELD_NAME.match(part):
            path += f".{part}" if path else part
    return path


def _protocol_error_from(exc: ValidationError) -> RealtimeProtocolError:
    first = exc.errors()[0]
    param = _param_path(tuple(first["loc"]))
    if first["type"] == "missing":
        return RealtimeProtocolError(
            f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
        )
    return RealtimeProtocolError(f"Invalid value for '{param}': {first['msg']}.", code="invalid_value", param=param)


def parse_client_event(text: str) -> tuple[dict[str, Any], BaseModel]:
    """A client frame -> (the JSON object, the SDK model), or the RealtimeProtocolError the service would answer."""
    try:
        data = json.loads(text)
    except ValueError:
        raise RealtimeProtocolError(
            "We could not parse the JSON body of your request. Please send valid JSON.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise RealtimeProtocolError("Expected a JSON object as the event.", code="invalid_json")
    event_type = data.get("type")
    if not isinstance(event_type, str):
        raise RealtimeProtocolError(
            "Missing required parameter: 'type'.", code="missing_required_parameter", param="type"
        )
    model = CLIENT_EVENT_MODELS.get(event_type)
    if model is None:
        supported = ", ".join(f"'{name}'" for name in sorted(CLIENT_EVENT_MODELS))
        raise RealtimeProtocolError(
            f"Invalid value: '{event_type}'. Supported values are: {supported}.", code="invalid_value", param="type"
        )
    try:
        model.model_validate(data)  # the focused model gives the precise parameter in the message
        parsed = _CLIENT_EVENT_ADAPTER.validate_python(data)  # the SDK's union is the definition of a client event
    except ValidationError as exc:
        raise _protocol_error_from(exc) from None
    unknown = _unknown_fields(parsed)
    if unknown:
        raise RealtimeProtocolError(f"Unknown parameter: '{unknown[0]}'.", code="unknown_parameter", param=unknown[0])
    return data, parsed


def validate_server_event(event: dict[str, Any]) -> None:
    """Raises FakeDriftError unless `event` is a GA server event with no field the SDK does not know."""
    try:
        parsed = _SERVER_EVENT_ADAPTER.validate_python(event)
    except ValidationError as exc:
        raise FakeDriftError(f"not a valid RealtimeServerEvent: {event.get('type')!r}: {exc}") from None
    unknown = [name for name in _unknown_fields(parsed) if name not in _SERVER_ONLY_SESSION_FIELDS]
    if unknown:
        raise FakeDriftError(f"{event.get('type')!r} carries fields the GA types do not define: {unknown}")


# ---- helpers --------------------------------------------------------------------------------------------------------


def created_items(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What a client put into the conversation with `conversation.item.create`, in order: (role, text) of a message,
    ("function_call", name), ("function_call_output", call_id)."""
    items = []
    for event in events:
        if event.get("type") != "conversation.item.create":
            continue
        item = event["item"]
        if item["type"] == "message":
            items.append((item["role"], item["content"][0]["text"]))
        elif item["type"] == "function_call":
            items.append(("function_call", item["name"]))
        else:
            items.append(("function_call_output", item["call_id"]))
    return items


# ---- energy VAD -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["started", "stopped"]
    audio_ms: int  # audio_start_ms (prefix padding included) or audio_end_ms (silence included), as the service does


class EnergyVad:
    """Speech = 10 ms frames whose RMS is at least `rms_threshold` for at least `min_speech_ms` in a row; it ends after
    `silence_duration_ms` of quieter frames. Positions count the bytes received, never the wall clock."""

    FRAME_MS = 10
    FRAME_BYTES = FRAME_MS * BYTES_PER_MS

    def __init__(self, *, rms_threshold: float = 500.0, min_speech_ms: int = 100) -> None:
        self.rms_threshold = rms_threshold
        self.min_speech_ms = min_speech_ms
        self.speaking = False
        self._pending = b""
        self._position_ms = 0
        self._loud_since_ms: int | None = None
        self._silence_ms = 0

    def reset(self, position_ms: int) -> None:
        self.speaking = False
        self._pending = b""
        self._position_ms = position_ms
        self._loud_since_ms = None
        self._silence_ms = 0

    def feed(self, audio: bytes, *, silence_duration_ms: int, prefix_padding_ms: int) -> list[VadEvent]:
        data = self._pending + audio
        usable = len(data) - len(data) % self.FRAME_BYTES
        self._pending = data[usable:]
        events: list[VadEvent] = []
        for offset in range(0, usable, self.FRAME_BYTES):
            loud = rms(data[offset : offset + self.FRAME_BYTES]) >= self.rms_threshold
            frame_start = self._position_ms
            self._position_ms += self.FRAME_MS
            if not self.speaking:
                if not loud:
                    self._loud_since_ms = None
                    continue
                if self._loud_since_ms is None:
                    self._loud_since_ms = frame_start
                if self._position_ms - self._loud_since_ms >= self.min_speech_ms:
                    self.speaking = True
                    self._silence_ms = 0
                    events.append(VadEvent("started", max(0, self._loud_since_ms - prefix_padding_ms)))
            elif loud:
                self._silence_ms = 0
            else:
                self._silence_ms += self.FRAME_MS
                if self._silence_ms >= silence_duration_ms:
                    self.speaking = False
                    self._loud_since_ms = None
                    events.append(VadEvent("stopped", self._position_ms))
        return events


# ---- responses ------------------------------------------------------------------------------------------------------


class _Cancelled(Exception):
    """Unwinds a response runner at its next send once the response was cancelled."""


@dataclass
class _Response:
    id: str
    in_conversation: bool
    metadata: dict[str, str] | None
    input_tokens: dict[str, int]
    record: dict[str, Any]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    cancelled: bool = False
    cancel_reason: str = "client_cancelled"
    output: list[dict[str, Any]] = field(default_factory=list)
    item: dict[str, Any] | None = None  # the item being produced
    output_index: int = -1  # of `item` in the response's output
    by_turn_detection: bool = False  # started by the server's VAD, not by a client response.create
    cancel_after_chunks: int | None = None  # interrupted, with this many audio chunks still in flight
    audio_bytes_sent: int = 0
    transcript_sent: str = ""
    sent_types: set[str] = field(default_factory=set)  # event types already sent for the current item


class FakeRealtimeSession:
    """One accepted connection: its own conversation, audio buffer, config and response state."""

    def __init__(
        self, server: FakeRealtimeServer, index: int, ws: web.WebSocketResponse, request: web.Request, model: str
    ) -> None:
        self.server = server
        self.index = index
        self.model = model
        self.id = new_id("sess")
        self.conversation_id = new_id("conv")
        self.events: list[dict[str, Any]] = []
        self.sent_events: list[dict[str, Any]] = []
        self.config: dict[str, Any] = self._default_config()
        self.input_audio = bytearray()
        self.items: list[dict[str, Any]] = []
        self.truncations: list[dict[str, Any]] = []
        self.errors_sent: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.responses: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.expired_by_age = False  # the session reached the server's session_max_seconds
        self._ws = ws
        self._request = request
        self._send_lock = asyncio.Lock()
        self._changed = Signal()
        self._script: deque[ScriptedResponse] = deque()
        self._active: _Response | None = None  # the default conversation's in-progress response
        self._running: list[_Response] = []  # every in-progress response, out-of-band ones included
        self._buffer_start = 0  # input_audio offset where the uncommitted buffer starts
        self._speech_item_id: str | None = None
        self._speech_start_ms: int | None = None
        self._assistant_audio_sent = False
        self._warned: set[str] = set()
        self._vad = EnergyVad(rms_threshold=server.vad_rms_threshold)
        self._before: dict[str, deque[Callable[[], Awaitable[None]]]] = {}

    # -- public, for tests --

    def script(self, *responses: ScriptedResponse) -> None:
        """Queue responses for this session only; they go before the server-wide queue."""
        self._script.extend(responses)

    def before_next(self, event_type: str, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` (e.g. the server's turn detection starting a response) at the moment the next client event of
        `event_type` arrives, before it is handled: how a test makes server and client events cross on the wire."""
        self._before.setdefault(event_type, deque()).append(action)

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.config["audio"]["input"].get("turn_detection")
        return value

    @property
    def active_response_id(self) -> str | None:
        return self._active.id if self._active else None

    def input_audio_ms(self) -> int:
        return len(self.input_audio) // BYTES_PER_MS

    async def wait_for_event(
        self,
        type: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - the fakes' API: a bound on every wait
        *,
        nth: int = 1,
    ) -> dict[str, Any]:
        """The `nth` client event of `type` (matching `predicate`), already received or still to come."""

        def find() -> dict[str, Any] | None:
            matches = [e for e in self.events if e.get("type") == type and (predicate is None or predicate(e))]
            return matches[nth - 1] if len(matches) >= nth else None

        result: dict[str, Any] = await self._changed.wait_until(find, timeout, f"client event {type!r} #{nth}")
        return result

    async def wait_for_response_done(self, timeout: float = 5.0, *, nth: int = 1) -> dict[str, Any]:  # noqa: ASYNC109
        """The `nth` `response.done` this fake sent (a convenience for tests)."""

        def find() -> dict[str, Any] | None:
            done = [e for e in self.sent_events if e["type"] == "response.done"]
            return done[nth - 1] if len(done) >= nth else None

        result: dict[str, Any] = await self._changed.wait_until(find, timeout, f"response.done #{nth}")
        return result

    async def wait_for_input_audio(self, min_bytes: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self._changed.wait_until(
            lambda: len(self.input_audio) >= min_bytes, timeout, f"{min_bytes} bytes of input audio"
        )

    async def speech_started(self, audio_start_ms: int | None = None) -> None:
        """The service heard the caller start speaking (and, by default, interrupts the model)."""
        turn_detection = self._require_turn_detection("speech_started")
        start_ms = self.input_audio_ms() if audio_start_ms is None else audio_start_ms
        self._speech_item_id = new_id("item")
        self._speech_start_ms = start_ms
        await self._send(
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": start_ms, "item_id": self._speech_item_id}
        )
        if turn_detection.get("interrupt_response", True) and self._active is not None:
            lag = self.server.interrupt_lag_chunks
            if lag and self._active.item is not None and self._active.item.get("audio_part"):
                # Deltas the service had already sent when it processed the interruption still reach the client.
                self._active.cancel_reason = "turn_detected"
                self._active.cancel_after_chunks = lag
            else:
                await self._cancel(self._active, reason="turn_detected")

    async def speech_stopped(self, transcript: str | None = None, *, audio_end_ms: int | None = None) -> None:
        """The caller stopped: commit their turn, transcribe it, and (by default) start the model's answer.

        `transcript` None takes the next of `server.caller_transcripts`, else "(caller speech)".
        """
        turn_detection = self._require_turn_detection("speech_stopped")
        item_id = self._speech_item_id or new_id("item")
        end_ms = self.input_audio_ms() if audio_end_ms is None else audio_end_ms
        start_ms = self._speech_start_ms if self._speech_start_ms is not None else self._buffer_start // BYTES_PER_MS
        self._speech_item_id = None
        self._speech_start_ms = None
        await self._send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms, "item_id": item_id})
        item = await self._commit_user_turn(item_id, start_ms=start_ms, end_ms=end_ms)
        if turn_detection.get("create_response", True) and self._active is None:
            await self._start_response({}, in_conversation=True, by_turn_detection=True)
        await self._send_transcription(item, transcript)

    async def send(self, event: dict[str, Any]) -> None:
        """Send any server event (validated as a GA RealtimeServerEvent first; `event_id` added when missing)."""
        await self._send(event)

    async def send_raw(self, data: str) -> None:
        """Send a frame as is, unvalidated: for tests of how the relay survives a malformed server frame."""
        async with self._send_lock:
            await self._ws.send_str(data)

    async def expire(self) -> None:
        """The 60-minute limit: `error` session_expired, then a 1001 close, as the service does."""
        await self._send_error(
            "Your session hit the maximum duration of 60 minutes.", code="session_expired", violation=False
        )
        self._stop_responses()
        await self._ws.close(code=1001, message=b"session expired")
        self.close_code = 1001

    async def _expire_at_age(self) -> None:
        await asyncio.sleep(self.server.session_max_seconds)
        if not self._ws.closed:
            self.expired_by_age = True
            await self.expire()

    async def drop(self) -> None:
        """The connection dies: no close frame, the TCP socket is aborted."""
        self._stop_responses()
        transport = self._request.transport
        if transport is not None:
            transport.abort()
        self.close_code = 1006

    # -- connection loop --

    async def run(self) -> None:
        await self._send({"type": "session.created", "session": self.config})
        # The service's hard limit: the session expires at its age limit, mid-response or not.
        expiry = asyncio.create_task(self._expire_at_age(), name=f"fake-realtime-expiry-{self.id}")
        try:
            async for message in self._ws:
                await self._on_message(message)
        except Exception as exc:
            # A bug in the fake (or an invalid event a test asked it to send) must fail the test, not vanish.
            self._violation(f"FAKE ERROR: {type(exc).__name__}: {exc}")
            raise
        finally:
            if not self.expired_by_age:  # else the expiry itself is closing the socket: let it finish
                expiry.cancel()
            self._stop_responses()
            if self.close_code is None:
                self.close_code = self._ws.close_code if self._ws.close_code is not None else 1006
            self.closed.set()
            self._changed.notify()

    async def _on_message(self, message: WSMessage) -> None:
        if message.type == WSMsgType.TEXT:
            await self._on_text(message.data)
        elif message.type == WSMsgType.BINARY:
            self.events.append({"type": None, "binary": bytes(message.data)})
            self._changed.notify()
            await self._send_error("Binary frames are not supported; send JSON text.", code="invalid_json")

    async def close(self, code: int = 1001) -> None:
        self._stop_responses()
        await self._ws.close(code=code)
        if self.close_code is None:
            self.close_code = code

    def _stop_responses(self) -> None:
        """Silently stops every runner: the socket is going away, nothing more is sent."""
        for response in self._running:
            if response.task is not None:
                response.task.cancel()
        self._running.clear()
        self._active = None

    async def _on_text(self, text: str) -> None:
        try:
            raw: Any = json.loads(text)
        except ValueError:
            raw = None
        self.events.append(raw if isinstance(raw, dict) else {"type": None, "text": text})
        self._changed.notify()
        client_event_id = raw.get("event_id") if isinstance(raw, dict) else None
        try:
            data, _ = parse_client_event(text)
            hooks = self._before.get(data["type"])
            if hooks:
                await hooks.popleft()()
            await self._dispatch(data)
        except RealtimeProtocolError as exc:
            await self._send_error(
                exc.message,
                code=exc.code,
                param=exc.param,
                event_id=client_event_id if isinstance(client_event_id, str) else None,
                error_type=exc.error_type,
                violation=exc.violation,
                context=raw.get("type") if isinstance(raw, dict) else None,
            )
        self._changed.notify()

    async def _dispatch(self, data: dict[str, Any]) -> None:
        handlers = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
            "conversation.item.create": self._on_item_create,
            "conversation.item.truncate": self._on_truncate,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.retrieve": self._on_item_retrieve,
            "output_audio_buffer.clear": self._on_output_audio_buffer_clear,
        }
        await handlers[data["type"]](data)

    # -- sending --

    async def _send(self, event: dict[str, Any], *, unless_cancelled: _Response | None = None) -> bool:
        event = {"event_id": new_id("event"), **event}
        validate_server_event(event)
        async with self._send_lock:
            if unless_cancelled is not None and unless_cancelled.cancelled:
                raise _Cancelled
            if self._ws.closed:
                return False
            try:
                await self._ws.send_str(json.dumps(event))
            except (ConnectionError, RuntimeError):
                return False
            self.sent_events.append(event)
        self._changed.notify()
        return True

    async def _send_error(
        self,
        message: str,
        *,
        code: str | None,
        param: str | None = None,
        event_id: str | None = None,
        error_type: str = "invalid_request_error",
        violation: bool = True,
        context: str | None = None,
    ) -> None:
        error = {"type": error_type, "code": code, "message": message, "param": param, "event_id": event_id}
        event = {"type": "error", "event_id": new_id("event"), "error": error}
        self.errors_sent.append(event)
        if violation:
            self._violation(f"{context or 'frame'}: {message} ({code})")
        await self._send(event)

    def _violation(self, text: str) -> None:
        entry = f"session {self.index}: {text}"
        self.violations.append(entry)
        self.server.violations.append(entry)

    def _warn_once(self, key: str, text: str) -> None:
        """A misuse the service would not answer with an error, but that breaks the call (e.g. wrong audio format)."""
        if key not in self._warned:
            self._warned.add(key)
            self._violation(text)

    # -- session --

    def _default_config(self) -> dict[str, Any]:
        # The service's own session object, with the expiry this fake enforces (`session_max_seconds`).
        return {
            **default_session(self.id, self.model),
            "expires_at": int(time.time() + self.server.session_max_seconds),
        }

    async def _on_session_update(self, data: dict[str, Any]) -> None:
        update: dict[str, Any] = data["session"]
        if update.get("type") != "realtime":
            raise RealtimeProtocolError(
                "Cannot change the session type of a realtime session.", code="invalid_value", param="session.type"
            )
        if "model" in update and update["model"] != self.config["model"]:
            raise RealtimeProtocolError(
                "The session model cannot be changed once the session is created.",
                code="invalid_value",
                param="session.model",
            )
        voice = update.get("audio", {}).get("output", {}).get("voice")
        if voice is not None and voice != self.config["audio"]["output"]["voice"] and self._assistant_audio_sent:
            raise RealtimeProtocolError(
                "Cannot update a conversation's voice if assistant audio is present.",
                code="cannot_update_voice",
                param="session.audio.output.voice",
            )
        self.config = merge_session(self.config, update)
        await self._send({"type": "session.updated", "session": self.config})

    def _require_turn_detection(self, what: str) -> dict[str, Any]:
        turn_detection = self.turn_detection
        if turn_detection is None:
            raise RuntimeError(f"{what}: the client turned turn detection off, the service would never send this")
        return turn_detection

    def _check_formats(self) -> None:
        if not self.server.require_pcmu:
            return
        for direction in ("input", "output"):
            kind = self.config["audio"][direction]["format"].get("type")
            if kind != "audio/pcmu":
                self._warn_once(
                    f"format-{direction}",
                    f"audio.{direction}.format is {kind!r}, but the call carries Twilio μ-law: set audio/pcmu",
                )

    # -- input audio --

    async def _on_append(self, data: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(data["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise RealtimeProtocolError(
                "Invalid 'audio'. Expected base64-encoded audio bytes.", code="invalid_value", param="audio"
            ) from None
        self._check_formats()
        self.input_audio.extend(audio)
        turn_detection = self.turn_detection
        if not self.server.vad or turn_detection is None:
            return
        events = self._vad.feed(
            audio,
            silence_duration_ms=int(turn_detection.get("silence_duration_ms") or 500),
            prefix_padding_ms=int(turn_detection.get("prefix_padding_ms") or 300),
        )
        for event in events:
            if event.kind == "started":
                await self.speech_started(event.audio_ms)
            else:
                await self.speech_stopped(audio_end_ms=event.audio_ms)

    async def _on_commit(self, data: dict[str, Any]) -> None:
        buffered_ms = (len(self.input_audio) - self._buffer_start) / BYTES_PER_MS
        if buffered_ms < MIN_COMMIT_MS:
            raise RealtimeProtocolError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        item = await self._commit_user_turn(
            new_id("item"), start_ms=self._buffer_start // BYTES_PER_MS, end_ms=self.input_audio_ms()
        )
        await self._send_transcription(item, None)

    async def _on_clear(self, data: dict[str, Any]) -> None:
        self._buffer_start = len(self.input_audio)
        self._vad.reset(self.input_audio_ms())
        self._speech_item_id = None
        self._speech_start_ms = None
        await self._send({"type": "input_audio_buffer.cleared"})

    async def _commit_user_turn(self, item_id: str, *, start_ms: int, end_ms: int) -> dict[str, Any]:
        previous = self.items[-1]["id"] if self.items else None
        # The turn ends at end_ms; audio appended after it (in the same append) stays in the buffer.
        commit_at = max(self._buffer_start, min(len(self.input_audio), end_ms * BYTES_PER_MS))
        audio_bytes = commit_at - self._buffer_start
        self._buffer_start = commit_at
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "role": "user",
            "source": "caller",
            "status": "completed",
            "audio_start_ms": start_ms,
            "audio_end_ms": end_ms,
            "audio_bytes": audio_bytes,
            "transcript": None,
        }
        self.items.append(item)
        await self._send({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous})
        wire = self._wire_item(item)
        await self._send({"type": "conversation.item.added", "previous_item_id": previous, "item": wire})
        await self._send({"type": "conversation.item.done", "previous_item_id": previous, "item": wire})
        return item

    async def _send_transcription(self, item: dict[str, Any], transcript: str | None) -> None:
        if transcript is None:
            queue = self.server.caller_transcripts
            transcript = queue.pop(0) if queue else DEFAULT_CALLER_TRANSCRIPT
        item["transcript"] = transcript
        if self.config["audio"]["input"].get("transcription") is None:
            return  # the service transcribes only when the session asked for it
        audio_tokens = _audio_tokens(item["audio_bytes"], INPUT_AUDIO_TOKENS_PER_SECOND)
        text_tokens = _text_tokens(transcript)
        await self._send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item["id"],
                "content_index": 0,
                "transcript": transcript,
                "usage": {
                    "type": "tokens",
                    "input_tokens": audio_tokens,
                    "output_tokens": text_tokens,
                    "total_tokens": audio_tokens + text_tokens,
                    "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
                },
            }
        )

    # -- conversation items --

    def _find_item(self, item_id: str) -> dict[str, Any] | None:
        return next((item for item in self.items if item["id"] == item_id), None)

    def _known_call_ids(self) -> set[str]:
        return {item["call_id"] for item in self.items if item["type"] == "function_call" and item.get("call_id")}

    @staticmethod
    def _wire_item(item: dict[str, Any]) -> dict[str, Any]:
        """A conversation item as the service sends it (without this fake's bookkeeping)."""
        wire: dict[str, Any] = {"id": item["id"], "object": "realtime.item", "type": item["type"]}
        wire["status"] = item.get("status", "completed")
        if item["type"] == "message":
            wire["role"] = item["role"]
            if "content" in item:
                wire["content"] = copy.deepcopy(item["content"])
            elif item["role"] == "user":
                wire["content"] = [{"type": "input_audio", "transcript": item.get("transcript")}]
            else:
                wire["content"] = (
                    [{"type": "output_audio", "transcript": item.get("transcript", "")}]
                    if item.get("audio_part")
                    else []
                )
        elif item["type"] == "function_call":
            wire.update(call_id=item["call_id"], name=item["name"], arguments=item["arguments"])
        elif item["type"] == "function_call_output":
            wire.update(call_id=item["call_id"], output=item["output"])
        return wire

    async def _on_item_create(self, data: dict[str, Any]) -> None:
        sent: dict[str, Any] = data["item"]
        previous = data.get("previous_item_id")
        if previous is not None and previous != "root" and self._find_item(previous) is None:
            raise RealtimeProtocolError(
                f"Previous item with id '{previous}' does not exist.", code="invalid_value", param="previous_item_id"
            )
        if sent.get("id") is not None and self._find_item(sent["id"]) is not None:
            raise RealtimeProtocolError(
                f"Item with id '{sent['id']}' already exists.", code="invalid_value", param="item.id"
            )
        kind = sent["type"]
        if kind not in {"message", "function_call", "function_call_output"}:
            raise RealtimeProtocolError(
                f"Item type '{kind}' cannot be created by the client here.", code="invalid_value", param="item.type"
            )
        if kind == "function_call_output" and sent["call_id"] not in self._known_call_ids():
            raise RealtimeProtocolError(
                f"Tool call ID '{sent['call_id']}' not found in conversation.",
                code="invalid_value",
                param="item.call_id",
            )
        if kind == "function_call" and not sent.get("call_id"):
            raise RealtimeProtocolError(
                "Missing required parameter: 'item.call_id'.", code="missing_required_parameter", param="item.call_id"
            )
        item: dict[str, Any] = {
            "id": sent.get("id") or new_id("item"),
            "type": kind,
            "source": "client",
            "status": "completed",
            "created": copy.deepcopy(sent),
        }
        if kind == "message":
            item["role"] = sent["role"]
            item["content"] = copy.deepcopy(sent["content"])
        elif kind == "function_call":
            item.update(call_id=sent["call_id"], name=sent["name"], arguments=sent["arguments"])
        else:
            item.update(call_id=sent["call_id"], output=sent["output"])
        if previous is None or not self.items:
            anchor = self.items[-1]["id"] if self.items else None
            self.items.append(item)
        elif previous == "root":
            anchor = None
            self.items.insert(0, item)
        else:
            anchor = previous
            self.items.insert(self.items.index(self._find_item(previous)) + 1, item)  # type: ignore[arg-type]
        wire = self._wire_item(item)
        await self._send({"type": "conversation.item.added", "previous_item_id": anchor, "item": wire})
        await self._send({"type": "conversation.item.done", "previous_item_id": anchor, "item": wire})

    async def _on_item_delete(self, data: dict[str, Any]) -> None:
        item = self._require_item(data["item_id"])
        self.items.remove(item)
        await self._send({"type": "conversation.item.deleted", "item_id": item["id"]})

    async def _on_item_retrieve(self, data: dict[str, Any]) -> None:
        item = self._require_item(data["item_id"])
        await self._send({"type": "conversation.item.retrieved", "item": self._wire_item(item)})

    def _require_item(self, item_id: str) -> dict[str, Any]:
        item = self._find_item(item_id)
        if item is None:
            raise RealtimeProtocolError(
                f"Conversation item with id '{item_id}' does not exist.", code="invalid_value", param="item_id"
            )
        return item

    async def _on_truncate(self, data: dict[str, Any]) -> None:
        item_id: str = data["item_id"]
        audio_end_ms: int = data["audio_end_ms"]
        item = self._require_item(item_id)
        if item["type"] != "message" or item.get("role") != "assistant" or not item.get("audio_part"):
            raise RealtimeProtocolError(
                "Only assistant messages with audio content can be truncated.", code="invalid_value", param="item_id"
            )
        if data["content_index"] != 0:
            raise RealtimeProtocolError(
                f"Invalid 'content_index': the item has no content part {data['content_index']}.",
                code="invalid_value",
                param="content_index",
            )
        if audio_end_ms < 0:
            raise RealtimeProtocolError(
                "Invalid 'audio_end_ms': must be zero or more.", code="invalid_value", param="audio_end_ms"
            )
        available = item["audio_bytes"] / BYTES_PER_MS
        if item.get("truncated_at_ms") is not None:
            available = min(available, item["truncated_at_ms"])
        if audio_end_ms > available:
            raise RealtimeProtocolError(
                f"Audio content of {int(available)}ms is already shorter than {audio_end_ms}ms",
                code="invalid_value",
                param="audio_end_ms",
            )
        item["truncated_at_ms"] = audio_end_ms
        truncation = {"item_id": item_id, "content_index": 0, "audio_end_ms": audio_end_ms}
        self.truncations.append(truncation)
        await self._send({"type": "conversation.item.truncated", **truncation})

    async def _on_output_audio_buffer_clear(self, data: dict[str, Any]) -> None:
        raise RealtimeProtocolError(
            "output_audio_buffer.clear is only supported for WebRTC and SIP connections; over WebSocket use "
            "response.cancel and conversation.item.truncate.",
            code="invalid_value",
            param="type",
        )

    # -- responses --

    def _next_scripted(self) -> ScriptedResponse | None:
        if self._script:
            return self._script.popleft()
        if self.server.scripted:
            return self.server.scripted.popleft()
        return self.server.default_response

    async def _on_response_create(self, data: dict[str, Any]) -> None:
        params: dict[str, Any] = data.get("response") or {}
        in_conversation = params.get("conversation", "auto") != "none"
        if in_conversation and self._active is not None:
            raise RealtimeProtocolError(
                f"Conversation already has an active response in progress: {self._active.id}. Wait until the "
                "response is finished before creating a new one.",
                code="conversation_already_has_active_response",
                # A response the server's VAD started can cross a client's response.create on the wire: the client
                # could not have known. One the client itself started, it should have waited for.
                violation=not self._active.by_turn_detection,
            )
        await self._start_response(params, in_conversation=in_conversation)

    async def _on_response_cancel(self, data: dict[str, Any]) -> None:
        wanted = data.get("response_id")
        if wanted is not None:
            target = next((r for r in self._running if r.id == wanted), None)
        else:
            target = self._active or (self._running[-1] if self._running else None)
        if target is None or target.cancelled:
            raise RealtimeProtocolError(
                "Cancellation failed: no active response found", code="response_cancel_not_active"
            )
        await self._cancel(target, reason="client_cancelled")

    async def _cancel(self, response: _Response, *, reason: str) -> None:
        """Stops the runner at its next send; it then closes the open parts and sends response.done cancelled."""
        if response.cancelled:
            return
        response.cancelled = True
        response.cancel_reason = reason
        response.wake.set()
        if response.task is not None:
            try:
                await asyncio.shield(response.task)
            except asyncio.CancelledError:
                if not response.task.cancelled():
                    raise  # we are being cancelled ourselves, not the runner

    def _context_tokens(self, params: dict[str, Any], in_conversation: bool) -> dict[str, int]:
        """What the model reads for this response: instructions plus the whole conversation, re-sent every turn."""
        instructions = params.get("instructions", self.config.get("instructions") or "")
        text = _text_tokens(instructions)
        audio = 0
        if not in_conversation:  # out of band: only the items the request lists
            text += sum(_text_tokens(json.dumps(item)) for item in params.get("input") or [])
            return {"text": text, "audio": 0, "cached": 0}
        for item in self.items:
            if item.get("source") == "caller":
                audio += _audio_tokens(item["audio_bytes"], INPUT_AUDIO_TOKENS_PER_SECOND)
            elif item.get("audio_part"):
                heard = item["audio_bytes"]
                if item.get("truncated_at_ms") is not None:
                    heard = min(heard, item["truncated_at_ms"] * BYTES_PER_MS)
                audio += _audio_tokens(heard, OUTPUT_AUDIO_TOKENS_PER_SECOND)
            else:
                text += _text_tokens(json.dumps(item.get("created") or self._wire_item(item)))
        previous = next(
            (r["usage"]["input_tokens"] for r in reversed(self.responses) if r.get("usage") and r["in_conversation"]),
            0,
        )
        cached = previous if previous >= PROMPT_CACHE_MIN_TOKENS else 0
        return {"text": text, "audio": audio, "cached": min(cached, text + audio)}

    async def _start_response(
        self, params: dict[str, Any], *, in_conversation: bool, by_turn_detection: bool = False
    ) -> None:
        """Sends response.created now (so ordering is deterministic), then plays the script in a task."""
        self._check_formats()
        scripted = self._next_scripted()
        record: dict[str, Any] = {
            "id": new_id("resp"),
            "in_conversation": in_conversation,
            "status": "in_progress",
            "scripted": scripted,
            "params": copy.deepcopy(params),
            "item_id": None,
            "item_ids": [],
            "audio_bytes": 0,
            "cancel_reason": None,
            "usage": None,
        }
        response = _Response(
            id=record["id"],
            in_conversation=in_conversation,
            metadata=params.get("metadata"),
            input_tokens=self._context_tokens(params, in_conversation),
            record=record,
            by_turn_detection=by_turn_detection,
        )
        self.responses.append(record)
        self._running.append(response)
        if in_conversation:
            self._active = response
        await self._send({"type": "response.created", "response": self._response_object(response, "in_progress")})
        response.task = asyncio.create_task(self._play(response, scripted), name=f"fake-realtime-{response.id}")

    def _response_object(
        self,
        response: _Response,
        status: str,
        *,
        usage: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        output_config = self.config["audio"]["output"]
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": details,
            "output": copy.deepcopy(response.output),
            "conversation_id": self.conversation_id if response.in_conversation else None,
            "output_modalities": ["audio"],
            "max_output_tokens": self.config.get("max_output_tokens", "inf"),
            "audio": {"output": {"format": copy.deepcopy(output_config["format"]), "voice": output_config["voice"]}},
            "usage": usage,
            "metadata": response.metadata,
        }

    def _usage(self, response: _Response) -> dict[str, Any]:
        tokens = response.input_tokens
        output_audio = _audio_tokens(response.audio_bytes_sent, OUTPUT_AUDIO_TOKENS_PER_SECOND)
        output_text = _text_tokens(response.transcript_sent)
        input_total = tokens["text"] + tokens["audio"]
        cached = tokens["cached"]
        cached_audio = round(cached * tokens["audio"] / input_total) if input_total else 0
        return {
            "total_tokens": input_total + output_audio + output_text,
            "input_tokens": input_total,
            "output_tokens": output_audio + output_text,
            "input_token_details": {
                "text_tokens": tokens["text"],
                "audio_tokens": tokens["audio"],
                "image_tokens": 0,
                "cached_tokens": cached,
                "cached_tokens_details": {
                    "text_tokens": cached - cached_audio,
                    "audio_tokens": cached_audio,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
        }

    async def _emit(self, response: _Response, event: dict[str, Any]) -> None:
        """A response's event, dropped from here on once the response is cancelled (no more deltas after cancel)."""
        if "response_id" in SERVER_EVENT_MODELS[event["type"]].model_fields:
            event = {"response_id": response.id, **event}
        await self._send(event, unless_cancelled=response)
        response.sent_types.add(event["type"])

    async def _pause(self, response: _Response, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(response.wake.wait(), seconds)
        if response.cancelled:
            raise _Cancelled

    async def _play(self, response: _Response, scripted: ScriptedResponse | None) -> None:
        try:
            await self._play_to_done(response, scripted)
        except Exception as exc:
            # Nobody awaits this task: a fake bug must surface as a violation the test asserts on.
            self._violation(f"FAKE ERROR in response {response.id}: {type(exc).__name__}: {exc}")

    async def _play_to_done(self, response: _Response, scripted: ScriptedResponse | None) -> None:
        status = "completed"
        details: dict[str, Any] | None = None
        try:
            if isinstance(scripted, AudioResponse):
                await self._play_audio(response, scripted)
                if scripted.then_call is not None:
                    await self._play_function_call(response, scripted.then_call)
            elif isinstance(scripted, FunctionCallResponse):
                await self._play_function_call(response, scripted)
        except _Cancelled:
            status = "cancelled"
            details = {"type": "cancelled", "reason": response.cancel_reason}
            await self._close_cancelled_item(response)
        # Bookkeeping before the await: a response.cancel handled after this point finds no active response.
        if self._active is response:
            self._active = None
        if response in self._running:
            self._running.remove(response)
        usage = self._usage(response)
        response.record.update(status=status, usage=usage, audio_bytes=response.audio_bytes_sent)
        response.record["cancel_reason"] = response.cancel_reason if status == "cancelled" else None
        await self._send(
            {"type": "response.done", "response": self._response_object(response, status, usage=usage, details=details)}
        )

    def _add_output_item(self, response: _Response, item: dict[str, Any]) -> str | None:
        response.item = item
        response.output_index += 1
        response.sent_types = set()
        if response.record["item_id"] is None:  # the first output item; `item_ids` lists them all
            response.record["item_id"] = item["id"]
        response.record["item_ids"].append(item["id"])
        if not response.in_conversation:
            return None
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        return previous

    async def _play_audio(self, response: _Response, scripted: AudioResponse) -> None:
        item: dict[str, Any] = {
            "id": new_id("item"),
            "type": "message",
            "role": "assistant",
            "source": "model",
            "status": "in_progress",
            "response_id": response.id,
            "audio_part": False,
            "audio_bytes": 0,
            "transcript": "",
            "truncated_at_ms": None,
        }
        previous = self._add_output_item(response, item)
        index = response.output_index
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        await self._emit(
            response, {"type": "response.output_item.added", "output_index": index, "item": self._wire_item(item)}
        )
        if response.in_conversation:
            await self._emit(
                response,
                {"type": "conversation.item.added", "previous_item_id": previous, "item": self._wire_item(item)},
            )
        await self._emit(
            response, {"type": "response.content_part.added", **where, "part": {"type": "audio", "transcript": ""}}
        )
        item["audio_part"] = True  # from here the item has an audio part the client may truncate
        await self._pause(response, self.server.first_audio_delay)
        chunk_size = max(self.server.audio_chunk_ms, 1) * BYTES_PER_MS
        chunks = [scripted.audio[offset : offset + chunk_size] for offset in range(0, len(scripted.audio), chunk_size)]
        pieces = _split_words(scripted.transcript, max(len(chunks), 1))
        for index, piece in enumerate(pieces):
            if index < len(chunks):
                if index:
                    await self._pause(response, self.server.chunk_interval)
                chunk = chunks[index]
                await self._emit(
                    response,
                    {"type": "response.output_audio.delta", **where, "delta": base64.b64encode(chunk).decode("ascii")},
                )
                response.audio_bytes_sent += len(chunk)
                item["audio_bytes"] = response.audio_bytes_sent
                self._assistant_audio_sent = True
                if response.cancel_after_chunks is not None:
                    response.cancel_after_chunks -= 1
                    if response.cancel_after_chunks <= 0:
                        response.cancelled = True  # the interruption catches up with the deltas in flight
                        raise _Cancelled
            if piece:
                await self._emit(response, {"type": "response.output_audio_transcript.delta", **where, "delta": piece})
                response.transcript_sent += piece
                item["transcript"] = response.transcript_sent
        await self._emit(response, {"type": "response.output_audio.done", **where})
        await self._emit(
            response, {"type": "response.output_audio_transcript.done", **where, "transcript": scripted.transcript}
        )
        await self._emit(
            response,
            {
                "type": "response.content_part.done",
                **where,
                "part": {"type": "audio", "transcript": scripted.transcript},
            },
        )
        item["status"] = "completed"
        await self._finish_item(response, item, previous)

    async def _finish_item(self, response: _Response, item: dict[str, Any], previous: str | None) -> None:
        wire = self._wire_item(item)
        response.output.append(wire)
        await self._emit(
            response, {"type": "response.output_item.done", "output_index": response.output_index, "item": wire}
        )
        if response.in_conversation:
            await self._emit(response, {"type": "conversation.item.done", "previous_item_id": previous, "item": wire})

    async def _close_cancelled_item(self, response: _Response) -> None:
        """What the service sends for a cut-off item: each part still open closed, the item marked incomplete."""
        item = response.item
        if item is None:
            return
        sent = response.sent_types
        if item["status"] == "in_progress":
            item["status"] = "incomplete"
        index = response.output_index
        where = {"response_id": response.id, "item_id": item["id"], "output_index": index, "content_index": 0}
        if item["type"] == "message" and "response.content_part.added" in sent:
            transcript = response.transcript_sent
            closing: list[dict[str, Any]] = [
                {"type": "response.output_audio.done", **where},
                {"type": "response.output_audio_transcript.done", **where, "transcript": transcript},
                {"type": "response.content_part.done", **where, "part": {"type": "audio", "transcript": transcript}},
            ]
            for event in closing:
                if event["type"] not in sent:
                    await self._send(event)
        wire = self._wire_item(item)
        if "response.output_item.done" not in sent:
            response.output.append(wire)
            await self._send(
                {"type": "response.output_item.done", "response_id": response.id, "output_index": index, "item": wire}
            )
        if response.in_conversation and "conversation.item.done" not in sent:
            await self._send({"type": "conversation.item.done", "item": wire})

    async def _play_function_call(self, response: _Response, scripted: FunctionCallResponse) -> None:
        arguments = scripted.arguments_json()
        item: dict[str, Any] = {
            "id": new_id("item"),
            "type": "function_call",
            "source": "model",
            "status": "in_progress",
            "response_id": response.id,
            "call_id": scripted.call_id or new_id("call"),
            "name": scripted.name,
            "arguments": "",
        }
        previous = self._add_output_item(response, item)
        await self._emit(
            response,
            {
                "type": "response.output_item.added",
                "output_index": response.output_index,
                "item": self._wire_item(item),
            },
        )
        if response.in_conversation:
            await self._emit(
                response,
                {"type": "conversation.item.added", "previous_item_id": previous, "item": self._wire_item(item)},
            )
        where = {"item_id": item["id"], "output_index": response.output_index, "call_id": item["call_id"]}
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            if piece:
                await self._emit(response, {"type": "response.function_call_arguments.delta", **where, "delta": piece})
        item["arguments"] = arguments
        await self._emit(
            response,
            {"type": "response.function_call_arguments.done", **where, "name": scripted.name, "arguments": arguments},
        )
        response.transcript_sent = arguments  # output text tokens of a tool call are its arguments
        item["status"] = "completed"
        await self._finish_item(response, item, previous)


class FakeRealtimeServer:
    """The fake service: `url` for the relay's OPENAI_REALTIME_URL, one FakeRealtimeSession per accepted socket."""

    def __init__(
        self,
        *,
        api_key: str = "test-openai-key",
        connect_delay: float = 0.0,
        first_audio_delay: float = 0.0,
        audio_chunk_ms: int = 100,
        chunk_interval: float = 0.0,
        vad: bool = False,
        default_response: ScriptedResponse | None = None,
        require_pcmu: bool = True,
        vad_rms_threshold: float = 500.0,
        interrupt_lag_chunks: int = 0,
        session_max_seconds: float = SESSION_MAX_SECONDS,
    ) -> None:
        self.api_key = api_key
        self.connect_delay = connect_delay
        self.first_audio_delay = first_audio_delay
        self.audio_chunk_ms = audio_chunk_ms
        self.chunk_interval = chunk_interval
        self.vad = vad
        self.default_response = default_response
        self.require_pcmu = require_pcmu
        self.vad_rms_threshold = vad_rms_threshold
        # Audio chunks an interrupted response still sends (deltas in flight when the service processed speech).
        self.interrupt_lag_chunks = interrupt_lag_chunks
        # The age at which the service ends a session (session_expired, then a 1001 close).
        self.session_max_seconds = session_max_seconds
        # While True, every upgrade is answered 503 (an outage): no session is created.
        self.refuse_sessions = False
        self.connection_attempts = 0
        self.refusals: list[tuple[int, str]] = []  # (HTTP status, reason) of every refused upgrade
        self.sessions: list[FakeRealtimeSession] = []
        self.violations: list[str] = []
        self.caller_transcripts: list[str] = []
        self.scripted: deque[ScriptedResponse] = deque()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._changed = Signal()

    async def __aenter__(self) -> FakeRealtimeServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(REALTIME_PATH, self._handle_upgrade)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}{REALTIME_PATH}?model={DEFAULT_MODEL}"

    async def close(self) -> None:
        for session in self.sessions:
            if not session.closed.is_set():
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await session.close(1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def script(self, *responses: ScriptedResponse) -> None:
        """Queue what the next `response.create`s produce (any session, first come first served)."""
        self.scripted.extend(responses)

    async def wait_for_session(self, index: int = 0, timeout: float = 5.0) -> FakeRealtimeSession:  # noqa: ASYNC109
        session: FakeRealtimeSession = await self._changed.wait_until(
            lambda: self.sessions[index] if len(self.sessions) > index else None, timeout, f"realtime session {index}"
        )
        return session

    async def wait_for_connection_attempts(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until `count` upgrades were attempted (accepted or refused): for reconnect and backoff tests."""
        await self._changed.wait_until(
            lambda: self.connection_attempts >= count, timeout, f"{count} connection attempts"
        )

    def _refuse(self, status: int, message: str, code: str, *, violation: bool) -> web.Response:
        self.refusals.append((status, message))
        if violation:
            self.violations.append(f"upgrade refused ({status}): {message}")
        self._changed.notify()
        body = {"error": {"message": message, "type": "invalid_request_error", "code": code, "param": None}}
        return web.json_response(body, status=status)

    async def _handle_upgrade(self, request: web.Request) -> web.StreamResponse:
        self.connection_attempts += 1
        self._changed.notify()
        if self.connect_delay:
            await asyncio.sleep(self.connect_delay)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._refuse(
                401,
                "Incorrect API key provided. You can find your API key in your account.",
                "invalid_api_key",
                violation=False,
            )
        if self.refuse_sessions:
            return self._refuse(
                503, "The server is temporarily unavailable. Please retry.", "server_error", violation=False
            )
        if "OpenAI-Beta" in request.headers:
            return self._refuse(
                400,
                f"The beta Realtime API is shut down: remove the OpenAI-Beta header "
                f"({request.headers['OpenAI-Beta']!r}) and use the GA interface.",
                "beta_api_shutdown",
                violation=True,
            )
        model = request.query.get("model")
        if not model:
            return self._refuse(
                400, "Missing required parameter: 'model'.", "missing_required_parameter", violation=True
            )
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=MAX_MESSAGE_BYTES)
        if not ws.can_prepare(request).ok:
            return self._refuse(400, "Expected a WebSocket upgrade request.", "invalid_request", violation=True)
        try:
            await ws.prepare(request)
        except ConnectionResetError:
            return ws  # the client went away while this server made it wait (connect_delay): no session
        session = FakeRealtimeSession(self, len(self.sessions), ws, request, model)
        self.sessions.append(session)
        self._changed.notify()
        await session.run()
        return ws
