"""Answer the voice webhook: admit the call to the agent (`<Connect><Stream>` + token) or send it to the human line.

Inbound calls: the line is picked by the dialled number (`To`; `lambdas.logic.lines`) and the record is created here
already carrying the decision and the line's profile id and version:

1. no line answers the number (profiles are deployed, the number is none of theirs and no profile answers unknown
   numbers): "not in service", hang up; outcome `unknown_number`, no seat;
2. the line is closed (outside its `hours.weekly`, or on one of its `hours.holidays`, in its time zone) and its
   `hours.after_hours` rule is `transfer`: its human line (outcome `after_hours_to_human`), or `message`: its
   after-hours message, hang up (outcome `closed`); with `agent` the call is admitted as in opening hours;
3. admission is one DynamoDB transaction (put the record if absent + take a seat if `active < MAX_CONCURRENT_CALLS` +
   take a seat of the line if it has fewer than its `limits.max_concurrent_calls` + take a place among the caller's
   live calls if they have fewer than MAX_LIVE_CALLS_PER_CALLER, or, for withheld numbers, all of which share one
   place count, fewer than MAX_LIVE_WITHHELD_CALLS), so two calls cannot both take the last seat or the caller's last
   place, and a record can never exist without the seats it was admitted with. When no seat is free (the fleet's or
   the line's) the record is created as an overflow (no seat) and the caller is routed to the line's human (or, with
   none, hears an apology); a caller over their limit is answered busy (`<Reject>`).

A retried webhook finds the record (CallAlreadyExists) and gets the same TwiML, on the profile version the record
names; the counters moved once, with the first. Without profiles deployed there is one line, from the environment
settings, and steps 1 and 2 never apply.

The record keeps the caller's number, its keyed hash (the caller's profile and live calls are keyed by it, and it
outlives the number: see the sweep) and Twilio's StirVerstat, which decides whether the relay may use the caller's
history.

Outbound calls (POST /calls created the record; Twilio fetches this URL with `?direction=outbound` when the callee
answers, the first moment the CallSid can be bound into a token): the stream token expiry and the seat are written in
one transaction conditioned on the call being undecided, so only one request ever admits it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from callcore.masking import caller_hash
from callcore.models import CallDirection, CallOutcome, CallRecord, CallStatus, is_withheld_number
from callcore.profiles.model import AfterHours
from callcore.store import CallAlreadyExists, CallStore, SeatResult
from callcore.store.seats import WITHHELD_SLOT
from lambdas.logic.admission import agent_available, is_decided, twiml_for
from lambdas.logic.lines import Lines
from lambdas.models import VoiceWebhook
from lambdas.observability import Metric, bind_call, count, logger
from lambdas.settings import AnsweringMachineDetection, LambdaSettings

Clock = Callable[[], float]


def answer_call(
    webhook: VoiceWebhook,
    direction: CallDirection,
    *,
    settings: LambdaSettings,
    store: CallStore,
    lines: Lines,
    api_base_url: str,
    clock: Clock = time.time,
) -> str:
    bind_call(webhook.call_sid, caller=webhook.from_number, called=webhook.to_number)
    if direction is CallDirection.INBOUND:
        record = _answer_inbound(webhook, settings=settings, store=store, lines=lines, clock=clock)
    else:
        record = _answer_outbound(webhook, settings=settings, store=store, lines=lines, clock=clock)
    return twiml_for(record, line=lines.of_record(record), settings=settings, api_base_url=api_base_url)


def _token_expiry(settings: LambdaSettings, clock: Clock) -> int:
    return int(clock()) + settings.stream_token_ttl_seconds


def _answer_inbound(
    webhook: VoiceWebhook, *, settings: LambdaSettings, store: CallStore, lines: Lines, clock: Clock
) -> CallRecord:
    withheld = is_withheld_number(webhook.from_number)
    hashed = None if withheld else caller_hash(settings.caller_hash_key, webhook.from_number)
    line = lines.answering(webhook.to_number)
    record = CallRecord(
        call_sid=webhook.call_sid,
        account_sid=webhook.account_sid,
        direction=CallDirection.INBOUND,
        from_number=webhook.from_number,
        to_number=webhook.to_number,
        status=CallStatus.RINGING,
        stream_token_expiry=_token_expiry(settings, clock),
        caller_hash=hashed,
        caller_slot=hashed or WITHHELD_SLOT,
        stir_verstat=webhook.stir_verstat,
        **(line.record_fields if line else {}),
    )
    if line is None:
        logger.warning("no line answers the dialled number: not in service")
        return _unanswered(store, record, CallOutcome.UNKNOWN_NUMBER)[0]
    closed_rule = line.after_hours_rule(datetime.fromtimestamp(clock(), UTC))
    if closed_rule is AfterHours.TRANSFER:
        logger.info("after hours: the call goes to the line's human", extra={"profile_id": line.profile_id})
        return _unanswered(store, record, CallOutcome.AFTER_HOURS_TO_HUMAN)[0]
    if closed_rule is AfterHours.MESSAGE:
        logger.info("after hours: the line's message, then hang up", extra={"profile_id": line.profile_id})
        return _unanswered(store, record, CallOutcome.CLOSED)[0]

    caller_limit = settings.max_live_withheld_calls if withheld else settings.max_live_calls_per_caller
    try:
        seated = SeatResult.FULL
        if agent_available(settings, store):
            seated = (
                store.admit_call(
                    record,
                    max_active=settings.max_concurrent_calls,
                    max_caller_live=caller_limit,
                    max_line_active=line.max_active,
                )
                if caller_limit > 0
                else SeatResult.CALLER_LIMIT
            )
    except CallAlreadyExists as exists:
        logger.info("retried webhook: answering as the first time")
        return exists.existing
    if seated is SeatResult.TAKEN:
        _count_admitted(record)
        return record
    outcome = CallOutcome.CALLER_LIMIT if seated is SeatResult.CALLER_LIMIT else CallOutcome.OVERFLOW_TO_HUMAN
    unanswered, created = _unanswered(store, record, outcome)
    if not created:
        return unanswered
    if outcome is CallOutcome.CALLER_LIMIT:
        count(Metric.CALLS_OVER_CALLER_LIMIT)
        logger.warning("caller over their live-call limit: answered busy", extra={"withheld": withheld})
    else:
        if seated is SeatResult.LINE_FULL:
            logger.info("the line's seats are all taken", extra={"profile_id": line.profile_id})
        _count_overflow(unanswered)
    return unanswered


def _unanswered(store: CallStore, record: CallRecord, outcome: CallOutcome) -> tuple[CallRecord, bool]:
    """Store a call the agent does not take (no seat, no stream token) with why: (the record, True); a retried
    webhook gets (the first record, False)."""
    try:
        update = {"stream_token_expiry": None, "caller_slot": None, "outcome": outcome}
        return store.create_call(record.model_copy(update=update)), True
    except CallAlreadyExists as exists:
        logger.info("retried webhook: answering as the first time")
        return exists.existing, False


def _answer_outbound(
    webhook: VoiceWebhook, *, settings: LambdaSettings, store: CallStore, lines: Lines, clock: Clock
) -> CallRecord:
    record = store.get_call(webhook.call_sid)
    if record is None:
        # Twilio asked for the TwiML before POST /calls stored the record: create it from what Twilio tells us. The
        # call is placed from its line's first number: that number's line is its line.
        line = lines.answering(webhook.from_number)
        try:
            record = store.create_call(
                CallRecord(
                    call_sid=webhook.call_sid,
                    account_sid=webhook.account_sid,
                    direction=CallDirection.OUTBOUND,
                    from_number=webhook.from_number,
                    to_number=webhook.to_number,
                    status=CallStatus.IN_PROGRESS,
                    caller_hash=caller_hash(settings.caller_hash_key, webhook.to_number),
                    **(line.record_fields if line else {}),
                )
            )
        except CallAlreadyExists as exists:
            record = exists.existing
    if is_decided(record):
        logger.info("retried webhook: answering as the first time")
        return record

    if webhook.answered_by_machine and settings.answering_machine_detection is not AnsweringMachineDetection.OFF:
        logger.info("an answering machine picked up", extra={"answered_by": webhook.answered_by})
        return store.update_call(record.call_sid, {"outcome": CallOutcome.VOICEMAIL}, only_if_unset=("outcome",))

    if agent_available(settings, store):
        expiry = _token_expiry(settings, clock)
        seated_line = lines.of_record(record)
        seated = store.seat_call(
            record.call_sid,
            stream_token_expiry=expiry,
            max_active=settings.max_concurrent_calls,
            profile_id=seated_line.profile_id,
            max_line_active=seated_line.max_active,
        )
        if seated is SeatResult.TAKEN:
            stored = record.model_copy(update={"stream_token_expiry": expiry})  # what the transaction wrote
            _count_admitted(stored)
            return stored
        if seated is SeatResult.ALREADY_DECIDED:
            logger.info("a concurrent webhook decided the call: answering as it did")
            return store.require_call(record.call_sid)
    stored = store.update_call(record.call_sid, {"outcome": CallOutcome.OVERFLOW_TO_HUMAN}, only_if_unset=("outcome",))
    if stored.outcome is CallOutcome.OVERFLOW_TO_HUMAN and stored.stream_token_expiry is None:
        _count_overflow(stored)
    return stored


def _count_admitted(record: CallRecord) -> None:
    # No read of the counter for the log: this answer is on the caller's critical path (the ActiveCalls metric and
    # the table hold the number).
    count(Metric.CALLS_STARTED)
    logger.info("call admitted to the agent", extra={"direction": record.direction.value})


def _count_overflow(record: CallRecord) -> None:
    count(Metric.OVERFLOW_CALLS)
    logger.info("agent unavailable: call sent to the human line", extra={"direction": record.direction.value})
