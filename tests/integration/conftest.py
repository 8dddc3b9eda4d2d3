"""Fixtures every integration test may share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """AWS on a threaded moto server on loopback, reached through AWS_ENDPOINT_URL as production reaches AWS. One
    server for the session: tests keep apart by naming their resources uniquely."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
