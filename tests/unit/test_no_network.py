"""The unit tier's guard holds: for tests, and for the module-level fixtures they use."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketBlockedError

# pytest-socket warns each time it blocks something; blocking is what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket")


@pytest.fixture(scope="module")
def module_level_connection_attempt() -> type[BaseException] | None:
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)
    except BaseException as error:
        return type(error)
    return None


def test_a_unit_test_cannot_open_an_inet_socket():
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_nor_can_a_module_level_fixture(module_level_connection_attempt: type[BaseException] | None):
    assert module_level_connection_attempt is SocketBlockedError


def test_unix_sockets_stay_available_for_the_event_loop():
    left, right = socket.socketpair()
    left.close()
    right.close()
