"""Without its speech parts the local call says so in one line and uses the scripted model."""

from __future__ import annotations

import pytest

from local import stack
from local.voice_model import SpeechUnavailable


async def test_a_missing_speech_part_falls_back_to_the_scripted_model_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing() -> None:
        raise SpeechUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")

    monkeypatch.setattr("local.voice_model.recognition.check_speech_parts", missing)
    said: list[str] = []
    assert await stack.available_model("spoken", said.append) == "scripted"
    assert said == [
        "spoken model unavailable (espeak-ng is not installed (apt-get install espeak-ng)); using the scripted model"
    ]


async def test_the_scripted_model_is_used_when_asked_for_without_checking_speech(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unexpected() -> None:
        raise AssertionError("the speech parts were checked")

    monkeypatch.setattr("local.voice_model.recognition.check_speech_parts", unexpected)
    assert await stack.available_model("scripted", print) == "scripted"
