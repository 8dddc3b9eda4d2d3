"""Relay unit fixtures: a complete, valid environment for RelaySettings (obviously fake secrets)."""

from __future__ import annotations

import pytest

from relay.settings import RelaySettings

BASE_ENV = {
    "OPENAI_API_KEY": "test-openai-key",
    "TWILIO_AUTH_TOKEN": "test-auth-token",
    "STREAM_TOKEN_SECRET": "test-stream-secret",
    "RELAY_PUBLIC_URL": "wss://relay.example.com/media-stream",
    "CALLS_TABLE": "calls-test",
    "TRANSCRIPTS_BUCKET": "transcripts-test",
}


@pytest.fixture
def relay_env() -> dict[str, str]:
    return dict(BASE_ENV)


@pytest.fixture
def relay_settings(relay_env: dict[str, str]) -> RelaySettings:
    return RelaySettings.from_env(relay_env)
