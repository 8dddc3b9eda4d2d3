"""Answer the voice webhook: admit the call to the agent (`<Connect><Stream>` + token) or send it to the human line.

Inbound calls: the record is created here already carrying the decision. Admission is one DynamoDB transaction (put
the record if absent + take a seat if `active < MAX_CONCURRENT_CALLS` + take a place among the caller's live calls if
they have fewer than MAX_LIVE_CALLS_PER_CALLER, or, for withheld numbers, all of which share one place count, fewer
than MAX_LIVE_WITHHELD_CALLS), so two calls cannot both take the last seat or the caller's last place, and a record can
never exist without the seat it was admitted with. When no seat is free the record is created as an overflow (no
seat) and the caller is routed to the human line; a caller over their limit is answered busy (`<Reject>`). A retried
webhook finds the record (CallAlreadyExists) and gets the same TwiML; the counters moved once, with the first.

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

from callcore.masking import caller_hash
from callcore.models import CallDirection, CallOutcome, CallRecord, CallStatus, is_withheld_number
from callcore.store import CallAlreadyExists, CallStore, SeatResult
from callcore.store.seats import WITHHELD_SLOT
from lambdas.logic.admission import agent_available, is_decided, twiml_for
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
    api_base_url: str,
    clock: Clock = time.time,
) -> str:
    bind_call(webhook.call_sid, caller=webhook.from_number, called=webhook.to_number)
    if direction is CallDirection.INBOUND:
        record = _answer_inbound(webhook, settings=settings, store=store, clock=clock)
    else:
        record = _answer_outbound(webhook, settings=settings, store=store, clock=clock)
    return twiml_for(record, settings=settings, api_base_url=api_base_url)


def _token_expiry(settings: LambdaSettings, clock: Clock) -> int:
    return int(clock()) + settings.stream_token_ttl_seconds


def _answer_inbound(webhook: VoiceWebhook, *, settings: LambdaSettings, store: CallStore, clock: Clock) -> CallRecord:
    withheld = is_withheld_number(webhook.from_number)
    hashed = None if withheld else caller_hash(settings.caller_hash_key, webhook.from_number)
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
    )
    caller_limit = settings.max_live_withheld_calls if withheld else settings.max_live_calls_per_caller
    unseated = {"stream_token_expiry": None, "caller_slot": None}
    try:
        seated = SeatResult.FULL
        if agent_available(settings, store):
            seated = (
                store.admit_call(record, max_active=settings.max_concurrent_calls, max_caller_live=caller_limit)
                if caller_limit > 0
                else SeatResult.CALLER_LIMIT
            )
        if seated is SeatResult.TAKEN:
            _count_admitted(record)
            return record
        outcome = CallOutcome.CALLER_LIMIT if seated is SeatResult.CALLER_LIMIT else CallOutcome.OVERFLOW_TO_HUMAN
        unanswered = store.create_call(record.model_copy(update={**unseated, "outcome": outcome}))
    except CallAlreadyExists as exists:
        logger.info("retried webhook: answering as the first time")
        return exists.existing
    if outcome is CallOutcome.CALLER_LIMIT:
        count(Metric.CALLS_OVER_CALLER_LIMIT)
        logger.warning("caller over their live-call limit: answered busy", extra={"withheld": withheld})
    else:
        _count_overflow(unanswered)
    return unanswered


def _answer_outbound(webhook: VoiceWebhook, *, settings: LambdaSettings, store: CallStore, clock: Clock) -> CallRecord:
    record = store.get_call(webhook.call_sid)
    if record is None:
        # Twilio asked for the TwiML before POST /calls stored the record: create it from what Twilio tells us.
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
        seated = store.seat_call(record.call_sid, stream_token_expiry=expiry, max_active=settings.max_concurrent_calls)
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
