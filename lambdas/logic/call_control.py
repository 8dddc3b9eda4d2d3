"""Transfer and hang-up of a live call, asked for by the relay (or an operator) through the IAM-authorized API.

Both are idempotent on the record: a transfer is done once `transfer_target` is stored, a hang-up once the outcome
is `completed_by_agent`. A repeat answers 200 with the same result and does not call Twilio again. The relay must
therefore not write `completed_by_agent` itself before it asks for the hang-up.

A transfer is claimed on the record before Twilio is asked. A request that finds the claim held by an attempt still
within its lease answers 409 "transfer in progress" (with Retry-After): it did not transfer, and the attempt holding
the claim may still fail. A claim older than the lease (its holder crashed or timed out without releasing it) is
taken over.

An ended call: 409, unless it ended by this API's own earlier hang-up (then the repeat rule answers 200).

The human line a transfer dials is the one of the profile version the call's record names (`transfer.human_number`),
or HUMAN_TRANSFER_NUMBER without profiles; a line without one answers 503.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from callcore.masking import mask_digits, mask_phone
from callcore.models import CallOutcome, CallRecord
from callcore.store import CallNotFound, CallStore
from lambdas import twiml
from lambdas.errors import Conflict, InProgress, NotFound, ServiceUnavailable
from lambdas.logic.lines import Lines
from lambdas.models import HangupRequest, HangupResult, TransferRequest, TransferResult
from lambdas.observability import Metric, bind_call, count, logger
from lambdas.twilio_calls import TwilioCalls
from lambdas.webhooks import WHISPER_PATH

# The transfer function's timeout is 20 s (infra/constants.py): a claim older than that plus a margin belongs to an
# attempt that can no longer be running. Short enough that the relay, which waits on an in-progress transfer for up
# to 35 s (relay.call_control), is still waiting when a dead attempt's claim becomes free to take over.
TRANSFER_CLAIM_LEASE = timedelta(seconds=30)
# What a client should wait before asking again while a transfer is in progress: about one Twilio REST round trip.
TRANSFER_RETRY_AFTER_SECONDS = 2


def _require_call(store: CallStore, call_sid: str) -> CallRecord:
    try:
        return store.require_call(call_sid)
    except CallNotFound:
        raise NotFound(f"no call {call_sid}") from None


def transfer_call(
    call_sid: str,
    request: TransferRequest,
    *,
    store: CallStore,
    lines: Lines,
    calls: TwilioCalls,
    api_base_url: str,
) -> TransferResult:
    """Warm transfer: Twilio dials the call's human line; the human hears the summary (whisper URL) before the
    bridge."""
    bind_call(call_sid)
    record = _require_call(store, call_sid)
    settled = _already_settled(record)
    if settled is not None:
        return settled
    line = lines.of_record(record)
    human = line.human_number
    if not human:
        if line.published is None:
            raise ServiceUnavailable("transfers are not configured: HUMAN_TRANSFER_NUMBER is not set")
        raise ServiceUnavailable(
            f"transfers are not configured: profile {line.published.profile_id!r} has no transfer.human_number"
        )

    # The claim stores the summary before Twilio is asked (the whisper URL reads it when the human answers) and makes
    # a retry that arrives while this request still waits on Twilio (the relay timed out and asked again) wait for it
    # instead of sending a second redirect that would ring the human twice.
    if not store.claim_transfer(call_sid, reason=request.reason, summary=request.summary, lease=TRANSFER_CLAIM_LEASE):
        return _claim_refused(store, call_sid)
    whisper_url = f"{api_base_url}{WHISPER_PATH}?{urlencode({'callSid': call_sid})}"
    try:
        calls.redirect(
            call_sid,
            twiml.transfer_to_human(human_number=human, whisper_url=whisper_url),
            number_field="HUMAN_TRANSFER_NUMBER" if line.published is None else "transfer.human_number",
        )
    except Exception:
        store.release_transfer(call_sid)
        raise
    store.update_call(
        call_sid,
        {"transfer_target": human, "outcome": CallOutcome.TRANSFERRED},
        only_if_unset=("outcome", "transfer_target"),
    )
    # The caller now talks to a person: the agent's seat is free. At most once, whoever comes first (this, a retry,
    # the status callback of the call's end).
    store.release_seat(call_sid)
    count(Metric.TRANSFERS)
    logger.info(
        "call transferred to the human line",
        extra={"reason": mask_digits(request.reason), "target": mask_phone(human)},
    )
    return TransferResult(call_sid=call_sid, target=mask_phone(human))


def _already_settled(record: CallRecord) -> TransferResult | None:
    """A call already transferred answers 200 again (the API is idempotent); a call that ended otherwise is a 409."""
    if record.transfer_target is not None:
        logger.info("transfer repeated: the call was already transferred")
        return TransferResult(call_sid=record.call_sid, target=mask_phone(record.transfer_target))
    if record.status.is_terminal:
        raise Conflict("the call has already ended")
    return None


def _claim_refused(store: CallStore, call_sid: str) -> TransferResult:
    """Why the claim was not ours: the transfer already succeeded (200, idempotent), the call ended meanwhile (409), or
    another attempt holds the claim (409 in progress: retry later, the transfer may still fail)."""
    settled = _already_settled(_require_call(store, call_sid))
    if settled is not None:
        return settled
    logger.info("transfer already under way: not asking Twilio again")
    raise InProgress(
        "a transfer of this call is in progress: retry to learn whether it succeeded",
        retry_after_seconds=TRANSFER_RETRY_AFTER_SECONDS,
    )


def hang_up_call(call_sid: str, request: HangupRequest, *, store: CallStore, calls: TwilioCalls) -> HangupResult:
    bind_call(call_sid)
    record = _require_call(store, call_sid)
    if record.outcome is CallOutcome.COMPLETED_BY_AGENT:
        logger.info("hang-up repeated: the call was already hung up")
        return HangupResult(call_sid=call_sid)
    if record.transfer_target is not None:
        raise Conflict("the call was transferred to the human line: the agent no longer ends it")
    if record.status.is_terminal:
        raise Conflict("the call has already ended")

    calls.complete(call_sid)
    store.update_call(call_sid, {"outcome": CallOutcome.COMPLETED_BY_AGENT}, only_if_unset=("outcome",))
    count(Metric.HANG_UPS)
    logger.info("call hung up by the agent", extra={"reason": mask_digits(request.reason)})
    return HangupResult(call_sid=call_sid)
