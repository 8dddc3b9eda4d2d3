"""Two business lines in one deployment, end to end: each number's call goes through the real TwiML Lambda (behind
the local API Gateway) and the real relay, and gets its own profile's greeting, prompt, voice, tools and human line
(the transfer key rings that line through the call-control Lambda and Twilio's REST API)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from callcore.profiles.loader import load_profile
from callcore.profiles.published import PublishedProfile
from callcore.store.receptionist_profiles import ReceptionistProfiles
from local.stack import StackOptions, local_stack
from tests.fakes.openai_realtime import FakeRealtimeServer, FakeRealtimeSession
from tests.fakes.twilio_media import FakeTwilioCall

CALLER = "+15550100123"

BISTRO = """
business_name = "Harbor Bistro"
numbers = ["+15550100000"]
timezone = "America/New_York"
greeting = "Thanks for calling {business_name}, what can I do for you?"
voice = "cedar"
[hours]
weekly = "mon-sun 00:00-24:00"
[transfer]
human_number = "+15550100901"
dtmf_digit = "0"
"""

DENTAL = """
business_name = "Bright Smile Dental"
numbers = ["+15550100001"]
timezone = "Europe/London"
greeting = "Bright Smile Dental, good day."
voice = "marin"
prompt_file = "dental.md"
tools = ["get_business_hours", "transfer_to_human", "end_call"]
[hours]
weekly = "mon-sun 00:00-24:00"
[transfer]
human_number = "+15550100902"
dtmf_digit = "9"
"""


def _call_session(model: FakeRealtimeServer, business: str) -> FakeRealtimeSession | None:
    """The model session of the call on `business`'s line: configured with that line's tools and instructions."""
    for session in model.sessions:
        for event in session.events:
            config = event.get("session") or {}
            if event["type"] == "session.update" and config.get("tools") and business in config["instructions"]:
                return session
    return None


async def _place(stack: Any, number: str, business: str, key: str) -> tuple[str, FakeRealtimeSession, str]:
    """A call to `number`, answered, then the line's transfer key pressed: (its session, the TwiML that rang)."""
    call_sid = "CA" + uuid.uuid4().hex
    stream_url, token = await stack.incoming_call(call_sid, caller=CALLER, to=number)
    phone = stack.media_stream(call_sid, stream_url, token, kind=FakeTwilioCall)
    await phone.connect()
    model: FakeRealtimeServer = stack.model
    session = None
    while session is None:
        session = _call_session(model, business)
        if session is None:
            await model.wait_for_session(len(model.sessions))
    await phone.wait_for_media(800)  # the greeting is being heard (cached or live)
    async with asyncio.timeout(5):
        while _greeting(session) is None:  # noqa: ASYNC110 - the fake offers no event for "either of two"
            await asyncio.sleep(0.01)
    await phone.send_dtmf(key)
    assert await stack.network.wait_ended(call_sid) == "transfer"
    await phone.stop()
    await phone.close()
    return call_sid, session, stack.network.calls[call_sid].twiml_updates[-1]


async def test_two_profiles_answer_their_own_numbers_with_their_own_line(tmp_path: Path) -> None:
    (tmp_path / "bistro.toml").write_text(BISTRO)
    (tmp_path / "dental.toml").write_text(DENTAL)
    (tmp_path / "dental.md").write_text("You answer the telephone for {business_name}. Greeted with: {greeting}")
    options = StackOptions.for_profile(tmp_path / "bistro.toml", model="scripted")
    async with local_stack(options, say=lambda *_: None) as stack:
        lines = [PublishedProfile.from_loaded(load_profile(tmp_path / name)) for name in ("bistro.toml", "dental.toml")]
        ReceptionistProfiles(stack.calls_table).publish(lines)  # what `cdk deploy` does with a second profile

        bistro_sid, bistro, bistro_twiml = await _place(stack, "+15550100000", "Harbor Bistro", "0")
        dental_sid, dental, dental_twiml = await _place(stack, "+15550100001", "Bright Smile Dental", "9")

        records = [stack.store.require_call(sid) for sid in (bistro_sid, dental_sid)]
        assert [(r.profile_id, r.profile_version) for r in records] == [
            ("bistro", lines[0].version),
            ("dental", lines[1].version),
        ]
    bistro_config = _config(bistro)
    dental_config = _config(dental)
    assert "You are the phone receptionist of Harbor Bistro" in bistro_config["instructions"]
    assert dental_config["instructions"] == (
        "You answer the telephone for Bright Smile Dental. Greeted with: Bright Smile Dental, good day."
    )
    assert (bistro_config["audio"]["output"]["voice"], dental_config["audio"]["output"]["voice"]) == ("cedar", "marin")
    assert len(bistro_config["tools"]) == 5
    assert [tool["name"] for tool in dental_config["tools"]] == ["get_business_hours", "transfer_to_human", "end_call"]
    # Each caller heard their own line's greeting (the bistro's from the cache, the dental line's live).
    assert _greeting(bistro) == "Thanks for calling Harbor Bistro, what can I do for you?"
    assert _greeting(dental) == "Bright Smile Dental, good day."
    # And each transfer rang that line's own human.
    assert "+15550100901" in bistro_twiml
    assert "+15550100902" not in bistro_twiml
    assert "+15550100902" in dental_twiml
    for session in (bistro, dental):
        assert session.violations == []


def _config(session: FakeRealtimeSession) -> dict[str, Any]:
    updates = [e["session"] for e in session.events if e["type"] == "session.update" and e["session"].get("tools")]
    config: dict[str, Any] = updates[-1]
    return config


def _greeting(session: FakeRealtimeSession) -> str | None:
    """What the call's model was told the caller heard first: the cached greeting's seed, or the live greeting asked
    for."""
    for event in session.events:
        if event["type"] == "conversation.item.create" and event["item"].get("role") == "assistant":
            seeded: str = event["item"]["content"][0]["text"]
            return seeded
        if event["type"] == "response.create" and "Greet the caller" in str(event):
            asked: str = event["response"]["instructions"].split('"')[1]
            return asked
    return None
