"""The greeting, fast: rendered once by the model in the configured voice, kept in memory, played from memory the
moment a call is admitted (no model round trip), while the call's own model session gets ready in parallel.

The call's conversation is then seeded with an assistant message holding the words the caller heard, so the model
knows it greeted. With a cold cache (the model was unreachable at start-up) the call asks its model to greet instead.

The filler ("One moment, please.", FILLER_PHRASE) is rendered the same way: a call whose model session is being
restored plays it from memory, since the model is exactly what it cannot ask then.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callcore.models import CallDirection
from relay import realtime
from relay.realtime import RealtimeConnectError, RealtimeConnection
from relay.settings import RelaySettings

log = logging.getLogger(__name__)

Connector = Callable[[], Awaitable[RealtimeConnection]]

CHUNK_BYTES = 800  # 100 ms of pcmu per media frame + mark: fine-grained enough for exact barge-in
RENDER_INSTRUCTIONS = "You read text aloud exactly as written, warmly and naturally, and say nothing else."


@dataclass(frozen=True)
class RenderedGreeting:
    text: str
    chunks: tuple[str, ...]  # base64 pcmu, CHUNK_BYTES each (the last may be shorter)
    audio_bytes: int

    @property
    def duration_ms(self) -> int:
        return self.audio_bytes // 8


def greeting_text(settings: RelaySettings, direction: CallDirection) -> str:
    template = settings.greeting_outbound if direction is CallDirection.OUTBOUND else settings.greeting_inbound
    text = template.format(business_name=settings.business_name)
    if settings.recording_enabled:
        text = f"{settings.recording_announcement} {text}"
    return text


def chunk_audio(audio: bytes, size: int = CHUNK_BYTES) -> tuple[str, ...]:
    return tuple(base64.b64encode(audio[i : i + size]).decode("ascii") for i in range(0, len(audio), size))


FILLER = "filler"
Phrase = CallDirection | str  # a greeting by the call's direction, or FILLER


class GreetingCache:
    def __init__(self, settings: RelaySettings) -> None:
        self._settings = settings
        self._rendered: dict[Phrase, RenderedGreeting] = {}
        self._phrases: tuple[Phrase, ...] = (*CallDirection, FILLER)
        self.ready = asyncio.Event()  # every phrase is rendered

    def text_for(self, phrase: Phrase) -> str:
        if phrase == FILLER:
            return self._settings.filler_phrase
        return greeting_text(self._settings, CallDirection(phrase))

    def get(self, direction: CallDirection) -> RenderedGreeting | None:
        return self._rendered.get(direction)

    def filler(self) -> RenderedGreeting | None:
        return self._rendered.get(FILLER)

    def put(self, phrase: Phrase, greeting: RenderedGreeting) -> None:
        self._rendered[phrase] = greeting
        if len(self._rendered) == len(self._phrases):
            self.ready.set()

    @property
    def missing(self) -> list[str]:
        return [str(phrase) for phrase in self._phrases if phrase not in self._rendered]

    async def run(self, connect: Connector, *, response_timeout: float = 30.0) -> None:
        """Render every variant, retrying with backoff until done (calls greet live meanwhile)."""
        backoff = 2.0
        while not self.ready.is_set():
            try:
                await self.render(connect, response_timeout=response_timeout)
            except (RealtimeConnectError, GreetingRenderError, TimeoutError) as error:
                log.warning("greeting cache: %s; retrying in %.0f s (calls greet live meanwhile)", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 300.0)

    async def render(self, connect: Connector, *, response_timeout: float) -> None:
        connection = await connect()
        try:
            await connection.send(
                realtime.session_update(
                    {
                        "type": "realtime",
                        "instructions": RENDER_INSTRUCTIONS,
                        "output_modalities": ["audio"],
                        "audio": {
                            "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None},
                            "output": {"format": {"type": "audio/pcmu"}, "voice": self._settings.openai_voice},
                        },
                    }
                )
            )
            for phrase in self._phrases:
                if phrase in self._rendered:
                    continue
                text = self.text_for(phrase)
                async with asyncio.timeout(response_timeout):
                    audio = await _speak(connection, text)
                self.put(phrase, RenderedGreeting(text=text, chunks=chunk_audio(audio), audio_bytes=len(audio)))
                log.info("greeting cache: %s rendered (%d ms)", phrase, len(audio) // 8)
        finally:
            await connection.close(self._settings.close_timeout_seconds)


class GreetingRenderError(Exception):
    pass


async def _speak(connection: RealtimeConnection, text: str) -> bytes:
    if not await connection.send(realtime.out_of_band_speech(text)):
        raise GreetingRenderError("model socket closed before the greeting was requested")
    audio = bytearray()
    while True:
        event = await connection.receive()
        if event is None:
            raise GreetingRenderError("model socket closed while rendering the greeting")
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            audio += base64.b64decode(event.get("delta", ""))
        elif kind == "error":
            raise GreetingRenderError(f"model error: {(event.get('error') or {}).get('message')}")
        elif kind == "response.done":
            status = (event.get("response") or {}).get("status")
            if status != "completed" or not audio:
                raise GreetingRenderError(f"greeting response ended {status} with {len(audio)} bytes of audio")
            return bytes(audio)
