"""The relay's stop budget, in one place: what happens between SIGTERM and SIGKILL, and how long each step may take.

ECS sends SIGTERM, then SIGKILL `stopTimeout` seconds later (120 s: Fargate's maximum, which the task definition
uses). In between, in this order:

1. drain: live calls go on, `/healthz` answers 503, new streams are refused (DRAIN_TIMEOUT_SECONDS);
2. hand-over: every call still live is handed over at once. The relay closes its stream and Twilio runs the TwiML
   after `<Connect>`, which dials the human line; an agent's own transfer already under way is waited for first, up
   to HAND_OVER_SECONDS, so the human line never rings twice;
3. each call's teardown: both sockets closed (CLOSE_TIMEOUT_SECONDS), then its transcript and record written
   (FINAL_WRITES_SECONDS), all calls concurrently;
4. aiohttp's own `shutdown_timeout` for the request handlers, which have nothing left to do by then
   (SERVER_SHUTDOWN_SECONDS);
5. the process's resources: the warm model sessions closed (CLOSE_TIMEOUT_SECONDS);

plus a margin. `RelaySettings` refuses a DRAIN_TIMEOUT_SECONDS that would not leave room for steps 2-5, and the CDK
stack takes the stop timeout and the default drain from here.
"""

from __future__ import annotations

from typing import Final

CONTAINER_STOP_TIMEOUT_SECONDS: Final = 120
DEFAULT_CLOSE_TIMEOUT_SECONDS: Final = 1.0
HAND_OVER_SECONDS: Final = 5.0
FINAL_WRITES_SECONDS: Final = 10.0
SERVER_SHUTDOWN_SECONDS: Final = 2.0
MARGIN_SECONDS: Final = 3.0


def after_drain_seconds(close_timeout: float) -> float:
    """Steps 2-5 and the margin: what must still fit after the drain."""
    teardown = close_timeout + FINAL_WRITES_SECONDS
    return HAND_OVER_SECONDS + teardown + SERVER_SHUTDOWN_SECONDS + close_timeout + MARGIN_SECONDS


def max_drain_seconds(close_timeout: float) -> float:
    return CONTAINER_STOP_TIMEOUT_SECONDS - after_drain_seconds(close_timeout)


DEFAULT_DRAIN_TIMEOUT_SECONDS: Final = max_drain_seconds(DEFAULT_CLOSE_TIMEOUT_SECONDS)
