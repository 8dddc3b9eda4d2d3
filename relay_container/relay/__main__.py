"""`python -m relay`: read the settings (exit 2 naming each bad one), serve on PORT, drain on SIGTERM.

Draining: /healthz answers 503 so the load balancer stops routing, new streams are refused, live calls continue
until they end or DRAIN_TIMEOUT_SECONDS passes; then the app shuts down (calls still live are handed over). Every step
after SIGTERM is bounded so the whole stop fits the container's stop timeout: `relay.shutdown`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from callcore.settings import SettingsError
from relay import logs
from relay.app import create_app, start_draining, wait_for_calls
from relay.settings import RelaySettings
from relay.shutdown import SERVER_SHUTDOWN_SECONDS

log = logging.getLogger("relay")


def configure_logging(settings: RelaySettings) -> None:
    """JSON lines on stderr (stdout carries the EMF metric documents): `relay.logs`."""
    logs.configure(settings.log_level.value)


async def serve(settings: RelaySettings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SERVER_SHUTDOWN_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=settings.port)  # noqa: S104 - the container's only interface
    await site.start()
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
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
