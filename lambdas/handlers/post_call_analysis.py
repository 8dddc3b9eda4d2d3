"""SQS (fed by the transcripts bucket's `transcripts/` object-created events): the post-call analysis
(`lambdas.logic.post_call_analysis`). A message that fails is reported back alone (partial batch response), so the
queue retries only it; after the queue's receive limit it moves to the dead-letter queue (alarmed)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from callcore.transcripts import TranscriptArchive
from lambdas.logic.post_call_analysis import AnalysisResult, analyze_transcript
from lambdas.observability import Metric, count, logger, observed
from lambdas.settings import load_analysis_settings
from lambdas.text_model import transcript_analyst

processor = BatchProcessor(event_type=EventType.SQS)


def transcript_keys(body: str) -> list[str]:
    """Object keys (URL-decoded) of an S3 event notification; none for S3's test event."""
    message = json.loads(body)
    if "Records" not in message:  # {"Event": "s3:TestEvent", ...} when the notification is configured
        return []
    # Keys arrive URL-encoded in the notification (`=` as %3D, a space as +).
    return [unquote_plus(record.s3.get_object.key) for record in S3Event(message).records]


def analyze_message(record: SQSRecord) -> None:
    settings = load_analysis_settings()
    analyst = transcript_analyst(
        settings.openai_api_key.get_secret_value(),
        settings.openai_base_url,
        settings.analysis_model,
        settings.analysis_timeout_seconds,
    )
    store = settings.call_store()
    archive = TranscriptArchive(settings.transcripts_bucket, hash_key=settings.caller_hash_key)
    for key in transcript_keys(record.body):
        result = analyze_transcript(key, settings=settings, store=store, archive=archive, analyst=analyst)
        if result is AnalysisResult.ANALYZED:
            count(Metric.CALLS_ANALYZED)
        logger.info("transcript handled", extra={"result": result.value})


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=analyze_message, processor=processor, context=context
    )
    return dict(response)
