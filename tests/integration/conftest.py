"""Fixtures every integration test may share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.moto_endpoint import moto_endpoint as serve_moto


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """AWS on a moto server on loopback, reached through AWS_ENDPOINT_URL as production reaches AWS. One
    server for the session: tests keep apart by naming their resources uniquely."""
    with serve_moto() as endpoint:
        yield endpoint
