"""Answer the voice webhook: admit the call to the agent (`<Connect><Stream>` + token) or send it to the human line.

Inbound calls: the record is created here with one conditional put that already carries the decision, so a retried
webhook finds it (CallAlreadyExists) and gets the same TwiML, and the live-call counter moves once.

Outbound calls (POST /calls created the record; Twilio fetches this URL with `?direction=outbound` when the callee
answers, the first moment the CallSid can be bound into a token): the decision is written with `only_if_unset`, and
the counter moves only for the request whose decision was stored. Twilio retries a voice URL only after the first
attempt failed or timed out, so two attempts never race within the second that would make their expiries equal.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from callcore.models import CallDirection, CallOutcome, CallRecord, CallStatus
from callcore.store import CallAlreadyExists, CallStore
from lambdas.logic.admission import agent_can_take_call, is_decided, twiml_for
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
    admit = agent_can_take_call(settings, store)
    record = CallRecord(
        call_sid=webhook.call_sid,
        account_sid=webhook.account_sid,
        direction=CallDirection.INBOUND,
        from_number=webhook.from_number,
        to_number=webhook.to_number,
        status=CallStatus.RINGING,
        stream_token_expiry=_token_expiry(settings, clock) if admit else None,
        outcome=None if admit else CallOutcome.OVERFLOW_TO_HUMAN,
    )
    try:
        store.create_call(record)
    except CallAlreadyExists as exists:
        logger.info("retried webhook: answering as the first time")
        return exists.existing
    _count_decision(record, store)
    return record


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

    if not agent_can_take_call(settings, store):
        stored = store.update_call(
            record.call_sid, {"outcome": CallOutcome.OVERFLOW_TO_HUMAN}, only_if_unset=("outcome",)
        )
        if stored.outcome is CallOutcome.OVERFLOW_TO_HUMAN and stored.stream_token_expiry is None:
            _count_decision(stored, store)
        return stored

    expiry = _token_expiry(settings, clock)
    stored = store.update_call(record.call_sid, {"stream_token_expiry": expiry}, only_if_unset=("stream_token_expiry",))
    if stored.stream_token_expiry == expiry:
        _count_decision(stored, store)
    return stored


def _count_decision(record: CallRecord, store: CallStore) -> None:
    if record.stream_token_expiry is not None:
        active = store.adjust_active_calls(+1)
        count(Metric.CALLS_STARTED)
        logger.info("call admitted to the agent", extra={"active_calls": active, "direction": record.direction.value})
    else:
        count(Metric.OVERFLOW_CALLS)
        logger.info("agent unavailable: call sent to the human line", extra={"direction": record.direction.value})
