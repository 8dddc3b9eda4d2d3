"""One generated call history for the package (moto in-process), shared by the tests of the analysts' command."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from callcore.aws import dynamodb_client, reset_clients, s3_client
from callcore.local_resources import create_bucket, create_table
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive
from lambdas.settings import load_settings
from tests.unit.analyst.call_history import GeneratedCall, generate_history
from tests.unit.lambdas.events import BUCKET, LAMBDA_ENV, TABLE

HISTORY_CALLS = 200
HISTORY_DAYS = 6
ANALYST_ENV = {
    **LAMBDA_ENV,
    "TRANSCRIPT_GRACE_SECONDS": "0",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "COLUMNS": "220",
}


@dataclass
class History:
    store: CallStore
    archive: TranscriptArchive
    calls: list[GeneratedCall]
    now: datetime


@pytest.fixture(scope="package")
def history() -> Iterator[History]:
    with pytest.MonkeyPatch.context() as patch, mock_aws(), warnings.catch_warnings():
        # The status Lambda's empty metric flush warns on every callback (lambdas.observability silences it there).
        warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
        for name, value in ANALYST_ENV.items():
            patch.setenv(name, value)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            patch.setenv(name, "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        reset_clients()
        parameters.clear_caches()
        create_table(dynamodb_client(), TABLE)
        create_bucket(s3_client(), BUCKET)
        settings = load_settings()
        store = CallStore(TABLE)
        archive = TranscriptArchive(BUCKET, hash_key=settings.caller_hash_key)
        now = datetime.now(UTC)
        calls = generate_history(store, archive, calls=HISTORY_CALLS, days=HISTORY_DAYS, now=now)
        yield History(store=store, archive=archive, calls=calls, now=now)
        reset_clients()


@pytest.fixture
def analyst_env(history: History, monkeypatch: pytest.MonkeyPatch) -> History:
    """Each test's environment (the root conftest resets it per test): the history's table and bucket."""
    for name, value in ANALYST_ENV.items():
        monkeypatch.setenv(name, value)
    return history
