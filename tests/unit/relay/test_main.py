from __future__ import annotations

import pytest

from relay.__main__ import main


def test_bad_settings_exit_2_naming_them(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("OPENAI_API_KEY", "TWILIO_AUTH_TOKEN", "STREAM_TOKEN_SECRET", "RELAY_PUBLIC_URL", "CALLS_TABLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_ARN", raising=False)
    monkeypatch.setenv("RELAY_PUBLIC_URL", "https://wrong.example.com/media-stream")
    assert main() == 2
    error = capsys.readouterr().err
    assert "RELAY_PUBLIC_URL" in error
    assert "OPENAI_API_KEY" in error
    assert "Traceback" not in error
