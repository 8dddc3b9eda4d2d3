from __future__ import annotations

import json

from relay.tools import EndCallRequest, ToolRegistry, TransferRequest

from .conftest import MakeContext, make_settings

TRANSFER_ARGS = json.dumps({"reason": "wants a person", "summary": "Dana asks about a refund for order 12."})


async def test_transfer_asks_the_session_to_transfer(make_context: MakeContext) -> None:
    settings = make_settings(HUMAN_TRANSFER_NUMBER="+14155550100", CALL_CONTROL_URL="http://127.0.0.1:9/api")
    outcome = await ToolRegistry.default(settings).run("transfer_to_human", TRANSFER_ARGS, make_context(settings))
    assert outcome.ok
    assert outcome.action == TransferRequest(reason="wants a person", summary="Dana asks about a refund for order 12.")
    assert outcome.output["transferring"] is True
    assert "connecting" in outcome.output["say"]


async def test_transfer_without_a_human_line_says_so_and_does_nothing(make_context: MakeContext) -> None:
    settings = make_settings(CALL_CONTROL_URL="http://127.0.0.1:9/api")
    outcome = await ToolRegistry.default(settings).run("transfer_to_human", TRANSFER_ARGS, make_context(settings))
    assert outcome.ok
    assert outcome.action is None
    assert outcome.output["transferring"] is False
    assert outcome.output["reason"] == "no_human_line"


async def test_transfer_without_call_control_cannot_happen(make_context: MakeContext) -> None:
    settings = make_settings(HUMAN_TRANSFER_NUMBER="+14155550100")
    outcome = await ToolRegistry.default(settings).run("transfer_to_human", TRANSFER_ARGS, make_context(settings))
    assert outcome.action is None
    assert outcome.output["transferring"] is False


async def test_transfer_needs_a_summary(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("transfer_to_human", '{"reason": "upset"}', make_context())
    assert not outcome.ok
    assert outcome.action is None
    assert "summary" in outcome.output["error"]


async def test_end_call_asks_for_a_goodbye_then_hangs_up(registry: ToolRegistry, make_context: MakeContext) -> None:
    outcome = await registry.run("end_call", '{"reason": "caller said goodbye"}', make_context())
    assert outcome.ok
    assert outcome.action == EndCallRequest(reason="caller said goodbye")
    assert outcome.output["ending_call"] is True
    assert "goodbye" in outcome.output["say"]
