"""The business API's credentials from Secrets Manager (moto): kept for the TTL, re-read after it, never logged."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from mypy_boto3_secretsmanager import SecretsManagerClient

from relay.tools import ToolError
from relay.tools.credentials import CredentialsHeader, SecretValues

NAME = "bistro/booking-api"


@pytest.fixture
def secrets_client() -> Iterator[SecretsManagerClient]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name=NAME, SecretString="first-test-value")
        yield client


async def test_a_value_is_kept_for_the_ttl_and_read_again_after_it(secrets_client: SecretsManagerClient) -> None:
    now = [0.0]
    values = SecretValues(lambda: secrets_client, ttl_seconds=300, clock=lambda: now[0])
    header = CredentialsHeader(NAME, "X-Api-Key", values)
    assert await header.headers() == {"X-Api-Key": "first-test-value"}
    secrets_client.put_secret_value(SecretId=NAME, SecretString="rotated-test-value")
    now[0] = 299.0
    assert await header.headers() == {"X-Api-Key": "first-test-value"}
    now[0] = 300.0
    assert await header.headers() == {"X-Api-Key": "rotated-test-value"}


async def test_an_unreadable_secret_is_a_tool_error_naming_only_the_secret(
    secrets_client: SecretsManagerClient, caplog: pytest.LogCaptureFixture
) -> None:
    values = SecretValues(lambda: secrets_client)
    with pytest.raises(ToolError, match="not reachable"):
        await values.get("no-such-secret")
    assert "no-such-secret" in caplog.text
    assert "first-test-value" not in caplog.text
