"""The OpenAI Realtime (GA) adapter: one WebSocket client connection, client events built as plain dicts, server
events handed on as parsed dicts keyed by `type`.

No pydantic on the audio path: `input_audio_buffer.append` carries Twilio's base64 payload as is, and
`response.output_audio.delta` is handed on as is. The tests validate every event this module builds against
`openai.types.realtime.RealtimeClientEvent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

import aiohttp
import orjson

from callcore.profiles.model import TurnDetection
from relay.line import LineSettings
from relay.settings import RelaySettings

log = logging.getLogger(__name__)

ServerEvent = dict[str, Any]
AUDIO_DELTA = "response.output_audio.delta"
# Session update frames carry the prompt and tools; audio frames are small. OpenAI's own limit is far above this.
MAX_SERVER_FRAME_BYTES = 16 * 1024 * 1024


_SOCKET_ENDED = frozenset({aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED})

# Refusals that another try will not change: the key is wrong or lacks access to the model.
_PERMANENT_REFUSALS = frozenset({401, 403, 404})


class RealtimeConnectError(Exception):
    """The model endpoint refused or did not answer in time. `permanent`: retrying cannot help (a wrong key, no access
    to the model), so reconnecting gives up at once instead of spending its budget."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class RealtimeConnection:
    """One model session. Whoever uses the session reads its events with `receive()`, straight off the socket: no
    queue and no task between the model's frame and the handler (the audio path's cost is per event).

    While nobody reads it (a pooled session waiting for a call, a rotation's next session waiting for its switch), a
    standby reader keeps reading it, so that a session the server closes is noticed (`alive`); the events it reads
    wait for the first `receive()`, which stops it. It stops at an await, so no event is lost between the two: one it
    had not read yet stays in aiohttp's buffer.

    Sends are guarded: after the socket closed they return False instead of raising.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[Literal[False]], *, opened_at: float) -> None:
        self._ws = ws
        self.opened_at = opened_at
        self.session_id: str | None = None
        self._unread: deque[ServerEvent] = deque()  # read by the standby reader, not yet received
        self._arrived = asyncio.Event()  # the standby reader read an event or the end
        self._standby: asyncio.Task[None] | None = asyncio.create_task(self._read_standby(), name="realtime-standby")
        self._reading = False  # receive() is parked on the socket: everything that arrived has been handled
        self._ended = False  # the socket's stream ended (closed, lost, or an error)
        self._detached = False
        self.close_code: int | None = None

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, url: str, api_key: str, *, connect_timeout: float = 10.0
    ) -> RealtimeConnection:
        """Open the socket and wait for `session.created` (the session is usable from then on), all within
        `connect_timeout`. Cancelled or failed midway, the socket is closed: a half-open session never leaks."""
        deadline = asyncio.get_running_loop().time() + connect_timeout
        try:
            # The handshake itself must be bounded here: ws_connect only has the client session's default timeout
            # (5 minutes), and a caller would wait in silence for it.
            async with asyncio.timeout_at(deadline):
                ws = await http.ws_connect(
                    url,
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=connect_timeout),
                    max_msg_size=MAX_SERVER_FRAME_BYTES,
                    heartbeat=20.0,
                    decode_text=False,  # orjson parses the bytes: no str in between
                )
        except (aiohttp.ClientError, TimeoutError) as error:
            permanent = isinstance(error, aiohttp.WSServerHandshakeError) and error.status in _PERMANENT_REFUSALS
            raise RealtimeConnectError(
                f"cannot connect to the model: {type(error).__name__}: {error}", permanent=permanent
            ) from None
        connection = cls(ws, opened_at=time.monotonic())
        try:
            async with asyncio.timeout_at(deadline):
                first = await connection._first_event()
        except TimeoutError:
            await connection.close()
            raise RealtimeConnectError("the model did not send session.created in time") from None
        except BaseException:
            await connection.close()  # cancelled (the call ended, the process stops): close what was opened
            raise
        if first is None or first.get("type") != "session.created":
            await connection.close()
            kind = "closed" if first is None else first.get("type")
            raise RealtimeConnectError(f"expected session.created, got {kind}")
        connection.session_id = (first.get("session") or {}).get("id")
        return connection

    @property
    def alive(self) -> bool:
        return not self._ws.closed and not self._ended

    async def _next_from_socket(self) -> ServerEvent | None:
        """The next event on the socket; None when its stream has ended (and from then on)."""
        ws = self._ws
        while not self._ended:
            message = await ws.receive()
            kind = message.type
            if kind is aiohttp.WSMsgType.TEXT:
                try:
                    event = orjson.loads(message.data)
                except orjson.JSONDecodeError:
                    log.warning("model sent a frame that is not JSON; ignored")
                    continue
                if isinstance(event, dict):
                    return event
            elif kind is aiohttp.WSMsgType.ERROR:
                log.warning("model socket error: %s", ws.exception())
                self._ended = True
            elif kind in _SOCKET_ENDED:
                self._ended = True
        self.close_code = ws.close_code
        return None

    async def _read_standby(self) -> None:
        while (event := await self._next_from_socket()) is not None:
            self._unread.append(event)
            self._arrived.set()
        self._arrived.set()

    async def _first_event(self) -> ServerEvent | None:
        """The first event, read by the standby reader (which goes on reading: the session may wait in the pool)."""
        while not self._unread and not self._ended:
            self._arrived.clear()
            await self._arrived.wait()
        return self._unread.popleft() if self._unread else None

    async def _stop_standby(self) -> None:
        standby, self._standby = self._standby, None
        if standby is not None and not standby.done():
            standby.cancel()
            await asyncio.wait([standby])  # parked in ws.receive(): its next message stays in aiohttp's buffer

    def detach(self) -> None:
        """The call moved to another session: events not handled yet are dropped and `receive()` answers None from
        now on, so whoever reads this session stops at once (the socket is closed separately)."""
        self._detached = True
        self._unread.clear()

    @property
    def has_unread_events(self) -> bool:
        """Events arrived that the reader has not handled yet (it is not parked on the socket)."""
        return bool(self._unread) or (self._standby is None and not self._reading and not self._ended)

    async def receive(self) -> ServerEvent | None:
        """The next server event; None once the socket has closed or the session was detached (and stays None).
        One task reads a session at a time."""
        if self._standby is not None:
            await self._stop_standby()
        if self._unread:
            return self._unread.popleft()
        if self._detached:
            return None
        self._reading = True
        try:
            event = await self._next_from_socket()
        finally:
            self._reading = False
        return None if self._detached else event

    async def send(self, event: Mapping[str, Any]) -> bool:
        if self._ws.closed:
            return False
        try:
            await self._ws.send_frame(orjson.dumps(event), aiohttp.WSMsgType.TEXT)
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            return False
        return True

    async def close(self, grace_seconds: float = 1.0) -> None:
        """Close within `grace_seconds`; a peer that does not answer the close handshake is cut off."""
        if not self._ws.closed:
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
                async with asyncio.timeout(grace_seconds):
                    await self._ws.close()
        await self._stop_standby()


# ---- client events ------------------------------------------------------------------------------------------------


def session_config(
    settings: RelaySettings, line: LineSettings, *, instructions: str, tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """The GA session: pcmu both ways (Twilio's payloads pass through), the line's voice and turn detection,
    transcription, tools."""
    turns = line.turn_taking
    if turns.type is TurnDetection.SEMANTIC_VAD:
        turn_detection: dict[str, Any] = {
            "type": "semantic_vad",
            "eagerness": turns.eagerness.value,
            "create_response": True,
            "interrupt_response": True,
        }
    else:
        turn_detection = {
            "type": "server_vad",
            "threshold": turns.threshold,
            "prefix_padding_ms": turns.prefix_padding_ms,
            "silence_duration_ms": turns.silence_duration_ms,
            "create_response": True,
            "interrupt_response": True,
        }
    return {
        "type": "realtime",
        "instructions": instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": settings.transcription_model},
                "turn_detection": turn_detection,
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": line.voice},
        },
        "tools": tools,
        "tool_choice": "auto",
    }


def session_update(session: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "session.update", "session": dict(session)}


def instructions_update(instructions: str) -> dict[str, Any]:
    """A partial session.update: only the per-call instructions change on a warm session."""
    return {"type": "session.update", "session": {"type": "realtime", "instructions": instructions}}


def append_audio(payload_b64: str) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": payload_b64}


def truncate(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    return {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": audio_end_ms}


def function_call_output(call_id: str, output: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def assistant_message(text: str, *, previous_item_id: str | None = None) -> dict[str, Any]:
    """Seeds the conversation with words the agent already said (the cached greeting). `previous_item_id="root"`
    puts the item at the start of the conversation (GA: "If set to `root`, the new item will be added to the
    beginning of the conversation"), where it belongs even if a caller turn was committed before it was sent."""
    event: dict[str, Any] = {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]},
    }
    if previous_item_id is not None:
        event["previous_item_id"] = previous_item_id
    return event


def user_message(text: str) -> dict[str, Any]:
    """What the caller said or did (a transcribed turn, a keypad key), as text the model reads."""
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
    }


def function_call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A tool call the model made in an earlier session, put back so its output has the call it answers."""
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments},
    }


def system_message(text: str) -> dict[str, Any]:
    """A mid-call instruction to the model (e.g. "wrap up"), added to the conversation as a system message."""
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]},
    }


def response_create(instructions: str | None = None) -> dict[str, Any]:
    if instructions is None:
        return {"type": "response.create"}
    return {"type": "response.create", "response": {"instructions": instructions}}


def out_of_band_speech(text: str) -> dict[str, Any]:
    """A response outside the conversation that says `text` verbatim: how the greeting is rendered once."""
    return {
        "type": "response.create",
        "response": {
            "conversation": "none",
            "input": [],
            "output_modalities": ["audio"],
            "instructions": f"Say exactly the following, word for word, in a warm and natural tone: {text}",
        },
    }


def decoded_length(payload_b64: str) -> int:
    """Bytes in a base64 payload without decoding it (8 pcmu bytes = 1 ms)."""
    size = len(payload_b64)
    if size == 0:
        return 0
    padding = 2 if payload_b64.endswith("==") else 1 if payload_b64.endswith("=") else 0
    return size * 3 // 4 - padding
