from __future__ import annotations

import aiohttp
import pytest

from relay.task_protection import TaskProtection


async def test_without_an_agent_uri_nothing_is_sent() -> None:
    # Unit tests cannot open sockets: any request here would fail the test.
    async with aiohttp.ClientSession() as http:
        protection = TaskProtection(None, http, expires_minutes=60)
        assert not protection.enabled
        await protection.on_active_calls(3)
        await protection.on_active_calls(0)
        await protection.run_renewer()  # returns at once when disabled
        assert not protection.protected


async def test_lease_length_is_bounded_by_the_agent_limits() -> None:
    async with aiohttp.ClientSession() as http:
        for minutes in (0, 2881):
            with pytest.raises(ValueError, match="expires_minutes"):
                TaskProtection("http://127.0.0.1:1", http, expires_minutes=minutes)
        assert TaskProtection("http://127.0.0.1:1", http, expires_minutes=60).renew_after_seconds == 1800
