"""The model side of one call: a link that outlives any one OpenAI Realtime session.

* **First session**: a warm one from the pool (or a fresh one), given this call's `session.update`.
* **Reconnect**: when the session dies unexpectedly (a close, a TCP drop, `session_expired`), a new one is opened at
  once and then with jittered backoff, for at most MODEL_RECONNECT_SECONDS; a refusal that retrying cannot change
  (a wrong key) gives up at once. The new session gets the same `session.update` and the conversation so far
  (`ConversationMemory`), then the caller audio that arrived meanwhile. Giving up raises `LinkLost`: the call's
  fail-over takes over.
* **Rotation**: OpenAI ends a session at 60 minutes. Before a session is MODEL_SESSION_MAX_SECONDS old (a pooled
  session counts from its own creation) the next one is opened, configured and seeded in the background, and the call
  moves to it at a turn boundary (the owner says when), or, past the limit, at the caller's next `speech_started`.
  The old session is closed within CLOSE_TIMEOUT_SECONDS of the switch.

Caller audio goes to the live session as it arrives (`append_audio`, the hot path: one attribute test and a send).
While there is none (connecting, reconnecting, switching) it waits in a bounded backlog and is delivered first to the
next session, in order. While a rotation waits for its switch, the last second of audio is also kept and replayed to
the new session, so a caller who starts talking right at the switch is heard from their first syllable.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from callcore.metric_names import RelayMetric
from relay import realtime
from relay.conversation import ConversationMemory
from relay.line import LineSettings
from relay.metrics import RelayMetrics
from relay.model_pool import ModelSessionPool
from relay.realtime import RealtimeConnectError, RealtimeConnection, ServerEvent
from relay.settings import RelaySettings

log = logging.getLogger(__name__)

MAX_BUFFERED_CALLER_FRAMES = 500  # 10 s of 20 ms frames while no session takes them
RECENT_CALLER_FRAMES = 50  # 1 s replayed to a rotation's session: covers the onset of speech the old one heard
RECONNECT_BACKOFF_SECONDS = 0.25  # doubled each try (the first is immediate), jittered, capped below
RECONNECT_BACKOFF_CAP_SECONDS = 2.0
ROTATION_LEAD_SECONDS = 60.0  # the next session is opened this long before the age limit (a quarter of it if less)
ROTATION_RETRY_SECONDS = 5.0
BOUNDARY_POLL_SECONDS = 0.05  # while a switch waits for a turn boundary (minutes per hour of call)
CONTINUATION_NOTE = (
    "\n\nThis call is already under way on another connection: the conversation so far follows as items. Continue "
    "it naturally from where it stands; do not greet the caller again."
)
DROPPED_NOTE = " The earliest part of the conversation was left out for length; only the most recent turns are there."


class LinkLost(Exception):
    """No model session could be had within the reconnect budget, or the model refuses this relay for good."""


class SessionKind(Enum):
    FIRST = "first"
    RECONNECTED = "reconnected"
    ROTATED = "rotated"


class LinkOwner(Protocol):
    """What the link needs from the call."""

    async def session_instructions(self, kind: SessionKind) -> str: ...

    async def on_model_event(self, event: ServerEvent) -> None: ...

    async def on_audio_delta(self, event: ServerEvent) -> None:
        """A `response.output_audio.delta`: the hot path, handed on without the dispatch of other events."""

    def on_session_gone(self, *, unexpected: bool) -> None:
        """The session the call used is no longer read (lost, or replaced by a rotation)."""

    async def on_session_ready(self, kind: SessionKind) -> None:
        """A session has the call's configuration, the conversation and the buffered caller audio."""

    def at_turn_boundary(self) -> bool:
        """Nobody speaks, nothing plays, no response or tool is under way: a session can be swapped unnoticed."""


@dataclass(frozen=True)
class _Session:
    connection: RealtimeConnection
    generation: int


class ModelLink:
    def __init__(
        self,
        *,
        pool: ModelSessionPool,
        settings: RelaySettings,
        line: LineSettings,
        tools: list[dict[str, Any]],
        metrics: RelayMetrics,
        memory: ConversationMemory,
        retry_first: bool = True,
    ) -> None:
        self._pool = pool
        # Retry the first session within the reconnect budget only while the caller hears something (the cached
        # greeting): with nothing to play, a caller is better handed over at once than kept in silence.
        self._retry_first = retry_first
        self._settings = settings
        self._line = line
        self._tools = tools
        self._metrics = metrics
        self._memory = memory
        self.connection: RealtimeConnection | None = None
        self.generation = -1  # of `connection`; each session the call uses gets the next number
        self._generations = 0
        self._live: RealtimeConnection | None = None  # set while the current session takes caller audio and events
        self.ready = asyncio.Event()
        self._backlog: deque[str] = deque(maxlen=MAX_BUFFERED_CALLER_FRAMES)
        self._recent: deque[str] | None = None  # kept only while a rotation waits for its switch
        self._next: _Session | None = None  # a rotation's session: configured and seeded, not yet switched to
        self._switch_on_speech = False
        self._closing = False
        self._send_lock = asyncio.Lock()  # the relay's own items go out in order, never interleaved with a seeding
        self._notes: dict[int, str] = {}  # what a session's instructions say beyond the call's (it continues a call)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.reconnects = 0
        self.rotations = 0

    # ---- caller audio and the relay's own events ------------------------------------------------------------------

    async def append_audio(self, payload: str) -> None:
        live = self._live
        if live is None:
            self._backlog.append(payload)
            return
        recent = self._recent
        if recent is not None:
            recent.append(payload)
        if not await live.send(realtime.append_audio(payload)):
            self._backlog.append(payload)  # the session died under it: the next one gets the frame

    async def send(self, event: dict[str, Any]) -> bool:
        """An event for the live session (a truncate, a response.create); False when there is none right now."""
        live = self._live
        return live is not None and await live.send(event)

    async def update_instructions(self, instructions: str) -> None:
        """New instructions for the call (e.g. the caller's history arrived late), keeping what the live session's
        own instructions add (that it continues a call)."""
        await self.send(realtime.instructions_update(instructions + self._notes.get(self.generation, "")))

    async def sync(self) -> None:
        """Give the live session what the conversation memory has that it lacks (what the relay added itself)."""
        async with self._send_lock:
            live = self._live
            if live is None:
                return  # the next session gets it with the rest of the conversation
            for event in self._memory.pending(self.generation):
                await live.send(event)

    # ---- the call's model task -------------------------------------------------------------------------------------

    async def run(self, owner: LinkOwner) -> None:
        """Serve the call until `close()`. Raises LinkLost when no session can be had."""
        first = await self._open_first()
        if first is None:
            return
        await self._adopt(first, owner, SessionKind.FIRST)
        self._spawn(self._rotate(owner), "model-rotation")
        on_event, on_audio = owner.on_model_event, owner.on_audio_delta
        while True:
            connection = self.connection
            assert connection is not None
            while (event := await connection.receive()) is not None:
                if event.get("type") == realtime.AUDIO_DELTA:  # fifty a second per call: one test, one call
                    await on_audio(event)
                else:
                    await on_event(event)
            if self._is_closing():
                return
            if self.connection is not connection:
                continue  # rotated: the next session is already current
            log.warning("model session lost (close code %s): reconnecting", connection.close_code)
            self._live = None
            self.ready.clear()
            owner.on_session_gone(unexpected=True)
            self._spawn(connection.close(self._settings.close_timeout_seconds), "model-close")
            session = await self._reconnect()
            if session is None:
                return
            self.reconnects += 1
            self._metrics.record(RelayMetric.MODEL_RECONNECTS, 1, "Count")
            await self._adopt(session, owner, SessionKind.RECONNECTED)
            log.info("model session restored (reconnect %d)", self.reconnects)

    async def _open_first(self) -> _Session | None:
        try:
            connection = await self._pool.acquire()
        except RealtimeConnectError as error:
            if error.permanent or not self._retry_first:
                raise LinkLost(str(error)) from None
            log.warning("no model session at once (%s): retrying", error)
            return await self._reconnect()
        return self._claim(connection)

    def _claim(self, connection: RealtimeConnection) -> _Session | None:
        if self._closing:
            # The call ended while the session was being opened: never leave it billing.
            self._spawn(connection.close(self._settings.close_timeout_seconds), "model-close")
            return None
        self._generations += 1
        return _Session(connection, self._generations - 1)

    async def _reconnect(self) -> _Session | None:
        """A new session within MODEL_RECONNECT_SECONDS: the first try at once, then jittered backoff."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.model_reconnect_seconds
        tries = 0
        while True:
            prepared, self._next = self._next, None
            self._recent, self._switch_on_speech = None, False  # no rotation waits any more: this replaces it
            if prepared is not None and prepared.connection.alive:
                return prepared  # a rotation had the next session ready: it only lacks what was said since
            if prepared is not None:
                self._spawn(prepared.connection.close(self._settings.close_timeout_seconds), "model-close")
            tries += 1
            try:
                async with asyncio.timeout_at(deadline):
                    return self._claim(await self._pool.acquire())
            except TimeoutError:
                raise LinkLost(f"no model session within {self._settings.model_reconnect_seconds:g} s") from None
            except RealtimeConnectError as error:
                if error.permanent:
                    raise LinkLost(str(error)) from None
                log.warning("model reconnect try %d failed: %s", tries, error)
            pause = random.uniform(0.5, 1.0) * min(  # noqa: S311 - jitter, not a secret
                RECONNECT_BACKOFF_CAP_SECONDS, RECONNECT_BACKOFF_SECONDS * 2 ** (tries - 1)
            )
            if loop.time() + pause >= deadline:
                raise LinkLost(f"no model session after {tries} tries")
            await asyncio.sleep(pause)

    async def _configure(self, session: _Session, owner: LinkOwner, kind: SessionKind) -> None:
        """The call's `session.update`, then the conversation the session lacks (everything, for a new one)."""
        instructions = await owner.session_instructions(kind)
        async with self._send_lock:
            # A rotation's session is seeded ahead of the switch with what can no longer change; the rest at the switch.
            settled_only = kind is SessionKind.ROTATED
            seed = (
                self._memory.pending(session.generation, settled_only=settled_only)
                if kind is not SessionKind.FIRST
                else []
            )
            if kind is not SessionKind.FIRST:
                dropped = self._memory.dropped(session.generation)
                self._notes[session.generation] = CONTINUATION_NOTE + (DROPPED_NOTE if dropped else "")
            instructions += self._notes.get(session.generation, "")
            config = realtime.session_config(self._settings, self._line, instructions=instructions, tools=self._tools)
            await session.connection.send(realtime.session_update(config))
            for event in seed:
                await session.connection.send(event)

    async def _adopt(self, session: _Session, owner: LinkOwner, kind: SessionKind) -> None:
        # Current before it is configured: if the call ends meanwhile, `close()` closes it.
        self.connection, self.generation = session.connection, session.generation
        await self._configure(session, owner, kind)
        await self._go_live(session.connection, first=kind is SessionKind.FIRST)
        await owner.on_session_ready(kind)

    async def _go_live(
        self, connection: RealtimeConnection, *, replay: tuple[str, ...] = (), first: bool = False
    ) -> None:
        """Deliver what the session missed (the conversation since it was seeded, the recent audio of a rotation,
        the buffered caller audio), then let caller audio flow to it directly. A later session gets the conversation
        before the audio, so a turn the audio completes lands after it; the first one has only the greeting to catch
        up on, which goes to the root of the conversation anyway, so the caller's audio goes first."""
        async with self._send_lock:
            items = self._memory.pending(self.generation)
            for event in [] if first else items:
                await connection.send(event)
            for payload in replay:
                await connection.send(realtime.append_audio(payload))
            while self._backlog:
                await connection.send(realtime.append_audio(self._backlog.popleft()))
            for event in items if first else []:
                await connection.send(event)
            self._live = connection
        self.ready.set()

    # ---- rotation --------------------------------------------------------------------------------------------------

    async def _rotate(self, owner: LinkOwner) -> None:
        limit = self._settings.model_session_max_seconds
        lead = min(ROTATION_LEAD_SECONDS, limit / 4)
        while not self._closing:
            await self.ready.wait()
            connection = self.connection
            assert connection is not None
            await asyncio.sleep(max(0.0, connection.opened_at + limit - lead - time.monotonic()))
            if self.connection is not connection or not self.ready.is_set():
                continue  # replaced meanwhile (a reconnect): count again from the new session's age
            try:
                prepared = await self._prepare_next(owner)
            except RealtimeConnectError as error:
                log.warning("next model session not opened (%s): trying again in %g s", error, ROTATION_RETRY_SECONDS)
                await asyncio.sleep(ROTATION_RETRY_SECONDS)
                continue
            if prepared is None:
                return
            await self._switch_at_boundary(owner, connection, prepared, hard_at=connection.opened_at + limit)

    async def _prepare_next(self, owner: LinkOwner) -> _Session | None:
        session = self._claim(await self._pool.acquire())
        if session is None:
            return None
        self._next = session
        self._recent = deque(maxlen=RECENT_CALLER_FRAMES)
        await self._configure(session, owner, SessionKind.ROTATED)
        return session

    async def _switch_at_boundary(
        self, owner: LinkOwner, current: RealtimeConnection, prepared: _Session, *, hard_at: float
    ) -> None:
        while self.connection is current and self._next is prepared and prepared.connection.alive:
            if owner.at_turn_boundary() and not current.has_unread_events:
                await self.switch(owner)
                return
            if time.monotonic() >= hard_at and not self._switch_on_speech:
                log.info("no turn boundary before MODEL_SESSION_MAX_SECONDS: switching at the next speech_started")
                self._switch_on_speech = True
            await asyncio.sleep(BOUNDARY_POLL_SECONDS)
        if self._next is prepared:
            # Not switched to (it closed, or a reconnect replaced the current session first): never leave it open.
            log.warning("the next model session was not used: closing it")
            self._next = self._recent = None
            self._switch_on_speech = False
            self._spawn(prepared.connection.close(self._settings.close_timeout_seconds), "model-close")

    @property
    def switching_at_next_speech(self) -> bool:
        """Past the age limit with no turn boundary: the call moves when the caller next starts speaking."""
        return self._switch_on_speech and self._next is not None

    async def switch_if_due(self, owner: LinkOwner) -> None:
        """The caller started speaking: past the age limit without a boundary, this is where the call moves."""
        if self.switching_at_next_speech:
            await self.switch(owner)

    async def switch(self, owner: LinkOwner) -> None:
        """Move the call to the prepared session now (synchronously up to the first await: no event of the old
        session is handled after this point)."""
        prepared, old = self._next, self.connection
        if prepared is None or old is None:
            return
        self._switch_on_speech = False
        self._live = None  # caller audio waits in the backlog until the new session has caught up
        self.ready.clear()
        replay = tuple(self._recent or ())
        self._recent = None
        old.detach()
        owner.on_session_gone(unexpected=False)
        self.connection, self.generation = prepared.connection, prepared.generation
        self._next = None
        self._spawn(old.close(self._settings.close_timeout_seconds), "model-close")
        await self._go_live(prepared.connection, replay=replay)
        self.rotations += 1
        self._metrics.record(RelayMetric.MODEL_ROTATIONS, 1, "Count")
        log.info("moved to a fresh model session (rotation %d)", self.rotations)
        await owner.on_session_ready(SessionKind.ROTATED)

    # ---- the end ---------------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every session of the call at once, each within CLOSE_TIMEOUT_SECONDS."""
        self._closing = True
        self._live = None
        timeout = self._settings.close_timeout_seconds
        sessions = [s for s in (self.connection, self._next.connection if self._next else None) if s is not None]
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            if not task.get_name().startswith("model-close"):
                task.cancel()
        await asyncio.gather(*(s.close(timeout) for s in sessions), *tasks, return_exceptions=True)

    def _is_closing(self) -> bool:
        return self._closing

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
