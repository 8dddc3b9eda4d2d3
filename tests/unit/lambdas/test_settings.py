"""The Lambdas' settings: defaults, validation messages naming the variable, and secrets through *_ARN."""

from __future__ import annotations

import pytest

from callcore.aws import secretsmanager_client
from callcore.settings import SettingsError
from lambdas.handlers import incoming_call
from lambdas.settings import AnsweringMachineDetection, LambdaSettings, load_settings
from tests.unit.lambdas.events import (
    ACCOUNT_SID,
    ALWAYS_REQUIRED_SECRETS,
    AUTH_TOKEN,
    CALLER_HASH_SECRET,
    LAMBDA_ENV,
    SECRET_NAMES,
    STREAM_TOKEN_SECRET,
    new_call_sid,
    twilio_event,
    voice_params,
)

MINIMAL = {
    "CALLS_TABLE": "calls",
    "TRANSCRIPTS_BUCKET": "transcripts-bucket",
    "RELAY_PUBLIC_URL": "wss://relay.example.test/media-stream",
    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
    "STREAM_TOKEN_SECRET": STREAM_TOKEN_SECRET,
}


def never_fetch(arn: str) -> str:
    raise AssertionError(f"no secret should be fetched, asked for {arn}")


def test_defaults():
    settings = load_settings(MINIMAL, secret_fetcher=never_fetch)
    assert settings.max_concurrent_calls == 50
    assert settings.stream_token_ttl_seconds == 120
    assert settings.answering_machine_detection is AnsweringMachineDetection.OFF
    assert settings.human_transfer_number is None
    assert settings.twilio_phone_number is None
    assert settings.public_api_base_url is None
    assert settings.twilio_api_base_url is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "RELAY_PUBLIC_URL",
            "https://relay.example.test/media-stream",
            "RELAY_PUBLIC_URL: Value error, must be a wss://",
        ),
        ("RELAY_PUBLIC_URL", "wss://relay.example.test/media-stream?x=1", "must not carry a query string"),
        ("HUMAN_TRANSFER_NUMBER", "555-0100", "HUMAN_TRANSFER_NUMBER"),
        ("TWILIO_PHONE_NUMBER", "+0123", "TWILIO_PHONE_NUMBER"),
        ("MAX_CONCURRENT_CALLS", "-1", "MAX_CONCURRENT_CALLS"),
        ("STREAM_TOKEN_TTL_SECONDS", "5", "STREAM_TOKEN_TTL_SECONDS"),
        ("ANSWERING_MACHINE_DETECTION", "sometimes", "ANSWERING_MACHINE_DETECTION"),
        ("PUBLIC_API_BASE_URL", "voice.example.test", "PUBLIC_API_BASE_URL"),
        ("TWILIO_API_BASE_URL", "ftp://127.0.0.1", "TWILIO_API_BASE_URL"),
        ("TWILIO_ACCOUNT_SID", "not-an-account", "TWILIO_ACCOUNT_SID: Value error, must be AC followed by 32 hex"),
        ("STREAM_TOKEN_SECRET", "short", "STREAM_TOKEN_SECRET"),
    ],
)
def test_bad_values_are_named(name, value, expected):
    with pytest.raises(SettingsError) as raised:
        load_settings({**MINIMAL, name: value}, secret_fetcher=never_fetch)
    assert expected in str(raised.value)
    if name in SECRET_NAMES:
        assert value not in str(raised.value)


def test_missing_secrets_say_how_to_set_them():
    environ = {k: v for k, v in MINIMAL.items() if k not in ALWAYS_REQUIRED_SECRETS}
    with pytest.raises(SettingsError) as raised:
        load_settings(environ, secret_fetcher=never_fetch)
    for name in ALWAYS_REQUIRED_SECRETS:
        assert f"{name} is required" in str(raised.value)
        assert f"set {name} or {name}_ARN" in str(raised.value)


def test_without_either_hash_secret_the_settings_name_the_caller_hash_secret():
    environ = {k: v for k, v in MINIMAL.items() if k != "STREAM_TOKEN_SECRET"}
    with pytest.raises(SettingsError) as raised:
        load_settings(environ, secret_fetcher=never_fetch)
    assert "set CALLER_HASH_SECRET" in str(raised.value)


def test_a_function_without_the_token_secret_hashes_callers_but_mints_no_token():
    # The status callback and the sweep are given the caller-hash secret only (least privilege).
    environ = {**{k: v for k, v in MINIMAL.items() if k != "STREAM_TOKEN_SECRET"}, "CALLER_HASH_SECRET": "h" * 16}
    settings = load_settings(environ, secret_fetcher=never_fetch)
    with_token = load_settings({**environ, "STREAM_TOKEN_SECRET": STREAM_TOKEN_SECRET}, secret_fetcher=never_fetch)
    assert settings.caller_hash_key == with_token.caller_hash_key  # the token secret does not change the hash key
    with pytest.raises(SettingsError) as raised:
        settings.token_secret()
    assert "STREAM_TOKEN_SECRET is required" in str(raised.value)


def test_the_caller_hash_key_comes_from_its_own_secret_when_set():
    locally = load_settings(MINIMAL, secret_fetcher=never_fetch)  # derived from the token secret
    deployed = load_settings({**MINIMAL, "CALLER_HASH_SECRET": CALLER_HASH_SECRET}, secret_fetcher=never_fetch)
    assert locally.caller_hash_key != deployed.caller_hash_key


def test_the_voice_webhook_without_the_token_secret_answers_500_naming_nothing_secret(aws, invoke, monkeypatch):
    monkeypatch.delenv("STREAM_TOKEN_SECRET")
    answer = invoke(incoming_call.handler, twilio_event("/twilio/incoming", voice_params(new_call_sid())))
    assert answer.status == 500
    assert answer.json()["message"] == "misconfigured"
    assert aws.written_items() == []


def test_public_base_url_loses_its_trailing_slash():
    settings = load_settings({**MINIMAL, "PUBLIC_API_BASE_URL": "https://voice.example.test/api/"})
    assert settings.public_api_base_url == "https://voice.example.test/api"


def test_secrets_never_show_in_repr():
    settings = LambdaSettings.from_env(MINIMAL)
    assert AUTH_TOKEN not in repr(settings)
    assert STREAM_TOKEN_SECRET not in repr(settings)


def _store_secrets(monkeypatch) -> dict[str, str]:
    client = secretsmanager_client()
    arns = {}
    for name in SECRET_NAMES:
        monkeypatch.delenv(name)
        arn = client.create_secret(Name=f"phone-agent/{name.lower()}", SecretString=LAMBDA_ENV[name])["ARN"]
        monkeypatch.setenv(f"{name}_ARN", arn)
        arns[name] = arn
    return arns


def test_handler_reads_its_secrets_from_secrets_manager_by_arn(aws, invoke, monkeypatch):
    _store_secrets(monkeypatch)
    answer = invoke(incoming_call.handler, twilio_event("/twilio/incoming", voice_params(new_call_sid())))
    assert answer.status == 200
    assert "<Stream" in answer.body


def test_secrets_are_cached_between_invocations(aws, invoke, monkeypatch):
    arns = _store_secrets(monkeypatch)
    assert invoke(incoming_call.handler, twilio_event("/twilio/incoming", voice_params(new_call_sid()))).status == 200
    # Deleted from Secrets Manager: a warm container still answers from the Parameters cache.
    for arn in arns.values():
        secretsmanager_client().delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    assert invoke(incoming_call.handler, twilio_event("/twilio/incoming", voice_params(new_call_sid()))).status == 200


def test_an_unreadable_secret_is_a_500_that_names_the_variable_not_the_value(aws, invoke, monkeypatch, logs):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf")
    answer = invoke(incoming_call.handler, twilio_event("/twilio/incoming", voice_params(new_call_sid())))
    assert answer.status == 500
    assert answer.json() == {"error": "Internal Server Error", "message": "misconfigured"}
    assert "TWILIO_AUTH_TOKEN_ARN: could not read the secret" in logs.getvalue()
    assert aws.written_items() == []
