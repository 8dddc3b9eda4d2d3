"""TaskProtection against a fake ECS agent endpoint on 127.0.0.1: the exact request sequence."""

from __future__ import annotations

import asyncio
import functools
import io

import aiohttp
from aiohttp import web

from relay.metrics import RelayMetrics
from relay.task_protection import STATE_PATH, TaskProtection

from .conftest import FakePeer, eventually, json_reply

PROTECTED = {"protection": {"ProtectionEnabled": True, "ExpirationDate": "2030-06-04T15:12:00Z", "TaskArn": "arn"}}
ENABLE = {"ProtectionEnabled": True, "ExpiresInMinutes": 60}
DISABLE = {"ProtectionEnabled": False}


def has_requests(peer: FakePeer, count: int) -> bool:
    return len(peer.received) >= count


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def agent(aiohttp_server, peer: FakePeer) -> str:
    app = web.Application()
    app.router.add_put(STATE_PATH, peer.handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


async def test_protect_renew_release_sequence(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer([json_reply(PROTECTED)])
    clock = FakeClock()
    protection = TaskProtection(await agent(aiohttp_server, peer), http, expires_minutes=60, clock=clock)

    await protection.on_active_calls(1)  # protect
    await protection.on_active_calls(2)  # already protected, lease fresh: nothing
    clock.now += 29 * 60
    await protection.on_active_calls(3)  # still within half the lease: nothing
    clock.now += 2 * 60
    await protection.on_active_calls(2)  # past half the lease: renew
    await protection.on_active_calls(0)  # release
    await protection.on_active_calls(0)  # already released: nothing

    assert [r.json() for r in peer.received] == [ENABLE, ENABLE, DISABLE]
    assert all(r.method == "PUT" and r.path == STATE_PATH for r in peer.received)
    assert not protection.protected


async def test_renewer_keeps_the_lease_while_calls_last(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer([json_reply(PROTECTED)])
    clock = FakeClock()
    protection = TaskProtection(
        await agent(aiohttp_server, peer), http, expires_minutes=1, clock=clock, check_interval_seconds=0.001
    )
    renewer = asyncio.create_task(protection.run_renewer())
    try:
        await protection.on_active_calls(1)
        for renewals in (2, 3):
            clock.now += 31  # past half of the 1-minute lease
            await eventually(functools.partial(has_requests, peer, renewals))
        clock.now += 10  # not yet due again: no more requests however often the renewer checks
        await asyncio.sleep(0.02)  # many renewer checks at a 1 ms interval
        await protection.on_active_calls(0)
    finally:
        renewer.cancel()
    assert [r.json() for r in peer.received] == [{"ProtectionEnabled": True, "ExpiresInMinutes": 1}] * 3 + [DISABLE]


async def test_renewer_retries_a_failed_protect(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer([json_reply({}, 503), json_reply(PROTECTED)])
    protection = TaskProtection(
        await agent(aiohttp_server, peer), http, expires_minutes=60, clock=FakeClock(), check_interval_seconds=0.001
    )
    await protection.on_active_calls(1)
    refused = protection.protected
    renewer = asyncio.create_task(protection.run_renewer())
    try:
        await eventually(lambda: protection.protected)
    finally:
        renewer.cancel()
    assert not refused
    assert [r.json() for r in peer.received] == [ENABLE, ENABLE]


async def test_failure_is_logged_and_retried_on_the_next_change(
    aiohttp_server, http: aiohttp.ClientSession, caplog
) -> None:
    peer = FakePeer(
        [
            json_reply({"error": {"Code": "ServerException", "Message": "agent busy"}}, 500),
            json_reply({"failure": {"Arn": "arn", "Reason": "TASK_NOT_VALID"}}),
            json_reply(PROTECTED),
        ]
    )
    protection = TaskProtection(await agent(aiohttp_server, peer), http, expires_minutes=60, clock=FakeClock())
    states = []
    for _ in range(3):
        await protection.on_active_calls(1)
        states.append(protection.protected)
    assert states == [False, False, True]
    assert len(peer.received) == 3
    assert "task protection update refused (500)" in caplog.text
    assert "TASK_NOT_VALID" in caplog.text


async def test_unreachable_agent_never_raises(http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    protection = TaskProtection(f"http://127.0.0.1:{unused_tcp_port}", http, expires_minutes=60)
    await protection.on_active_calls(1)
    assert not protection.protected


async def test_wired_to_metrics_bursts_settle_on_the_final_state(aiohttp_server, http: aiohttp.ClientSession) -> None:
    peer = FakePeer([json_reply(PROTECTED)])
    peer.delay = 0.01  # slow agent: the changes below overlap
    protection = TaskProtection(await agent(aiohttp_server, peer), http, expires_minutes=60, clock=FakeClock())
    metrics = RelayMetrics("PhoneVoiceAgent", stream=io.StringIO())
    metrics.add_listener(protection.on_active_calls)
    metrics.call_started()
    metrics.call_ended()
    metrics.call_started()
    await metrics.drain_listeners()
    assert protection.protected
    assert peer.received[-1].json() == ENABLE
    metrics.call_ended()
    await metrics.drain_listeners()
    assert peer.received[-1].json() == DISABLE
    assert not protection.protected
