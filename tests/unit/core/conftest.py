from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from callcore.local_resources import create_bucket, create_table
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive

TABLE = "calls-test"
BUCKET = "transcripts-test"


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def store(aws: None) -> CallStore:
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_table(client, TABLE)
    return CallStore(TABLE, client=client)


@pytest.fixture
def archive(aws: None) -> TranscriptArchive:
    client = boto3.client("s3", region_name="us-east-1")
    create_bucket(client, BUCKET)
    return TranscriptArchive(BUCKET, hash_key=b"test-hash-key", client=client)
