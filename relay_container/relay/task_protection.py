"""ECS task scale-in protection: a task with live calls must not be stopped by scale-in or a deployment.

    PUT $ECS_AGENT_URI/task-protection/v1/state  {"ProtectionEnabled": true, "ExpiresInMinutes": N}   calls > 0
    PUT $ECS_AGENT_URI/task-protection/v1/state  {"ProtectionEnabled": false}                          calls = 0

Protection is a lease: it lapses after N minutes, so a crashed relay cannot pin a task forever. While calls last it
is renewed at half the lease. Without ECS_AGENT_URI (local runs) this does nothing. A failure is logged and retried
on the next change or renewer tick; it never reaches a call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

STATE_PATH = "/task-protection/v1/state"
MAX_EXPIRES_MINUTES = 2880  # the agent's limit (48 hours)
DEFAULT_CHECK_INTERVAL_SECONDS = 30.0  # how soon the renewer notices a due renewal or retries a failed protect


class TaskProtection:
    def __init__(
        self,
        agent_uri: str | None,
        http: aiohttp.ClientSession,
        *,
        expires_minutes: int,
        request_timeout_seconds: float = 5.0,
        check_interval_seconds: float = DEFAULT_CHECK_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= expires_minutes <= MAX_EXPIRES_MINUTES:
            raise ValueError(f"expires_minutes must be 1..{MAX_EXPIRES_MINUTES}")
        self._url = f"{agent_uri.rstrip('/')}{STATE_PATH}" if agent_uri else None
        self._http = http
        self.expires_minutes = expires_minutes
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_seconds)
        self._clock = clock
        self._check_interval = min(check_interval_seconds, self.renew_after_seconds)
        self._calls = 0
        self._protected_at: float | None = None  # clock() of the last confirmed protect; None = not protected
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self._url is not None

    @property
    def protected(self) -> bool:
        return self._protected_at is not None

    @property
    def renew_after_seconds(self) -> float:
        return self.expires_minutes * 60 / 2

    async def on_active_calls(self, count: int) -> None:
        """Listener for RelayMetrics: protect while count > 0, release at 0."""
        self._calls = max(0, count)
        await self._reconcile()

    async def run_renewer(self) -> None:
        """Renew the lease while calls last (and retry a protect that failed), until cancelled."""
        if not self.enabled:
            return
        while True:
            await asyncio.sleep(self._check_interval)
            await self._reconcile()

    async def _reconcile(self) -> None:
        url = self._url
        if url is None:
            return
        # Serialised, and acting on the latest count rather than the one that triggered it: bursts of call
        # starts and ends settle on the right final state with no request reordering.
        async with self._lock:
            if self._calls > 0:
                due = self._protected_at is None or self._clock() - self._protected_at >= self.renew_after_seconds
                if due and await self._put(url, {"ProtectionEnabled": True, "ExpiresInMinutes": self.expires_minutes}):
                    self._protected_at = self._clock()
            elif self._protected_at is not None and await self._put(url, {"ProtectionEnabled": False}):
                self._protected_at = None

    async def _put(self, url: str, body: dict[str, Any]) -> bool:
        try:
            async with self._http.put(url, json=body, timeout=self._timeout) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.warning("task protection update failed: %s", type(error).__name__)
            return False
        try:
            answer: Any = json.loads(text)
        except ValueError:
            answer = None
        # The agent answers {"protection": {...}} on success, {"failure": ...} or {"error": ...} otherwise.
        if status != 200 or not isinstance(answer, dict) or "failure" in answer or "error" in answer:
            detail = (answer.get("failure") or answer.get("error")) if isinstance(answer, dict) else text
            logger.warning("task protection update refused (%s): %s", status, str(detail or "")[:300])
            return False
        logger.info(
            "task protection %s",
            f"enabled for {self.expires_minutes} min" if body["ProtectionEnabled"] else "released",
        )
        return True
