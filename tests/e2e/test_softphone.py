"""The softphone in a real browser: Debian's Chromium, headless, driven by Playwright, its fake microphone playing a
spoken question. The page dials the agent through the local stack over Twilio's media path, plays the agent's
audio (its counters show the frames played and the marks reported), shows the transcript as the turns are stored,
and hangs up; the call record then says the caller hung up.

With SOFTPHONE_SCREENSHOT=PATH the test saves the page mid-call there (the README's picture)."""

from __future__ import annotations

import os
import wave
from array import array
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="Playwright's Python API is not installed (the dev extra has it)")
pytest.importorskip("pocketsphinx", reason="the speech parts (.[voice]) are not installed")

from playwright.async_api import Page, async_playwright, expect

from callcore.models import CallOutcome, CallStatus
from callcore.profiles import DEFAULT_PROFILES_DIR
from local.call import CALLER_VOICE
from local.phone.__main__ import serve_phone, stack_options
from tests.fakes.audio import mulaw_to_linear, silence

CHROMIUM = Path("/usr/bin/chromium")
QUESTION = "Hello, what are your opening hours today?"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no {CHROMIUM}: install Debian's chromium package (make setup does where apt is)"
)


def spoken_question_wav(path: Path) -> Path:
    """The question in the caller's espeak-ng voice, after the greeting has played (Chromium loops the file)."""
    from local.voice_model.synthesis import Voice, speak_afresh

    spoken = silence(8000) + speak_afresh(QUESTION, Voice(CALLER_VOICE)) + silence(12_000)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(array("h", mulaw_to_linear(spoken)).tobytes())
    return path


@pytest.fixture
async def phone_page(tmp_path: Path) -> AsyncIterator[tuple[Page, str]]:
    question = spoken_question_wav(tmp_path / "question.wav")
    options = stack_options(DEFAULT_PROFILES_DIR / "example.toml", "spoken")
    async with serve_phone(options, port=0, profile="example") as (url, _), async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={question}",
                "--autoplay-policy=no-user-gesture-required",
                "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            yield page, url
        finally:
            await browser.close()


async def counter(page: Page, name: str) -> int:
    value: int = await page.evaluate(f"window.softphone.{name}")
    return value


async def test_a_browser_call_talks_to_the_agent_and_hangs_up(phone_page: tuple[Page, str]) -> None:
    page, _ = phone_page
    await expect(page.locator("#line-info")).to_contain_text("Harbor Bistro")
    await page.get_by_role("button", name="Dial").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "in-call", timeout=TIMEOUT_MS)

    # The greeting is played by the page, its marks reported back, and stored as the first turn.
    await page.wait_for_function("window.softphone.playedFrames >= 50 && window.softphone.marksEchoed >= 1",
                                 timeout=TIMEOUT_MS)  # fmt: skip
    await expect(page.locator("#turns li.agent").first).to_contain_text("Harbor Bistro", timeout=TIMEOUT_MS)
    # The spoken question went up the line as μ-law frames, was heard, and answered with the hours tool.
    await expect(page.locator("#turns li.caller").first).to_contain_text("hours", timeout=TIMEOUT_MS)
    await expect(page.locator("#turns .tool").first).to_contain_text("get_business_hours", timeout=TIMEOUT_MS)
    assert await counter(page, "sentFrames") > 100
    screenshot = os.environ.get("SOFTPHONE_SCREENSHOT")
    if screenshot:
        await page.wait_for_timeout(1500)
        await page.screenshot(path=screenshot, full_page=True)

    await page.get_by_role("button", name="Hang up").click()
    summary = page.locator("#summary-fields")
    await expect(summary).to_have_attribute("data-outcome", CallOutcome.CALLER_HUNG_UP.value, timeout=TIMEOUT_MS)
    await expect(page.locator("body")).to_have_attribute("data-state", "ended")
    await expect(summary).to_contain_text(CallStatus.COMPLETED.value)
