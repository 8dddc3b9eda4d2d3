"""`python -m relay`: read the settings (exit 2 naming each bad one), serve on PORT, drain on SIGTERM.

Draining: /healthz answers 503 so the load balancer stops routing, new streams are refused, live calls continue
until they end or DRAIN_TIMEOUT_SECONDS passes; then the app shuts down (calls still live are handed over). Every step
after SIGTERM is bounded so the whole stop fits the container's stop timeout: `relay.shutdown`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from callcore.settings import SettingsError
from relay import logs
from relay.app import create_app, start_draining, wait_for_calls
from relay.settings import RelaySettings
from relay.shutdown import SERVER_SHUTDOWN_SECONDS

log = logging.getLogger("relay")
T = TypeVar("T")


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (the image installs it): its transports write and read frames at a fraction
    of the pure-Python selector loop's cost, which is most of the relay's CPU per message. None: asyncio's own."""
    try:
        import uvloop  # noqa: PLC0415 - optional: the relay runs on asyncio's loop without it
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)


def configure_logging(settings: RelaySettings) -> None:
    """JSON lines on stderr (stdout carries the EMF metric documents): `relay.logs`."""
    logs.configure(settings.log_level.value)


async def serve(settings: RelaySettings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SERVER_SHUTDOWN_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=settings.port)  # noqa: S104 - the container's only interface
    await site.start()
    # Everything allocated so far lives as long as the process: the collector never needs to walk it again.
    gc.collect()
    gc.freeze()
    log.info("relay listening on :%d", settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        start_draining(app)
        if not await wait_for_calls(app, settings.drain_timeout_seconds):
            log.warning("drain timeout: shutting down with live calls")
    finally:
        await runner.cleanup()
    log.info("relay stopped")


def main() -> int:
    try:
        settings = RelaySettings.from_env()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    configure_logging(settings)
    run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
