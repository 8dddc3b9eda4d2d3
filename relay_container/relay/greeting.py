"""The greeting, fast: rendered once by the model in the line's voice (per profile version and voice), kept in
memory, played from memory the moment a call is admitted (no model round trip), while the call's own model session
gets ready in parallel.

The call's conversation is then seeded with an assistant message holding the words the caller heard, so the model
knows it greeted. With a cold cache (the model was unreachable at start-up, or a profile version's first call on
this process) the call asks its model to greet instead.

The filler ("One moment, please.", FILLER_PHRASE) is rendered the same way: a call whose model session is being
restored plays it from memory, since the model is exactly what it cannot ask then.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from callcore.models import CallDirection
from relay import realtime
from relay.line import LineSettings
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


def greeting_text(line: LineSettings, direction: CallDirection) -> str:
    template = line.greeting_outbound if direction is CallDirection.OUTBOUND else line.greeting_inbound
    text = template.format(business_name=line.business_name)
    if line.recording_announcement:
        text = f"{line.recording_announcement} {text}"
    return text


def chunk_audio(audio: bytes, size: int = CHUNK_BYTES) -> tuple[str, ...]:
    return tuple(base64.b64encode(audio[i : i + size]).decode("ascii") for i in range(0, len(audio), size))


FILLER = "filler"
Phrase = CallDirection | str  # a greeting by the call's direction, or FILLER
PHRASES: tuple[Phrase, ...] = (*CallDirection, FILLER)
GreetingKey = tuple[str, str, str]  # (profile id, version, voice): a profile's greetings in its own voice


def greeting_key(line: LineSettings) -> GreetingKey:
    return (*line.key, line.voice)


class GreetingCache:
    """Rendered phrases per line (profile id + version) and voice. The environment's line and the lines published
    when the process starts are rendered at start-up (what readiness waits for); a version published later on its
    first call on this process, in the background while that call greets live."""

    def __init__(self, settings: RelaySettings, default_line: LineSettings) -> None:
        self._settings = settings
        self.default_line = default_line
        self._rendered: dict[GreetingKey, dict[Phrase, RenderedGreeting]] = {}
        self._rendering: dict[GreetingKey, asyncio.Task[None]] = {}
        self.ready = asyncio.Event()  # every phrase of the lines known at start-up is rendered

    def text_for(self, phrase: Phrase, line: LineSettings | None = None) -> str:
        if phrase == FILLER:
            return self._settings.filler_phrase
        return greeting_text(line or self.default_line, CallDirection(phrase))

    def get(self, direction: CallDirection, line: LineSettings | None = None) -> RenderedGreeting | None:
        return self._rendered.get(greeting_key(line or self.default_line), {}).get(direction)

    def filler(self, line: LineSettings | None = None) -> RenderedGreeting | None:
        return self._rendered.get(greeting_key(line or self.default_line), {}).get(FILLER)

    def put(self, phrase: Phrase, greeting: RenderedGreeting, line: LineSettings | None = None) -> None:
        line = line or self.default_line
        rendered = self._rendered.setdefault(greeting_key(line), {})
        rendered[phrase] = greeting

    def _complete(self, line: LineSettings) -> bool:
        return len(self._rendered.get(greeting_key(line), {})) == len(PHRASES)

    @property
    def missing(self) -> list[str]:
        rendered = self._rendered.get(greeting_key(self.default_line), {})
        return [str(phrase) for phrase in PHRASES if phrase not in rendered]

    async def run(
        self,
        connect: Connector,
        *,
        published: Callable[[], Awaitable[Sequence[LineSettings]]] | None = None,
        response_timeout: float = 30.0,
    ) -> None:
        """Render the environment line's phrases, then those of the `published` lines, retrying with backoff until
        done (calls greet live meanwhile)."""
        await self._render_until_done(self.default_line, connect, response_timeout=response_timeout)
        for line in await published() if published is not None else ():
            await self._render_until_done(line, connect, response_timeout=response_timeout)
        self.ready.set()

    def ensure(self, line: LineSettings, connect: Connector, *, response_timeout: float = 30.0) -> None:
        """A call on `line` found its greetings missing: render them in the background for the calls after it."""
        key = greeting_key(line)
        if self._complete(line) or key in self._rendering:
            return
        task = asyncio.create_task(
            self._render_until_done(line, connect, response_timeout=response_timeout), name="greeting-cache-line"
        )
        self._rendering[key] = task
        task.add_done_callback(lambda _: self._rendering.pop(key, None))

    async def close(self) -> None:
        tasks = list(self._rendering.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _render_until_done(self, line: LineSettings, connect: Connector, *, response_timeout: float) -> None:
        backoff = 2.0
        while not self._complete(line):
            try:
                await self.render(connect, response_timeout=response_timeout, line=line)
            except (RealtimeConnectError, GreetingRenderError, TimeoutError) as error:
                log.warning("greeting cache: %s; retrying in %.0f s (calls greet live meanwhile)", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 300.0)

    async def render(self, connect: Connector, *, response_timeout: float, line: LineSettings | None = None) -> None:
        line = line or self.default_line
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
                            "output": {"format": {"type": "audio/pcmu"}, "voice": line.voice},
                        },
                    }
                )
            )
            rendered = self._rendered.get(greeting_key(line), {})
            for phrase in PHRASES:
                if phrase in rendered:
                    continue
                text = self.text_for(phrase, line)
                async with asyncio.timeout(response_timeout):
                    audio = await _speak(connection, text)
                self.put(phrase, RenderedGreeting(text=text, chunks=chunk_audio(audio), audio_bytes=len(audio)), line)
                log.info("greeting cache: %s of %s rendered (%d ms)", phrase, line.describe, len(audio) // 8)
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
