"""The post-call analysis end to end on loopback: DynamoDB, S3 and SQS on a moto server (S3 sends its object-created
events to the queue, as the stack configures it), the fake OpenAI Responses API, and a stand-in for Lambda's SQS
event source mapping that delivers batches, deletes what succeeded and lets the rest come back."""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from pydantic import SecretStr

from callcore.aws import dynamodb_client, reset_clients, s3_client
from callcore.local_resources import create_bucket, create_table
from callcore.settings import caller_hash_key
from callcore.store import CallStore
from callcore.transcripts import TRANSCRIPTS_PREFIX, TranscriptArchive
from lambdas.handlers import post_call_analysis
from lambdas.text_model import transcript_analyst
from tests.fakes.openai_responses import FakeResponsesApi, ResponsesServer
from tests.unit.lambdas.events import FakeLambdaContext

OPENAI_KEY = "test-openai-key"
STREAM_SECRET = "test-stream-token-secret"
MAX_RECEIVES = 3  # the stack's maxReceiveCount


@pytest.fixture
def openai_api() -> Iterator[ResponsesServer]:
    with ResponsesServer(FakeResponsesApi(api_key=OPENAI_KEY)) as server:
        yield server


@dataclass
class Pipeline:
    store: CallStore
    archive: TranscriptArchive
    queue_url: str
    dead_letter_url: str
    openai: FakeResponsesApi
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sqs(self) -> Any:
        return boto3.client("sqs")

    def deliver(self, *, rounds: int = MAX_RECEIVES + 1) -> int:
        """Lambda's event source mapping: receive a batch, invoke the handler, delete what it did not report as
        failed; a failed message becomes visible again at once (its visibility timeout, shortened). Returns how
        many messages were delivered in all."""
        delivered = 0
        for _ in range(rounds):
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1
            ).get("Messages", [])
            if not messages:
                continue
            delivered += len(messages)
            event = {"Records": [_sqs_record(message, self.queue_url) for message in messages]}
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="No application metrics to publish")
                    response = post_call_analysis.handler(event, cast(Any, FakeLambdaContext()))
            except BatchProcessingError:
                # Every message of the batch failed: the invocation fails and the whole batch comes back.
                response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
            self.results.append(response)
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            for message in messages:
                if message["MessageId"] in failed:
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return delivered

    def dead_letters(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        return messages

    def waiting(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _sqs_record(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:" + queue_url.rsplit("/", 1)[-1],
        "awsRegion": "us-east-1",
    }


@pytest.fixture
def pipeline(moto_endpoint: str, openai_api: ResponsesServer, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    suffix = uuid.uuid4().hex[:10]
    table, bucket = f"calls-{suffix}", f"transcripts-{suffix}"
    environment = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "CALLS_TABLE": table,
        "TRANSCRIPTS_BUCKET": bucket,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": openai_api.base_url,
        "STREAM_TOKEN_SECRET": STREAM_SECRET,
        "ANALYSIS_MODEL": "gpt-5-mini",
        "POWERTOOLS_SERVICE_NAME": "phone-agent",
        "POWERTOOLS_METRICS_NAMESPACE": "PhoneVoiceAgent",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    reset_clients()
    parameters.clear_caches()
    transcript_analyst.cache_clear()
    sqs = boto3.client("sqs")
    dead_letter_url = sqs.create_queue(QueueName=f"analysis-dlq-{suffix}")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"analysis-{suffix}",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVES})
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    create_table(dynamodb_client(), table)
    create_bucket(s3_client(), bucket)
    s3_client().put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": f"{TRANSCRIPTS_PREFIX}/"},
                                {"Name": "suffix", "Value": ".jsonl"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    pipeline = Pipeline(
        store=CallStore(table),
        archive=TranscriptArchive(bucket, hash_key=caller_hash_key(None, SecretStr(STREAM_SECRET))),
        queue_url=queue_url,
        dead_letter_url=dead_letter_url,
        openai=openai_api.fake,
    )
    pipeline.deliver(rounds=1)  # S3's test event, sent when the notification was configured
    return pipeline
