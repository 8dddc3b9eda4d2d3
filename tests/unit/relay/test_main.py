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


def test_log_level_comes_from_the_settings(relay_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from relay.__main__ import configure_logging
    from relay.settings import RelaySettings

    seen: dict[str, object] = {}
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: seen.update(kwargs))
    configure_logging(RelaySettings.from_env({**relay_env, "LOG_LEVEL": "error"}))
    assert seen["level"] == "ERROR"


def test_the_relay_runs_on_uvloop_when_it_is_installed() -> None:
    import asyncio

    from relay.__main__ import run

    uvloop = pytest.importorskip("uvloop")

    async def running_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert isinstance(run(running_loop()), uvloop.Loop)


def test_without_uvloop_the_relay_runs_on_asyncios_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import sys

    from relay.__main__ import run

    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: the import fails

    async def running_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    loop = run(running_loop())
    assert type(loop).__module__.startswith("asyncio")
