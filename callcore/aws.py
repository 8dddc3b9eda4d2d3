"""AWS clients (botocore) with the retry and timeout policy every part shares.

Endpoints are left to botocore itself: `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_DYNAMODB`, ...) points every client at a
local moto server with no code path of our own.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Standard mode retries throttling and transient errors with jittered backoff; a phone call cannot wait long, so
# timeouts are short and attempts few.
BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=2,
    read_timeout=5,
    tcp_keepalive=True,
)


@cache
def _client(service: str) -> Any:
    # One botocore session per process (clients are thread-safe, sessions are not). botocore rather than boto3: the
    # boto3 import pulls in s3transfer, ~90 ms of every Lambda cold start, for nothing the clients need.
    return _session().create_client(service, config=BOTO_CONFIG)


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


def dynamodb_client() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


def s3_client() -> S3Client:
    client: S3Client = _client("s3")
    return client


def secretsmanager_client() -> SecretsManagerClient:
    client: SecretsManagerClient = _client("secretsmanager")
    return client


def cloudformation_client() -> CloudFormationClient:
    """The analysts' command reads a stack's outputs (`calls --stack NAME`)."""
    client: CloudFormationClient = _client("cloudformation")
    return client


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    _client.cache_clear()
    _session.cache_clear()
