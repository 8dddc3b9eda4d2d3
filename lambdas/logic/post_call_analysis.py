"""After the call: a transcript landed in S3, so the text model reads it (digits masked first) and says what the call
was about. The analysis goes under `analysis/` in the bucket and onto the call record, its cost into the call's cost,
and the call summary is rewritten so Athena's cost per day includes it.

Idempotent: a call that already has an analysis is skipped (S3 delivers an event at least once, and the status
Lambda may rewrite a transcript), and the record takes the analysis and its cost in one conditional write, so the
cost is added once. The S3 line is written before the record: when the record write fails, the retry redoes both.
"""

from __future__ import annotations

from enum import StrEnum

from callcore.masking import mask_every_digit
from callcore.models import CallAnalysis, CallRecord, TranscriptTurn, TurnRole, utc_now
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive, call_sid_of_transcript
from lambdas.observability import bind_call, logger
from lambdas.settings import AnalysisSettings
from lambdas.text_model import TranscriptAnalyst

CUT_MARK = "\n[... the middle of the call is left out ...]\n"


class AnalysisResult(StrEnum):
    ANALYZED = "analyzed"
    ALREADY_ANALYZED = "already_analyzed"
    NOT_A_TRANSCRIPT = "not_a_transcript"
    NO_RECORD = "no_record"
    NOTHING_SAID = "nothing_said"
    DISABLED = "disabled"


def conversation_text(record: CallRecord, turns: list[TranscriptTurn], *, max_chars: int) -> str:
    """What leaves AWS: the call's direction and ending, then who said what; every digit masked."""
    lines = [
        f"Call direction: {record.direction.value}.",
        f"Ended as: {record.outcome.value if record.outcome else '-'}.",
    ]
    if record.transfer_reason:
        lines.append(f"Transferred to a person because: {record.transfer_reason}")
    lines.append("")
    for turn in sorted(turns, key=lambda t: t.index):
        speaker = "agent" if turn.role is TurnRole.AGENT else "caller"
        cut = " (interrupted by the caller)" if turn.interrupted else ""
        tools = "".join(f" [looked up {tool.name}]" for tool in turn.tool_calls)
        if turn.text or tools:
            lines.append(f"{speaker}{cut}: {turn.text}{tools}")
    text = mask_every_digit("\n".join(lines))
    if len(text) <= max_chars:
        return text
    keep = (max_chars - len(CUT_MARK)) // 2
    return text[:keep] + CUT_MARK + text[-keep:]


def analyze_transcript(
    key: str,
    *,
    settings: AnalysisSettings,
    store: CallStore,
    archive: TranscriptArchive,
    analyst: TranscriptAnalyst,
) -> AnalysisResult:
    if not settings.analysis_enabled:
        return AnalysisResult.DISABLED
    call_sid = call_sid_of_transcript(key)
    if call_sid is None:
        logger.info("not a transcript: ignored", extra={"key": key})
        return AnalysisResult.NOT_A_TRANSCRIPT
    bind_call(call_sid)
    record = store.get_call(call_sid)
    if record is None:
        logger.warning("a transcript without a call record: ignored")
        return AnalysisResult.NO_RECORD
    if record.analysis is not None:
        logger.info("already analyzed: skipped")
        return AnalysisResult.ALREADY_ANALYZED
    turns = archive.read_transcript(call_sid, record.created_at) or []
    if not any(turn.text.strip() for turn in turns):
        logger.info("nothing was said: no analysis")
        return AnalysisResult.NOTHING_SAID
    answer = analyst.analyze(conversation_text(record, turns, max_chars=settings.analysis_max_transcript_chars))
    analysis = CallAnalysis(
        **answer.insights.model_dump(),
        model=answer.model,
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        cost_usd=settings.prices.cost(
            input_tokens=answer.input_tokens, cached_tokens=answer.cached_tokens, output_tokens=answer.output_tokens
        ),
        analyzed_at=utc_now(),
    )
    archive.write_analysis(record, analysis)
    if not store.record_analysis(call_sid, analysis):
        logger.info("another delivery analyzed the call first: its analysis stays")
        return AnalysisResult.ALREADY_ANALYZED
    archive.write_call_summary(store.require_call(call_sid))
    logger.info(
        "call analyzed",
        extra={
            "resolution": analysis.resolution.value,
            "lead_score": analysis.lead_score,
            "tokens": answer.input_tokens + answer.output_tokens,
            "cost_usd": str(analysis.cost_usd),
        },
    )
    return AnalysisResult.ANALYZED
