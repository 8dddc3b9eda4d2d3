"""A moto server on loopback that handles one request at a time: AWS for the local call, the benchmarks and the
integration tests, reached through boto3's `AWS_ENDPOINT_URL` as production reaches AWS.

moto's `ThreadedMotoServer` serves each request on a thread of its own, but moto's backends are not thread-safe:
under concurrent calls (the load benchmark admits a hundred within seconds) a DynamoDB transaction deep-copies an
item while another thread changes it, and the request fails with "dictionary changed size during iteration" - an
error no real DynamoDB gives. Serialising the requests is what a single-table backend needs; connections are still
accepted and read concurrently.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class OneRequestAtATime:
    """WSGI middleware: the wrapped app runs for one request at a time, its whole response read under the lock."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """`http://127.0.0.1:PORT` of a fresh moto server (its data gone when the block ends)."""
    app = OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        thread.join()
