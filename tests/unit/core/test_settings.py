from __future__ import annotations

import pytest
from pydantic import Field, SecretStr

from callcore.settings import EnvSettings, SecretsManagerFetcher, SettingsError, StorageSettings


class ExampleSettings(EnvSettings):
    api_key: SecretStr = Field(alias="EXAMPLE_API_KEY", description="the example key")
    port: int = Field(default=8080, alias="EXAMPLE_PORT", ge=1, le=65535, description="TCP port")
    optional_secret: SecretStr | None = Field(default=None, alias="EXAMPLE_OPTIONAL_SECRET")


def test_reads_aliases_and_defaults() -> None:
    settings = ExampleSettings.from_env({"EXAMPLE_API_KEY": "test-key"})
    assert settings.api_key.get_secret_value() == "test-key"
    assert settings.port == 8080
    assert settings.optional_secret is None


def test_every_problem_is_named_by_its_environment_variable() -> None:
    with pytest.raises(SettingsError) as failed:
        ExampleSettings.from_env({"EXAMPLE_PORT": "99999"})
    message = str(failed.value)
    assert "EXAMPLE_API_KEY is required (the example key): set EXAMPLE_API_KEY or EXAMPLE_API_KEY_ARN" in message
    assert "EXAMPLE_PORT: Input should be less than or equal to 65535 (TCP port)" in message
    assert len(failed.value.problems) == 2


def test_empty_value_counts_as_unset() -> None:
    with pytest.raises(SettingsError, match="EXAMPLE_API_KEY is required"):
        ExampleSettings.from_env({"EXAMPLE_API_KEY": ""})


def test_secret_from_arn_through_the_fetcher_and_never_in_repr() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:example"
    seen: list[str] = []

    def fetch(requested: str) -> str:
        seen.append(requested)
        return "fetched-value"

    settings = ExampleSettings.from_env({"EXAMPLE_API_KEY_ARN": arn}, secret_fetcher=fetch)
    assert seen == [arn]
    assert settings.api_key.get_secret_value() == "fetched-value"
    assert "fetched-value" not in repr(settings)
    assert "fetched-value" not in str(settings.model_dump())


def test_plain_env_wins_over_arn() -> None:
    def fetch(_: str) -> str:
        raise AssertionError("must not be called")

    settings = ExampleSettings.from_env(
        {"EXAMPLE_API_KEY": "local", "EXAMPLE_API_KEY_ARN": "arn:x"}, secret_fetcher=fetch
    )
    assert settings.api_key.get_secret_value() == "local"


def test_a_failing_secret_read_is_named_without_its_value() -> None:
    def fetch(_: str) -> str:
        raise PermissionError("AccessDenied")

    with pytest.raises(SettingsError) as failed:
        ExampleSettings.from_env({"EXAMPLE_API_KEY_ARN": "arn:x"}, secret_fetcher=fetch)
    assert "EXAMPLE_API_KEY_ARN: could not read the secret (PermissionError: AccessDenied)" in str(failed.value)


def test_storage_settings_validate_names() -> None:
    ok = StorageSettings.from_env({"CALLS_TABLE": "calls", "TRANSCRIPTS_BUCKET": "my-transcripts"})
    assert ok.turn_retention_days == 30
    with pytest.raises(SettingsError) as failed:
        StorageSettings.from_env({"CALLS_TABLE": "bad table!", "TRANSCRIPTS_BUCKET": "Upper_Case"})
    assert {p.split(":")[0] for p in failed.value.problems} == {"CALLS_TABLE", "TRANSCRIPTS_BUCKET"}


def test_secrets_manager_fetcher_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    with mock_aws():
        import boto3

        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="example", SecretString="first")["ARN"]
        fetcher = SecretsManagerFetcher(ttl_seconds=300)
        assert fetcher(arn) == "first"
        client.put_secret_value(SecretId=arn, SecretString="rotated")
        assert fetcher(arn) == "first"  # cached: read once, not per request
        assert SecretsManagerFetcher(ttl_seconds=0)(arn) == "rotated"
        empty = client.create_secret(Name="empty-one")["ARN"]
        with pytest.raises(ValueError, match="no string value"):
            fetcher(empty)
