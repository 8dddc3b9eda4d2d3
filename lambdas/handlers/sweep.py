"""Scheduled (EventBridge, every few minutes): finish ended calls whose end-of-call work never completed, reconcile
calls and seats whose messages were lost, and mask the numbers of finished calls (`lambdas.logic.sweep`). Not behind
API Gateway."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callcore.transcripts import TranscriptArchive
from lambdas.logic.sweep import sweep
from lambdas.observability import observed
from lambdas.settings import load_settings
from lambdas.twilio_calls import twilio_calls


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings()
    report = sweep(
        settings=settings,
        store=settings.call_store(),
        archive=TranscriptArchive(settings.transcripts_bucket, hash_key=settings.caller_hash_key),
        calls=twilio_calls(settings),
    )
    return report.as_dict()
