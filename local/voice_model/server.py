"""The stand-in's WebSocket endpoint, as the relay reaches OpenAI's: `ws://127.0.0.1:PORT/v1/realtime?model=...`
with `Authorization: Bearer <key>`, one session per connection. It binds to loopback only."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

from local.voice_model.grammar import Vocabulary
from local.voice_model.recognition import Recogniser, recogniser_for
from local.voice_model.session import VoiceSession
from local.voice_model.synthesis import Synthesizer, Voice, synthesizer

log = logging.getLogger("local.voice_model")

REALTIME_PATH = "/v1/realtime"
DEFAULT_MODEL = "gpt-realtime"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# OpenAI's voices, each given an espeak-ng voice of the same register, so the voice setting still means something.
AGENT_VOICES = {
    "marin": Voice("en-us+f2"),
    "cedar": Voice("en-us+m3"),
    "alloy": Voice("en-us+f4"),
    "ash": Voice("en-us+m1"),
    "ballad": Voice("en-us+m4"),
    "coral": Voice("en-us+f3"),
    "echo": Voice("en-us+m2"),
    "sage": Voice("en-us+f1"),
    "shimmer": Voice("en-us+f4", pitch=60),
    "verse": Voice("en-us+m7"),
}


@dataclass
class SpeechParts:
    """The offline parts a session speaks and listens with."""

    voices: dict[str, Voice] = field(default_factory=lambda: dict(AGENT_VOICES))

    def voice(self, openai_voice: str) -> Voice:
        return self.voices.get(openai_voice, self.voices["marin"])

    @staticmethod
    def synthesizer() -> Synthesizer:
        return synthesizer()

    @staticmethod
    def vocabulary(business_name: str | None) -> Vocabulary:
        return Vocabulary(business_name=business_name)

    @staticmethod
    def recogniser(vocabulary: Vocabulary) -> Recogniser:
        return recogniser_for(vocabulary)


class VoiceModelServer:
    """`url` for the relay's OPENAI_REALTIME_URL. Any bearer key is accepted: this server holds no account."""

    def __init__(self, *, parts: SpeechParts | None = None) -> None:
        self.parts = parts or SpeechParts()
        self.url = ""
        self.sessions: list[VoiceSession] = []
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> VoiceModelServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(REALTIME_PATH, self._upgrade)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}{REALTIME_PATH}?model={DEFAULT_MODEL}"
        # A warning on purpose: whoever reads the log must know the voice on the line is not OpenAI's model.
        log.warning(
            "local stand-in voice model at %s: offline speech recognition (pocketsphinx) and synthesis (espeak-ng) "
            "with a few receptionist rules; not OpenAI, not a language model",
            self.url,
        )

    async def close(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _refuse(status: int, message: str, code: str) -> web.Response:
        body = {"error": {"message": message, "type": "invalid_request_error", "code": code, "param": None}}
        return web.json_response(body, status=status)

    async def _upgrade(self, request: web.Request) -> web.StreamResponse:
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or not authorization.removeprefix("Bearer ").strip():
            return self._refuse(401, "You didn't provide an API key.", "invalid_api_key")
        if "OpenAI-Beta" in request.headers:
            return self._refuse(400, "The beta Realtime API is shut down: use the GA interface.", "beta_api_shutdown")
        model = request.query.get("model")
        if not model:
            return self._refuse(400, "Missing required parameter: 'model'.", "missing_required_parameter")
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=MAX_MESSAGE_BYTES)
        if not ws.can_prepare(request).ok:
            return self._refuse(400, "Expected a WebSocket upgrade request.", "invalid_request")
        await ws.prepare(request)
        session = VoiceSession(ws, model=model, parts=self.parts)
        self.sessions.append(session)
        await session.run()
        return ws
