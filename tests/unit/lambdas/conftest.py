"""Fixtures of the Lambda tests: the Lambda environment, moto (DynamoDB, S3, Secrets Manager) with the real table and
bucket, the in-process fake of the Twilio REST API, and readers for what the handlers logged and emitted."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from botocore.client import BaseClient
from moto import mock_aws

import callcore.aws
from callcore.aws import BOTO_CONFIG, dynamodb_client, s3_client
from callcore.local_resources import create_bucket, create_table
from callcore.models import CallDirection, CallRecord, CallStatus
from callcore.store import RELAY_HEARTBEAT_SK, CallStore, SeatResult
from callcore.transcripts import TranscriptArchive
from lambdas.logic.lines import receptionist_profiles_of
from lambdas.models import VoiceWebhook
from lambdas.observability import SERVICE_NAME, logger
from lambdas.twilio_calls import use_http_client
from tests.fakes.twilio_rest import FakeTwilioRest, InProcessTwilioHttpClient
from tests.unit.lambdas.events import (
    ACCOUNT_SID,
    AGENT_NUMBER,
    API_BASE,
    AUTH_TOKEN,
    BUCKET,
    CALLER_NUMBER,
    LAMBDA_ENV,
    TABLE,
    FakeLambdaContext,
    new_call_sid,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
RELAY_TASK_ID = "relay-test-task"


@pytest.fixture(autouse=True)
def _quiet_empty_metrics() -> None:
    # lambdas.observability ignores this Powertools warning process-wide; pytest resets filters for every test.
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in LAMBDA_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("PUBLIC_API_BASE_URL", "ANSWERING_MACHINE_DETECTION", "TWILIO_API_BASE_URL", "VOICEMAIL_MESSAGE"):
        monkeypatch.delenv(name, raising=False)
    return dict(LAMBDA_ENV)


_CLIENTS: dict[str, Any] = {}


def _client_reused_across_tests(service: str) -> Any:
    """Building a boto3 client parses botocore's service model (~0.1-0.2 s each); moto intercepts a client however
    old it is and resets its state at every `mock_aws()` start, so one client per service serves every test."""
    if service not in _CLIENTS:
        _CLIENTS[service] = boto3.session.Session().client(service, config=BOTO_CONFIG)  # type: ignore[call-overload]
    return _CLIENTS[service]


@dataclass
class Aws:
    store: CallStore
    archive: TranscriptArchive

    def written_items(self) -> list[dict[str, Any]]:
        """Every item in the table but the relay heartbeat this fixture wrote: what the code under test stored."""
        items = self.store.client.scan(TableName=self.store.table_name)["Items"]
        return [item for item in items if item["sk"]["S"] != RELAY_HEARTBEAT_SK]


@pytest.fixture
def aws(lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.setattr(callcore.aws, "_client", _client_reused_across_tests)
    with mock_aws():
        parameters.clear_caches()
        # One ReceptionistProfiles per container caches the catalog: every test starts from an empty table.
        receptionist_profiles_of.cache_clear()
        create_table(dynamodb_client(), TABLE)
        create_bucket(s3_client(), BUCKET)
        from lambdas.settings import load_settings

        settings = load_settings()
        store = CallStore(TABLE)
        # A relay is up: admission needs a fresh heartbeat (tests of a dead relay delete it).
        store.record_heartbeat(RELAY_TASK_ID)
        yield Aws(
            store=store,
            archive=TranscriptArchive(BUCKET, hash_key=settings.caller_hash_key),
        )
        parameters.clear_caches()


@pytest.fixture
def twilio(lambda_env: dict[str, str]) -> Iterator[FakeTwilioRest]:
    fake = FakeTwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    use_http_client(InProcessTwilioHttpClient(fake))
    yield fake
    use_http_client(None)


@dataclass
class Invocation:
    status: int
    body: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture
def invoke() -> Callable[[Handler, dict[str, Any]], Invocation]:
    def _invoke(handler: Handler, event: dict[str, Any]) -> Invocation:
        response = handler(event, FakeLambdaContext())
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name.lower()] = values[0]
        return Invocation(status=response["statusCode"], body=response.get("body") or "", headers=headers)

    return _invoke


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every line the Lambdas' Powertools logger writes during the test, formatted as in CloudWatch."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    std_logger = logging.getLogger(SERVICE_NAME)
    std_logger.addHandler(handler)
    yield stream
    std_logger.removeHandler(handler)


def emitted_metrics(stdout: str) -> dict[str, float]:
    """Metric name -> summed value over the EMF documents Powertools printed."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                name = metric["Name"]
                value = document[name]
                totals[name] = totals.get(name, 0) + (sum(value) if isinstance(value, list) else value)
    return totals


MakeCall = Callable[..., CallRecord]


@pytest.fixture
def make_call(aws: Aws) -> MakeCall:
    """Store a call record as the incoming-call route would have left it (admitted to the agent unless told)."""

    def _make(
        call_sid: str | None = None,
        *,
        status: CallStatus = CallStatus.IN_PROGRESS,
        admitted: bool = True,
        direction: CallDirection = CallDirection.INBOUND,
        **fields: Any,
    ) -> CallRecord:
        record = CallRecord(
            call_sid=call_sid or new_call_sid(),
            account_sid=ACCOUNT_SID,
            direction=direction,
            from_number=CALLER_NUMBER,
            to_number=AGENT_NUMBER,
            status=status,
            stream_token_expiry=int(time.time()) + 120 if admitted else None,
            **fields,
        )
        if admitted:  # as the voice webhook admits a call: the record and its seat in one transaction
            taken = aws.store.admit_call(record, max_active=10_000, max_caller_live=10, max_line_active=10_000)
            assert taken is SeatResult.TAKEN
        else:
            aws.store.create_call(record)
        return record

    return _make


def answer_together(webhooks: list[VoiceWebhook], table: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Answer the voice webhooks at the same moment, one thread each, as concurrent Lambda invocations would.

    Every webhook reads all it wants before any of them writes; then their requests reach DynamoDB one at a time
    (DynamoDB applies each atomically; moto does not when two threads call it at once). A decision taken by reading
    first and writing after would let all of them through; only a conditional write or transaction holds."""
    from lambdas.logic.incoming_call import answer_call
    from lambdas.logic.lines import deployment_lines
    from lambdas.settings import load_settings

    all_read = threading.Barrier(len(webhooks), timeout=10)
    one_at_a_time = threading.Lock()
    writing: set[int] = set()
    real_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def reads_first_then_serialized(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation in {"PutItem", "UpdateItem", "TransactWriteItems"} and threading.get_ident() not in writing:
            writing.add(threading.get_ident())
            all_read.wait()
        with one_at_a_time:
            return real_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", reads_first_then_serialized)
    settings = load_settings()

    def answer(webhook: VoiceWebhook) -> str:
        # The logic, not the handler: one resolver instance serves one request at a time, like a Lambda environment.
        return answer_call(
            webhook,
            CallDirection.INBOUND,
            settings=settings,
            store=CallStore(table),
            lines=deployment_lines(settings),
            api_base_url=API_BASE,
        )

    with ThreadPoolExecutor(max_workers=len(webhooks)) as pool:
        return list(pool.map(answer, webhooks))
