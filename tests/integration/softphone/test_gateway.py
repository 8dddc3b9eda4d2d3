"""The softphone's gateway without a browser: it plays Twilio's part towards the real relay (signed webhook, TwiML,
signed upgrade with the stream token), hands the agent's audio and marks to the browser, echoes a mark only once the
browser reports the audio before it played, and passes `clear` on with every pending mark echoed at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from local.phone.gateway import BrowserPlayedStream, dial_inbound
from local.stack import RELAY_PUBLIC_URL, LocalStack, StackOptions, local_stack
from tests.fakes.audio import tone

CALLER = "+15550100123"


@pytest.fixture
async def stack() -> AsyncIterator[LocalStack]:
    async with local_stack(StackOptions(model="scripted"), say=lambda *_: None) as running:
        yield running


async def next_message(stream: BrowserPlayedStream, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            message = await stream.to_browser.get()
            if message["type"] == kind:
                return message


def echoes_sent(stream: BrowserPlayedStream) -> list[str]:
    return [event["mark"]["name"] for event in stream.events_sent if event["event"] == "mark"]


async def test_the_relay_admits_the_gateway_as_twilio(stack: LocalStack) -> None:
    call = await dial_inbound(stack, caller=CALLER)
    stream = call.stream
    try:
        await next_message(stream, "media")  # admitted: the greeting flows
        # The relay admits a stream only with Twilio's upgrade signature (over the public URL, under the account's
        # auth token) and the incoming-call Lambda's token for this CallSid, then claims it in the record.
        assert stack.store.require_call(call.call_sid).stream_sid == stream.stream_sid
        assert stream.public_url == RELAY_PUBLIC_URL
        start = next(event for event in stream.events_sent if event["event"] == "start")["start"]
        assert start["callSid"] == call.call_sid
        assert start["customParameters"]["token"] == stream.token
    finally:
        await stream.stop()


async def test_an_upgrade_not_signed_with_the_accounts_token_is_refused(stack: LocalStack) -> None:
    call = await dial_inbound(stack, caller=CALLER)
    await call.stream.stop()
    forged = BrowserPlayedStream(
        stack.relay_media_url,
        public_url=RELAY_PUBLIC_URL,
        auth_token="not-the-accounts-token",
        call_sid=call.call_sid,
        token=call.stream.token,
    )
    await forged.connect()
    assert forged.handshake_status == 403


async def test_marks_are_echoed_only_once_the_browser_has_played_them(stack: LocalStack) -> None:
    call = await dial_inbound(stack, caller=CALLER)
    stream = call.stream
    try:
        first = (await next_message(stream, "mark"))["name"]
        second = (await next_message(stream, "mark"))["name"]
        assert echoes_sent(stream) == []  # the relay's marks wait for the browser, however long that takes
        await stream.browser_played(first, played_bytes=800)
        assert echoes_sent(stream) == [first]
        assert second in stream.marks_awaiting_playback
        await stream.browser_played(second, played_bytes=1600)
        await stream.browser_played(second, played_bytes=1600)  # a repeated report echoes nothing more
        assert echoes_sent(stream) == [first, second]
    finally:
        await stream.stop()


async def test_clear_flushes_the_browser_and_echoes_every_pending_mark(stack: LocalStack) -> None:
    call = await dial_inbound(stack, caller=CALLER)
    stream = call.stream
    try:
        await next_message(stream, "mark")  # the greeting is queued in the browser, unplayed
        # The caller talks over it: the model hears speech, the relay tells Twilio to clear.
        await stream.send_audio(tone(600, 440, 0.6))
        await next_message(stream, "clear")
        assert stream.clears == 1
        assert stream.marks_awaiting_playback == []
        assert echoes_sent(stream) == stream.marks_received
        assert all(cleared for _, _, cleared in stream.marks_echoed)
    finally:
        await stream.stop()
