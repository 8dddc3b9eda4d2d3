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
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from callcore.profiles.model import TurnDetection
from relay.line import LineSettings
from relay.settings import RelaySettings

log = logging.getLogger(__name__)

ServerEvent = dict[str, Any]
# Session update frames carry the prompt and tools; audio frames are small. OpenAI's own limit is far above this.
MAX_SERVER_FRAME_BYTES = 16 * 1024 * 1024


# Refusals that another try will not change: the key is wrong or lacks access to the model.
_PERMANENT_REFUSALS = frozenset({401, 403, 404})


class RealtimeConnectError(Exception):
    """The model endpoint refused or did not answer in time. `permanent`: retrying cannot help (a wrong key, no access
    to the model), so reconnecting gives up at once instead of spending its budget."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class RealtimeConnection:
    """One model session. A reader task parses server events into a queue as they arrive, so an idle (pooled)
    session notices when the server closes it, and the call reads events with `receive()`.

    Sends are guarded: after the socket closed they return False instead of raising.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, opened_at: float) -> None:
        self._ws = ws
        self.opened_at = opened_at
        self.session_id: str | None = None
        self._events: asyncio.Queue[ServerEvent | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(), name="realtime-reader")
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
                )
        except (aiohttp.ClientError, TimeoutError) as error:
            permanent = isinstance(error, aiohttp.WSServerHandshakeError) and error.status in _PERMANENT_REFUSALS
            raise RealtimeConnectError(
                f"cannot connect to the model: {type(error).__name__}: {error}", permanent=permanent
            ) from None
        connection = cls(ws, opened_at=time.monotonic())
        try:
            async with asyncio.timeout_at(deadline):
                first = await connection.receive()
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
        return not self._ws.closed and not self._reader.done()

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    try:
                        event = orjson.loads(message.data)
                    except orjson.JSONDecodeError:
                        log.warning("model sent a frame that is not JSON; ignored")
                        continue
                    if isinstance(event, dict):
                        self._events.put_nowait(event)
                elif message.type is aiohttp.WSMsgType.ERROR:
                    log.warning("model socket error: %s", self._ws.exception())
                    break
        finally:
            self.close_code = self._ws.close_code
            self._events.put_nowait(None)

    def detach(self) -> None:
        """The call moved to another session: events not handled yet are dropped and `receive()` answers None from
        now on, so whoever reads this session stops at once (the socket is closed separately)."""
        while not self._events.empty():
            self._events.get_nowait()
        self._events.put_nowait(None)

    @property
    def has_unread_events(self) -> bool:
        return not self._events.empty()

    async def receive(self) -> ServerEvent | None:
        """The next server event; None once the socket has closed (and stays None)."""
        event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)
        return event

    async def send(self, event: Mapping[str, Any]) -> bool:
        if self._ws.closed:
            return False
        try:
            await self._ws.send_str(orjson.dumps(event).decode())
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            return False
        return True

    async def close(self, grace_seconds: float = 1.0) -> None:
        """Close within `grace_seconds`; a peer that does not answer the close handshake is cut off."""
        if not self._ws.closed:
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
                async with asyncio.timeout(grace_seconds):
                    await self._ws.close()
        if not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


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
