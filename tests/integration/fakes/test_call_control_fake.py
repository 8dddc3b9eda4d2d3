"""The call-control stand-in keeps the contract's answers: 200 idempotent, 400 bad input, 404, 409, overrides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.call_control import FakeCallControl

CALL_SID = "CA" + "a" * 32
OTHER_SID = "CA" + "b" * 32


@pytest.fixture
async def control() -> AsyncIterator[FakeCallControl]:
    async with FakeCallControl() as fake:
        yield fake


async def post(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, dict[str, object]]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


async def test_transfer_then_hangup_are_recorded_and_answered(
    control: FakeCallControl, http: aiohttp.ClientSession
) -> None:
    body = {"reason": "caller asked", "summary": "wants a refund"}
    assert await post(http, f"{control.url}/calls/{CALL_SID}/transfer", body) == (
        200,
        {"callSid": CALL_SID, "status": "transferring"},
    )
    assert await post(http, f"{control.url}/calls/{CALL_SID}/transfer", body) == (
        200,
        {"callSid": CALL_SID, "status": "transferring"},
    )
    assert await post(http, f"{control.url}/calls/{CALL_SID}/hangup", {"reason": "done"}) == (
        200,
        {"callSid": CALL_SID, "status": "completed"},
    )
    status, _ = await post(http, f"{control.url}/calls/{CALL_SID}/transfer", body)
    assert status == 409  # the call already ended
    assert control.requests[0] == ("transfer", CALL_SID, body)
    assert [action for action, _, _ in control.requests] == ["transfer", "transfer", "hangup", "transfer"]
    assert await control.wait_for("hangup") == (CALL_SID, {"reason": "done"})
    assert control.violations == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/calls/{CALL_SID}/transfer", {"reason": "caller asked"}),  # no summary
        (f"/calls/{CALL_SID}/hangup", {"reason": ""}),
        (f"/calls/{CALL_SID}/hangup", ["reason"]),
        ("/calls/not-a-call-sid/hangup", {"reason": "done"}),
    ],
)
async def test_bad_input_is_a_400_and_a_violation(
    control: FakeCallControl, http: aiohttp.ClientSession, path: str, body: object
) -> None:
    status, _ = await post(http, control.url + path, body)
    assert status == 400
    assert len(control.violations) == 1
    assert len(control.requests) == 1


async def test_unknown_calls_are_404_when_the_calls_are_known(http: aiohttp.ClientSession) -> None:
    async with FakeCallControl(known_calls={CALL_SID}) as control:
        status, _ = await post(http, f"{control.url}/calls/{OTHER_SID}/hangup", {"reason": "done"})
        assert status == 404
        status, _ = await post(http, f"{control.url}/calls/{CALL_SID}/hangup", {"reason": "done"})
        assert status == 200


async def test_overrides_set_status_and_delay_for_a_number_of_requests(
    control: FakeCallControl, http: aiohttp.ClientSession
) -> None:
    control.set_response("transfer", status=502, delay=0.2, times=1)
    body = {"reason": "caller asked", "summary": "billing"}
    slow = asyncio.create_task(post(http, f"{control.url}/calls/{CALL_SID}/transfer", body))
    await control.wait_for("transfer")
    await asyncio.sleep(0.05)
    assert not slow.done()  # the answer is held back by the delay
    status, answer = await slow
    assert status == 502
    assert "message" in answer
    assert await post(http, f"{control.url}/calls/{CALL_SID}/transfer", body) == (
        200,
        {"callSid": CALL_SID, "status": "transferring"},
    )


async def test_wait_for_times_out_when_nothing_comes(control: FakeCallControl) -> None:
    with pytest.raises(TimeoutError):
        await control.wait_for("transfer", timeout=0.05)
