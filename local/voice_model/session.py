"""One Realtime (GA) session of the stand-in: the client's events in, the service's events out.

Client events are checked against `openai.types.realtime.RealtimeClientEvent` and refused with the service's `error`
when they break it; the stateful rules are the service's too (one active response per conversation, cancel only an
active response, truncate only assistant audio that exists, function outputs only for known calls, the voice fixed
once there is assistant audio). Caller audio goes through turn detection; each committed turn is recognised in a
worker thread while the response that answers it waits for the words.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web
from pydantic import TypeAdapter, ValidationError

from local.voice_model.audio import BYTES_PER_MS
from local.voice_model.conversation import Conversation, Item
from local.voice_model.intent import Context, Reply, business_name, infer_today, respond, verbatim
from local.voice_model.protocol import default_session, merge_session, new_id
from local.voice_model.responses import Response, ResponseCancelled, ResponseWriter
from local.voice_model.turns import TurnDetector, TurnEvent, TurnSettings

if TYPE_CHECKING:
    from local.voice_model.server import SpeechParts

log = logging.getLogger("local.voice_model")

MIN_COMMIT_MS = 100  # the service refuses to commit less audio than this
PCMU = "audio/pcmu"
IDLE_BUFFER_MS = 1000  # audio kept before speech starts (prefix padding is taken from it)


class ProtocolError(Exception):
    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


@cache
def _client_events() -> TypeAdapter[Any]:
    from openai.types.realtime import RealtimeClientEvent  # noqa: PLC0415 - the SDK's definition, loaded once

    return TypeAdapter(RealtimeClientEvent)


def parse_client_event(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise ProtocolError("We could not parse the JSON body of your request.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ProtocolError("Expected a JSON object as the event.", code="invalid_json")
    try:
        _client_events().validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"] if isinstance(part, str) and part.islower())
        if first["type"] == "missing":
            raise ProtocolError(
                f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
            ) from None
        raise ProtocolError(
            f"Invalid value for '{param}': {first['msg']}.", code="invalid_value", param=param
        ) from None
    return data


class VoiceSession:
    def __init__(self, ws: web.WebSocketResponse, *, model: str, parts: SpeechParts) -> None:
        self.id = new_id("sess")
        self.conversation_id = new_id("conv")
        self.config = default_session(self.id, model)
        self.conversation = Conversation()
        self._ws = ws
        self._parts = parts
        self._send_lock = asyncio.Lock()
        self._buffer = bytearray()
        self._buffer_start_ms = 0  # stream position of the buffer's first byte
        self._detector: TurnDetector | None = None
        self._speech_item_id: str | None = None
        self._speech_start_ms = 0
        self._active: Response | None = None
        self._running: list[Response] = []
        self._recognitions: dict[str, asyncio.Task[None]] = {}
        self._assistant_audio_sent = False

    # ---- the connection ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        log.info("session %s: local stand-in voice model (pocketsphinx + espeak-ng, offline), not OpenAI", self.id)
        await self._send({"type": "session.created", "session": self.config})
        try:
            async for message in self._ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    await self._send_error("Binary frames are not supported; send JSON text.", code="invalid_json")
        finally:
            for task in [*(r.task for r in self._running), *self._recognitions.values()]:
                if task is not None:
                    task.cancel()

    async def _on_text(self, text: str) -> None:
        client_event_id = None
        try:
            data = parse_client_event(text)
            client_event_id = data.get("event_id")
            handler = getattr(self, "_on_" + data["type"].replace(".", "_"), None)
            if handler is None:
                raise ProtocolError(f"This local stand-in does not handle '{data['type']}'.", code="invalid_value",
                                    param="type")  # fmt: skip
            await handler(data)
        except ProtocolError as error:
            await self._send_error(error.message, code=error.code, param=error.param, event_id=client_event_id)

    async def _send(self, event: dict[str, Any]) -> None:
        event = {"event_id": new_id("event"), **event}
        async with self._send_lock:
            if self._ws.closed:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_str(json.dumps(event))

    async def _send_error(self, message: str, *, code: str, param: str | None = None, event_id: Any = None) -> None:
        log.info("session %s: refused a client event: %s (%s)", self.id, message, code)
        error = {"type": "invalid_request_error", "code": code, "message": message, "param": param,
                 "event_id": event_id if isinstance(event_id, str) else None}  # fmt: skip
        await self._send({"type": "error", "error": error})

    # ---- the session -------------------------------------------------------------------------------------------

    async def _on_session_update(self, data: dict[str, Any]) -> None:
        update: dict[str, Any] = data["session"]
        if update.get("type") != "realtime":
            raise ProtocolError("Cannot change the session type.", code="invalid_value", param="session.type")
        if "model" in update and update["model"] != self.config["model"]:
            raise ProtocolError("The session model cannot be changed.", code="invalid_value", param="session.model")
        audio = update.get("audio") or {}
        voice = (audio.get("output") or {}).get("voice")
        if voice is not None and voice != self.config["audio"]["output"]["voice"] and self._assistant_audio_sent:
            raise ProtocolError(
                "Cannot update a conversation's voice if assistant audio is present.",
                code="cannot_update_voice",
                param="session.audio.output.voice",
            )
        for side in ("input", "output"):
            kind = ((audio.get(side) or {}).get("format") or {}).get("type")
            if kind is not None and kind != PCMU:
                raise ProtocolError(
                    f"This local stand-in model speaks {PCMU} only (Twilio's format), not {kind}.",
                    code="invalid_value",
                    param=f"session.audio.{side}.format.type",
                )
        self.config = merge_session(self.config, update)
        self._set_turn_detection()
        await self._send({"type": "session.updated", "session": self.config})

    def _set_turn_detection(self) -> None:
        turn_detection = self.config["audio"]["input"].get("turn_detection")
        if turn_detection is None:
            self._detector = None
            return
        settings = TurnSettings.from_session(turn_detection)
        if self._detector is None or self._detector.settings != settings:
            self._detector = TurnDetector(settings, position_ms=self._position_ms())

    @property
    def _turn_detection(self) -> dict[str, Any]:
        value: dict[str, Any] = self.config["audio"]["input"].get("turn_detection") or {}
        return value

    def _position_ms(self) -> int:
        return self._buffer_start_ms + len(self._buffer) // BYTES_PER_MS

    # ---- caller audio ------------------------------------------------------------------------------------------

    async def _on_input_audio_buffer_append(self, data: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(data["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("Invalid base64 audio.", code="invalid_value", param="audio") from None
        self._buffer += audio
        if self._detector is None:
            return
        for event in self._detector.feed(audio):
            await self._on_turn(event)
        if not self._detector.speaking:
            self._drop_idle_audio()

    def _drop_idle_audio(self) -> None:
        excess = len(self._buffer) - IDLE_BUFFER_MS * BYTES_PER_MS
        if excess > 0:
            del self._buffer[:excess]
            self._buffer_start_ms += excess // BYTES_PER_MS

    async def _on_turn(self, event: TurnEvent) -> None:
        if event.kind == "started":
            self._speech_item_id = new_id("item")
            self._speech_start_ms = max(event.audio_ms, self._buffer_start_ms)
            await self._send({"type": "input_audio_buffer.speech_started", "audio_start_ms": event.audio_ms,
                              "item_id": self._speech_item_id})  # fmt: skip
            if self._turn_detection.get("interrupt_response", True) and self._active is not None:
                await self._cancel(self._active, reason="turn_detected")
            return
        item_id = self._speech_item_id or new_id("item")
        self._speech_item_id = None
        await self._send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": event.audio_ms,
                          "item_id": item_id})  # fmt: skip
        start = (self._speech_start_ms - self._buffer_start_ms) * BYTES_PER_MS
        end = (event.audio_ms - self._buffer_start_ms) * BYTES_PER_MS
        await self._commit(item_id, bytes(self._buffer[start:end]), consumed=end)
        if self._turn_detection.get("create_response", True) and self._active is None:
            await self._start_response({}, by_turn_detection=True)

    async def _on_input_audio_buffer_commit(self, data: dict[str, Any]) -> None:
        if len(self._buffer) < MIN_COMMIT_MS * BYTES_PER_MS:
            raise ProtocolError(
                f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms of "
                f"audio, but buffer only has {len(self._buffer) / BYTES_PER_MS:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        await self._commit(new_id("item"), bytes(self._buffer), consumed=len(self._buffer))

    async def _on_input_audio_buffer_clear(self, data: dict[str, Any]) -> None:
        self._buffer_start_ms = self._position_ms()
        self._buffer.clear()
        await self._send({"type": "input_audio_buffer.cleared"})

    async def _commit(self, item_id: str, audio: bytes, *, consumed: int) -> None:
        """The caller's turn joins the conversation; its words are recognised meanwhile."""
        del self._buffer[:consumed]
        self._buffer_start_ms += consumed // BYTES_PER_MS
        item = Item(id=item_id, type="message", role="user", audio=audio, recognised=False)
        previous = self.conversation.insert(item, None)
        await self._send({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        await self._send({"type": "conversation.item.added", "previous_item_id": previous, "item": item.wire()})
        await self._send({"type": "conversation.item.done", "previous_item_id": previous, "item": item.wire()})
        self._recognitions[item_id] = asyncio.create_task(self._recognise(item), name=f"recognise-{item_id}")

    async def _recognise(self, item: Item) -> None:
        vocabulary = self._parts.vocabulary(business_name(self.config.get("instructions") or ""))
        try:
            recogniser = await asyncio.to_thread(self._parts.recogniser, vocabulary)
            item.text = await asyncio.to_thread(recogniser.transcribe, item.audio)
        except Exception as error:
            log.exception("session %s: recognising %s failed", self.id, item.id)
            item.recognised = True  # heard as nothing: the answer says so
            failure = {"type": "server_error", "code": None, "message": type(error).__name__, "param": None}
            await self._send({"type": "conversation.item.input_audio_transcription.failed", "item_id": item.id,
                              "content_index": 0, "error": failure})  # fmt: skip
            return
        item.recognised = True
        log.debug("session %s: heard %r", self.id, item.text)
        if self.config["audio"]["input"].get("transcription") is not None:
            await self._send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item.id,
                              "content_index": 0, "transcript": item.text,
                              "usage": {"type": "duration", "seconds": len(item.audio) / 8000}})  # fmt: skip

    # ---- the conversation --------------------------------------------------------------------------------------

    async def _on_conversation_item_create(self, data: dict[str, Any]) -> None:
        sent: dict[str, Any] = data["item"]
        previous = data.get("previous_item_id")
        if previous not in {None, "root"} and self.conversation.find(previous) is None:
            raise ProtocolError(
                f"Previous item with id '{previous}' does not exist.", code="invalid_value", param="previous_item_id"
            )
        if sent.get("id") and self.conversation.find(sent["id"]) is not None:
            raise ProtocolError(f"Item with id '{sent['id']}' already exists.", code="invalid_value", param="item.id")
        if sent["type"] not in {"message", "function_call", "function_call_output"}:
            raise ProtocolError(
                f"Item type '{sent['type']}' cannot be created here.", code="invalid_value", param="item.type"
            )
        if sent["type"] == "function_call_output" and sent["call_id"] not in self.conversation.call_ids():
            raise ProtocolError(
                f"Tool call ID '{sent['call_id']}' not found in conversation.",
                code="invalid_value",
                param="item.call_id",
            )
        item = Item.from_client(sent)
        anchor = self.conversation.insert(item, previous)
        await self._send({"type": "conversation.item.added", "previous_item_id": anchor, "item": item.wire()})
        await self._send({"type": "conversation.item.done", "previous_item_id": anchor, "item": item.wire()})

    def _require_item(self, item_id: str) -> Item:
        item = self.conversation.find(item_id)
        if item is None:
            raise ProtocolError(
                f"Conversation item with id '{item_id}' does not exist.", code="invalid_value", param="item_id"
            )
        return item

    async def _on_conversation_item_delete(self, data: dict[str, Any]) -> None:
        item = self._require_item(data["item_id"])
        self.conversation.items.remove(item)
        await self._send({"type": "conversation.item.deleted", "item_id": item.id})

    async def _on_conversation_item_retrieve(self, data: dict[str, Any]) -> None:
        item = self._require_item(data["item_id"])
        await self._send({"type": "conversation.item.retrieved", "item": item.wire()})

    async def _on_conversation_item_truncate(self, data: dict[str, Any]) -> None:
        item = self._require_item(data["item_id"])
        audio_end_ms: int = data["audio_end_ms"]
        if not item.spoken:
            raise ProtocolError(
                "Only assistant messages with audio content can be truncated.", code="invalid_value", param="item_id"
            )
        if data["content_index"] != 0:
            raise ProtocolError("The item has no such content part.", code="invalid_value", param="content_index")
        if not 0 <= audio_end_ms <= item.audio_ms:
            raise ProtocolError(
                f"Audio content of {item.audio_ms}ms is already shorter than {audio_end_ms}ms",
                code="invalid_value",
                param="audio_end_ms",
            )
        # The model's memory keeps what the caller heard: the words up to the cut, in proportion.
        words = item.text.split()
        total_ms = max(1, len(item.audio) // BYTES_PER_MS)
        item.text = " ".join(words[: len(words) * audio_end_ms // total_ms])
        item.truncated_ms = audio_end_ms
        await self._send({"type": "conversation.item.truncated", "item_id": item.id, "content_index": 0,
                          "audio_end_ms": audio_end_ms})  # fmt: skip

    async def _on_output_audio_buffer_clear(self, data: dict[str, Any]) -> None:
        raise ProtocolError(
            "output_audio_buffer.clear is only supported for WebRTC and SIP connections; over WebSocket use "
            "response.cancel and conversation.item.truncate.",
            code="invalid_value",
            param="type",
        )

    # ---- responses ---------------------------------------------------------------------------------------------

    async def _on_response_create(self, data: dict[str, Any]) -> None:
        params: dict[str, Any] = data.get("response") or {}
        if params.get("conversation", "auto") != "none" and self._active is not None:
            raise ProtocolError(
                f"Conversation already has an active response in progress: {self._active.id}. Wait until the "
                "response is finished before creating a new one.",
                code="conversation_already_has_active_response",
            )
        await self._start_response(params)

    async def _on_response_cancel(self, data: dict[str, Any]) -> None:
        wanted = data.get("response_id")
        target = (next((r for r in self._running if r.id == wanted), None) if wanted is not None else self._active) or (
            self._running[-1] if self._running and wanted is None else None
        )
        if target is None or target.cancelled:
            raise ProtocolError("Cancellation failed: no active response found", code="response_cancel_not_active")
        await self._cancel(target, reason="client_cancelled")

    async def _cancel(self, response: Response, *, reason: str) -> None:
        if response.cancelled:
            return
        response.cancelled, response.cancel_reason = True, reason
        if response.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(response.task)

    def _output_wire(self, response: Response, status: str, details: Any = None) -> dict[str, Any]:
        output = self.config["audio"]["output"]
        return response.wire(status, voice=output["voice"], output_format=output["format"], details=details)

    async def _start_response(self, params: dict[str, Any], *, by_turn_detection: bool = False) -> None:
        in_conversation = params.get("conversation", "auto") != "none"
        response = Response(
            id=new_id("resp"),
            in_conversation=in_conversation,
            metadata=params.get("metadata"),
            send=self._send,
            by_turn_detection=by_turn_detection,
            conversation_id=self.conversation_id if in_conversation else None,
        )
        self._running.append(response)
        if in_conversation:
            self._active = response
        await self._send({"type": "response.created", "response": self._output_wire(response, "in_progress")})
        response.task = asyncio.create_task(self._play(response, params), name=f"voice-model-{response.id}")

    async def _play(self, response: Response, params: dict[str, Any]) -> None:
        writer = ResponseWriter(response, self.conversation)
        status: str = "completed"
        details: dict[str, Any] | None = None
        try:
            reply = await self._decide(response, params)
            if response.cancelled:
                raise ResponseCancelled
            if reply.speech:
                voice = self._parts.voice(self.config["audio"]["output"]["voice"])
                audio = await asyncio.to_thread(self._parts.synthesizer().speak, reply.speech, voice)
                self._assistant_audio_sent = True
                await writer.speak(reply.speech, audio)
            if reply.tool:
                await writer.call(reply.tool, reply.arguments)
        except ResponseCancelled:
            status, details = "cancelled", {"type": "cancelled", "reason": response.cancel_reason}
            await writer.close_cancelled()
        except Exception:
            log.exception("session %s: response %s failed", self.id, response.id)
            status, details = "failed", {"type": "failed", "error": {"type": "server_error", "code": None}}
        if self._active is response:
            self._active = None
        if response in self._running:
            self._running.remove(response)
        await self._send({"type": "response.done", "response": self._output_wire(response, status, details)})

    async def _decide(self, response: Response, params: dict[str, Any]) -> Reply:
        """What this response does: words it was told to say, else the intent layer's answer to the conversation
        (once every caller turn in it has been recognised)."""
        session_instructions: str = self.config.get("instructions") or ""
        instructions: str = params.get("instructions") or session_instructions
        said = verbatim(params["instructions"]) if params.get("instructions") else None
        if response.in_conversation:
            pending = [task for task in self._recognitions.values() if not task.done()]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            items = list(self.conversation.items)
        else:
            items = [
                Item.from_client(sent) for sent in params.get("input") or [] if sent.get("type") != "item_reference"
            ]
        response.count_input(instructions, items)
        if said:
            log.info("session %s: the local stand-in says as told: %r", self.id, said[:120])
            return Reply(speech=said)
        tools = params.get("tools", self.config.get("tools")) or []
        context = Context(
            instructions=instructions,
            tools=frozenset(tool.get("name", "") for tool in tools),
            turns=self.conversation.turns(items),
            today=infer_today(session_instructions, datetime.now(UTC)),
        )
        return respond(context)
