"""Unit tests cannot open a network socket (pytest-socket); AF_UNIX stays allowed because asyncio's event loop
uses a socketpair internally."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _unit_tests_have_no_network() -> Iterator[None]:
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
