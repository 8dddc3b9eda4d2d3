from __future__ import annotations

from decimal import Decimal

import pytest

from callcore.profiles.model import TurnDetection
from callcore.settings import SettingsError
from relay.settings import LogLevel, RelaySettings


def test_defaults_follow_the_contract(relay_settings: RelaySettings) -> None:
    assert relay_settings.port == 8080
    assert relay_settings.openai_realtime_url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert relay_settings.openai_voice == "marin"
    assert relay_settings.max_call_seconds == 1800
    assert relay_settings.metrics_namespace == "PhoneVoiceAgent"
    assert relay_settings.business_timezone == "America/New_York"
    assert relay_settings.turn_detection is TurnDetection.SERVER_VAD
    assert relay_settings.model_name == "gpt-realtime"
    assert relay_settings.prompt_file.is_file()
    assert relay_settings.prices.audio_output == Decimal(64)
    assert relay_settings.model_session_max_seconds == 3300
    assert relay_settings.silence_timeout_seconds == 20
    assert relay_settings.dtmf_transfer_digit is None


def test_secrets_never_appear_in_repr(relay_settings: RelaySettings) -> None:
    text = repr(relay_settings)
    assert "test-openai-key" not in text
    assert "test-auth-token" not in text
    assert "test-stream-secret" not in text


@pytest.mark.parametrize(
    ("env", "value", "complaint"),
    [
        ("RELAY_PUBLIC_URL", "https://relay.example.com/media-stream", "ws://"),
        ("RELAY_PUBLIC_URL", "wss://relay.example.com/other", "/media-stream"),
        ("RELAY_PUBLIC_URL", "wss://relay.example.com/media-stream?x=1", "no query"),
        ("OPENAI_REALTIME_URL", "https://api.openai.com/v1/realtime", "ws://"),
        ("CALL_CONTROL_URL", "ftp://x", "http"),
        ("HUMAN_TRANSFER_NUMBER", "555-0100", "HUMAN_TRANSFER_NUMBER"),
        ("BUSINESS_TIMEZONE", "Mars/Olympus", "IANA"),
        ("BUSINESS_HOURS", "weekdays 9-5", "cannot read"),
        ("BUSINESS_HOURS", "mon-fri 17:00-09:00", "closes before"),
        ("TURN_DETECTION", "push_to_talk", "TURN_DETECTION"),
        ("GREETING_INBOUND", "Hi {caller}", "business_name"),
        ("RELAY_PROMPT_FILE", "/nonexistent/prompt.md", "no prompt file"),
        ("MODEL_POOL_SIZE", "-1", "MODEL_POOL_SIZE"),
        ("PRICE_AUDIO_INPUT_PER_M", "-3", "PRICE_AUDIO_INPUT_PER_M"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL"),
        ("CALLER_PROFILE_RETENTION_DAYS", "0", "CALLER_PROFILE_RETENTION_DAYS"),
        ("MODEL_SESSION_MAX_SECONDS", "3600", "less than or equal to 3540"),
        ("MODEL_RECONNECT_SECONDS", "0", "MODEL_RECONNECT_SECONDS"),
        ("SILENCE_TIMEOUT_SECONDS", "0", "SILENCE_TIMEOUT_SECONDS"),
        ("STREAM_IDLE_TIMEOUT_SECONDS", "90", "less than or equal to 55"),
        ("DTMF_TRANSFER_DIGIT", "00", "DTMF_TRANSFER_DIGIT"),
        ("DTMF_TRANSFER_DIGIT", "a", "DTMF_TRANSFER_DIGIT"),
        ("MAX_PENDING_STREAMS", "0", "MAX_PENDING_STREAMS"),
        ("READINESS_DEADLINE_SECONDS", "-1", "READINESS_DEADLINE_SECONDS"),
        ("DRAIN_TIMEOUT_SECONDS", "110", "stop timeout"),
        ("MAX_CALL_SECONDS", "30", "MAX_CALL_WARNING_SECONDS must be shorter than MAX_CALL_SECONDS"),
    ],
)
def test_bad_values_are_named(relay_env: dict[str, str], env: str, value: str, complaint: str) -> None:
    relay_env[env] = value
    with pytest.raises(SettingsError) as raised:
        RelaySettings.from_env(relay_env)
    assert env in str(raised.value)
    assert complaint in str(raised.value)


def test_missing_secrets_say_how_to_set_them() -> None:
    with pytest.raises(SettingsError) as raised:
        RelaySettings.from_env({})
    message = str(raised.value)
    for name in ("OPENAI_API_KEY", "TWILIO_AUTH_TOKEN", "STREAM_TOKEN_SECRET", "RELAY_PUBLIC_URL", "CALLS_TABLE"):
        assert name in message
    assert "OPENAI_API_KEY_ARN" in message


def test_secret_from_arn(relay_env: dict[str, str]) -> None:
    del relay_env["OPENAI_API_KEY"]
    relay_env["OPENAI_API_KEY_ARN"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai"
    settings = RelaySettings.from_env(relay_env, secret_fetcher=lambda arn: "fetched-" + arn.rsplit(":", 1)[-1])
    assert settings.openai_api_key.get_secret_value() == "fetched-openai"


def test_caller_hash_key_is_derived_from_the_token_secret(relay_env: dict[str, str]) -> None:
    first = RelaySettings.from_env(relay_env).caller_hash_key
    relay_env["STREAM_TOKEN_SECRET"] = "another-test-secret"
    assert RelaySettings.from_env(relay_env).caller_hash_key != first
    assert len(first) == 32


@pytest.mark.parametrize(
    ("value", "level"), [("", LogLevel.INFO), ("debug", LogLevel.DEBUG), (" Warning ", LogLevel.WARNING)]
)
def test_log_level_is_a_validated_setting(relay_env: dict[str, str], value: str, level: LogLevel) -> None:
    relay_env["LOG_LEVEL"] = value
    assert RelaySettings.from_env(relay_env).log_level is level


def test_a_transfer_key_needs_a_human_line(relay_env: dict[str, str]) -> None:
    relay_env["DTMF_TRANSFER_DIGIT"] = "0"
    with pytest.raises(SettingsError, match="DTMF_TRANSFER_DIGIT needs HUMAN_TRANSFER_NUMBER"):
        RelaySettings.from_env(relay_env)
    relay_env["HUMAN_TRANSFER_NUMBER"] = "+15557650000"
    assert RelaySettings.from_env(relay_env).dtmf_transfer_digit == "0"


def test_pooled_sessions_must_be_younger_than_the_rotation_age(relay_env: dict[str, str]) -> None:
    relay_env.update(MODEL_SESSION_MAX_SECONDS="300", MODEL_POOL_MAX_AGE_SECONDS="600")
    with pytest.raises(SettingsError, match="MODEL_POOL_MAX_AGE_SECONDS must be below MODEL_SESSION_MAX_SECONDS"):
        RelaySettings.from_env(relay_env)
    relay_env["MODEL_POOL_SIZE"] = "0"  # no pool: nothing to compare
    assert RelaySettings.from_env(relay_env).model_session_max_seconds == 300


def test_the_drain_may_grow_when_sockets_close_faster(relay_env: dict[str, str]) -> None:
    """The stop budget counts CLOSE_TIMEOUT_SECONDS twice (each call's sockets, then the warm sessions)."""
    from relay.shutdown import CONTAINER_STOP_TIMEOUT_SECONDS, max_drain_seconds

    relay_env.update(CLOSE_TIMEOUT_SECONDS="0.5", DRAIN_TIMEOUT_SECONDS=str(max_drain_seconds(0.5)))
    settings = RelaySettings.from_env(relay_env)
    assert settings.drain_timeout_seconds < CONTAINER_STOP_TIMEOUT_SECONDS
    relay_env["CLOSE_TIMEOUT_SECONDS"] = "5"
    with pytest.raises(SettingsError, match="DRAIN_TIMEOUT_SECONDS must be at most"):
        RelaySettings.from_env(relay_env)
