"""Unit tests cannot open a network socket (pytest-socket); AF_UNIX stays allowed because asyncio's event loop
uses a socketpair internally.

The guard goes up in each unit test's setup *before* its fixtures are built (`tryfirst`), so module- and
session-level fixtures are held to it as well; pytest-socket lifts it after every test, so the other tiers, run in
the same pytest process, keep their sockets. (This conftest's hooks apply only to tests under tests/unit.)
"""

from __future__ import annotations

import pytest
from pytest_socket import disable_socket


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    disable_socket(allow_unix_socket=True)
