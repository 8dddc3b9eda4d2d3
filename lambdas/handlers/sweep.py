"""Scheduled (EventBridge, every few minutes): finish ended calls whose end-of-call work never completed
(`lambdas.logic.sweep`). Not behind API Gateway."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive
from lambdas.logic.sweep import sweep_unfinished_calls
from lambdas.observability import observed
from lambdas.settings import load_settings


@observed
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings()
    finished = sweep_unfinished_calls(
        settings=settings,
        store=CallStore(settings.calls_table),
        archive=TranscriptArchive(settings.transcripts_bucket, hash_key=settings.caller_hash_key),
    )
    return {"finished": finished}
