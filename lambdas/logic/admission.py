"""Whether the agent takes one more call, and the TwiML that answers a call once that is decided.

The decision is stored on the call record (a stream token expiry = admitted to the agent; outcome overflow_to_human,
caller_limit, voicemail, after_hours_to_human, closed or unknown_number otherwise), so every later answer for the
same call, a retried webhook above all, is rebuilt from the record and the line (profile version) it names, and is
byte-identical to the first one.
"""

from __future__ import annotations

from callcore import stream_token
from callcore.models import CallOutcome, CallRecord
from callcore.store import CallStore
from lambdas import twiml
from lambdas.logic.lines import Line
from lambdas.settings import AnsweringMachineDetection, LambdaSettings
from lambdas.webhooks import STREAM_STATUS_PATH


def agent_available(settings: LambdaSettings, store: CallStore) -> bool:
    """False when no call may be admitted at all: MAX_CONCURRENT_CALLS is 0 or the relay is unhealthy. Whether a seat
    is free is decided atomically with taking it (`CallStore.admit_call` / `seat_call`), never by a read here."""
    if settings.max_concurrent_calls == 0:
        return False
    return store.relay_is_healthy()


def agent_can_take_call(settings: LambdaSettings, store: CallStore, line: Line) -> bool:
    """A best-effort pre-check for POST /calls (refuse before dialling when the agent or the line is plainly full);
    the seats themselves are taken atomically when the callee answers."""
    if not agent_available(settings, store) or store.active_calls() >= settings.max_concurrent_calls:
        return False
    return line.max_active is None or store.active_calls(line.profile_id) < line.max_active


def is_decided(record: CallRecord) -> bool:
    return record.stream_token_expiry is not None or record.outcome in {
        CallOutcome.OVERFLOW_TO_HUMAN,
        CallOutcome.VOICEMAIL,
        CallOutcome.CALLER_LIMIT,
        CallOutcome.AFTER_HOURS_TO_HUMAN,
        CallOutcome.CLOSED,
        CallOutcome.UNKNOWN_NUMBER,
    }


def twiml_for(record: CallRecord, *, line: Line, settings: LambdaSettings, api_base_url: str) -> str:
    """The answer a decided call gets, on the line its record names. Deterministic: same record, line and settings,
    same bytes."""
    if record.stream_token_expiry is not None:
        token = stream_token.issue(settings.token_secret(), record.call_sid, expiry=record.stream_token_expiry)
        return twiml.connect_to_agent(
            relay_url=settings.relay_public_url,
            token=token,
            stream_status_url=f"{api_base_url}{STREAM_STATUS_PATH}",
            human_number=line.human_number,
        )
    if record.outcome is CallOutcome.CALLER_LIMIT:
        return twiml.reject_busy()
    if record.outcome is CallOutcome.VOICEMAIL:
        leave_message = settings.answering_machine_detection is AnsweringMachineDetection.MESSAGE
        return twiml.voicemail(settings.voicemail_message if leave_message else None)
    if record.outcome is CallOutcome.CLOSED:
        return twiml.say_and_hang_up(line.after_hours_message)
    if record.outcome is CallOutcome.UNKNOWN_NUMBER:
        return twiml.not_in_service()
    # Overflow and after hours with `after_hours = transfer`: the line's human, or an apology without one.
    return twiml.route_to_human(line.human_number)
