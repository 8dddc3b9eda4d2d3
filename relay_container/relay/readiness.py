"""Start-up readiness: a relay task takes calls only once it can greet at once.

`/healthz` (what the load balancer checks) answers 200 only when the task can serve a call at its best: the greetings
and the filler it will play are rendered, the warm model pool holds its sessions, the call table answered once. Until
then it answers 503 and names what it still waits for. READINESS_DEADLINE_SECONDS bounds the wait: at the deadline
the task is ready anyway, whatever is missing (a model outage must not keep the fleet from taking calls; those calls
greet live or fail over), and a log line and the ReadyAtDeadline metric say so.

Readiness is latched: once ready, a task stays ready (a pool emptied by a burst of calls refills on its own, and a
task the balancer saw failing after its grace period would be replaced with its calls on it). Draining is separate
and answers its own 503. Liveness (`/livez`, the container's own health check) is true while the process serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from callcore.metric_names import RelayMetric
from relay.metrics import RelayMetrics

log = logging.getLogger(__name__)

PROBE_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class Condition:
    """Something a call needs to be served at its best, by name (what `/healthz` says it waits for), set once met."""

    name: str
    met: asyncio.Event


class Readiness:
    def __init__(self, conditions: list[Condition], *, deadline_seconds: float, metrics: RelayMetrics) -> None:
        self._conditions = conditions
        self._deadline = deadline_seconds
        self._metrics = metrics
        self.ready = asyncio.Event()
        self.at_deadline = False
        self.missing_at_deadline: list[str] = []

    @property
    def waiting_for(self) -> list[str]:
        return [] if self.ready.is_set() else [c.name for c in self._conditions if not c.met.is_set()]

    async def run(self) -> None:
        """Until ready: every condition met, or the deadline passed."""
        try:
            async with asyncio.timeout(self._deadline):
                for condition in self._conditions:
                    await condition.met.wait()
        except TimeoutError:
            self.at_deadline = True
            self.missing_at_deadline = self.waiting_for
            log.warning(
                "ready at the READINESS_DEADLINE_SECONDS deadline (%g s) without %s: calls greet live or fail over "
                "until they are",
                self._deadline,
                ", ".join(self.missing_at_deadline),
            )
            self._metrics.record(RelayMetric.READY_AT_DEADLINE, 1, "Count")
        else:
            log.info("ready: greetings rendered, model pool full, call table answered")
        self.ready.set()


@dataclass
class Probe:
    """A condition met once `attempt` has succeeded once (retried every PROBE_RETRY_SECONDS until then)."""

    name: str
    attempt: Callable[[], Awaitable[object]]
    succeeded: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def condition(self) -> Condition:
        return Condition(self.name, self.succeeded)

    async def run(self) -> None:
        while True:
            try:
                await self.attempt()
            except Exception as error:
                log.warning("%s not reachable yet (%s); retrying", self.name, type(error).__name__)
                await asyncio.sleep(PROBE_RETRY_SECONDS)
                continue
            self.succeeded.set()
            return
