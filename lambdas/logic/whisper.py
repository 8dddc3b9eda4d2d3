"""What the human hears before a transferred caller is bridged: the agent's reason and summary, from the record."""

from __future__ import annotations

from callcore.store import CallStore
from lambdas import twiml
from lambdas.models import WhisperQuery
from lambdas.observability import bind_call, logger


def whisper_for(query: WhisperQuery, *, store: CallStore) -> str:
    bind_call(query.call_sid)
    record = store.get_call(query.call_sid)
    if record is None or not record.transfer_summary:
        # Still connect the human: a missing summary must not drop a caller who is waiting to be bridged.
        logger.warning("whisper without a stored summary")
        return twiml.whisper(reason=None, summary=None)
    return twiml.whisper(reason=record.transfer_reason, summary=record.transfer_summary)
