"""A warm pool of ready model sessions (connected, `session.created` seen, base `session.update` sent), so a call
never waits for the model's handshake. The call then sends only its own instructions (a partial `session.update`).

Idle sessions are replaced before they get old (OpenAI ends a session after 60 minutes) and when the server closes
them. The pool refills in its own background task; `acquire` never waits for a refill, it connects directly when the
pool is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from relay.realtime import RealtimeConnectError, RealtimeConnection

log = logging.getLogger(__name__)

SessionOpener = Callable[[], Awaitable[RealtimeConnection]]


class ModelSessionPool:
    def __init__(
        self,
        open_session: SessionOpener,
        *,
        size: int,
        max_age_seconds: float,
        close_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open = open_session
        self.size = size
        self._max_age = max_age_seconds
        self._close_timeout = close_timeout
        self._clock = clock
        self._ready: deque[RealtimeConnection] = deque()
        self._wake = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()
        self.filled = asyncio.Event()  # the pool has held `size` ready sessions (start-up readiness waits for it)

    @property
    def ready_count(self) -> int:
        return sum(1 for connection in self._ready if connection.alive)

    async def acquire(self) -> RealtimeConnection:
        """A warm session when one is ready, else a freshly opened one (raises RealtimeConnectError)."""
        while self._ready:
            connection = self._ready.popleft()
            if connection.alive and self._clock() - connection.opened_at < self._max_age:
                self._wake.set()
                return connection
            self._discard(connection)
        self._wake.set()
        return await self._open()

    async def run(self) -> None:
        """Keep `size` sessions ready until cancelled. Failures back off exponentially (1 s .. 60 s)."""
        backoff = 1.0
        while True:
            self._prune()
            if len(self._ready) >= self.size:
                self.filled.set()
            else:
                try:
                    self._ready.append(await self._open())
                except RealtimeConnectError as error:
                    log.warning("warm pool: %s; retrying in %.0f s", error, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
                else:
                    backoff = 1.0
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._wake.wait()

    async def close(self) -> None:
        connections = list(self._ready)
        self._ready.clear()
        await asyncio.gather(*(c.close(self._close_timeout) for c in connections), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _prune(self) -> None:
        now = self._clock()
        for connection in list(self._ready):
            if not connection.alive or now - connection.opened_at >= self._max_age:
                self._ready.remove(connection)
                self._discard(connection)

    def _discard(self, connection: RealtimeConnection) -> None:
        task = asyncio.create_task(connection.close(self._close_timeout))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
