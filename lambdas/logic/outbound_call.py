"""Place an outbound call with the agent on it.

Twilio assigns the CallSid when the call is created, and the stream token must be bound to it, so the call is not
created with inline TwiML: it is created with `url={api}/twilio/incoming?direction=outbound`. Twilio requests that
URL, signed and carrying the CallSid, when the callee answers (after answering-machine detection, when it is on);
the incoming-call route then answers with the same `<Connect><Stream>` + token as for an inbound call, and the relay
reads `direction=outbound` from the record to open with an outbound line.

A client retry must not dial twice: with an `Idempotency-Key` header the key is claimed in DynamoDB before Twilio is
asked. A retry with the same key and the same body gets the first answer; with another body, 422; while the first
request still runs, 409 (Retry-After). A request that failed before the call was placed (Twilio refused, the agent was
full) releases its key, so the retry may try again. A request that cannot tell whether Twilio placed the call (no
answer in time, a 5xx), or that died holding the key (older than IDEMPOTENCY_LEASE), leaves the key "outcome
unknown": a retry gets a final 409 saying so, never a second call and never an invitation to keep polling. Keys
expire after 24 hours.

The call is placed for one business line (`lambdas.logic.lines`): the profile `profileId` names (422 naming the field
when no such profile is deployed); none named, the line that answers unknown numbers, or a 422 when there is none
(without profiles deployed: the environment's line, TWILIO_PHONE_NUMBER as caller id). It is placed from the profile's
first number when it has one (else TWILIO_PHONE_NUMBER), its record carries the profile id and version, and the
answered call takes a seat of that line as well as the deployment's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from callcore.masking import caller_hash, mask_phone
from callcore.models import CallDirection, CallRecord, CallStatus, utc_now
from callcore.store import CallAlreadyExists, CallStore, IdempotencyState
from lambdas.errors import ApiError, Conflict, InProgress, ServiceUnavailable, Unprocessable
from lambdas.logic.admission import agent_can_take_call
from lambdas.logic.lines import Line, Lines, UnknownProfile
from lambdas.models import OutboundCallRequest, OutboundCallResult
from lambdas.observability import Metric, bind_call, count, logger
from lambdas.settings import AnsweringMachineDetection, LambdaSettings
from lambdas.twilio_calls import OutboundCall, TwilioCalls, TwilioOutcomeUnknown
from lambdas.webhooks import FALLBACK_PATH, INCOMING_PATH, STATUS_PATH

# Twilio's MachineDetection values: "Enable" answers as soon as it knows; "DetectMessageEnd" waits for the beep, which
# is what leaving a message needs.
MACHINE_DETECTION = {
    AnsweringMachineDetection.OFF: None,
    AnsweringMachineDetection.HANGUP: "Enable",
    AnsweringMachineDetection.MESSAGE: "DetectMessageEnd",
}
OUTBOUND_ANSWER_QUERY = "direction=outbound"
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_TTL = timedelta(hours=24)
# About one Twilio REST round trip: when the request holding the key will have answered.
IDEMPOTENCY_RETRY_AFTER_SECONDS = 2
# The outbound function's timeout is 20 s (infra/constants.py): a key held longer belongs to a request that died.
IDEMPOTENCY_LEASE = timedelta(seconds=60)


def place_outbound_call(
    request: OutboundCallRequest,
    *,
    settings: LambdaSettings,
    store: CallStore,
    lines: Lines,
    calls: TwilioCalls,
    api_base_url: str,
    idempotency_key: str | None = None,
) -> OutboundCallResult:
    if idempotency_key is None:
        return _place(request, settings=settings, store=store, lines=lines, calls=calls, api_base_url=api_base_url)

    fingerprint = request_fingerprint(request)
    claim = store.claim_idempotency_key(idempotency_key, request_hash=fingerprint, ttl=IDEMPOTENCY_TTL)
    if not claim.claimed:
        if claim.request_hash != fingerprint:
            raise Unprocessable(
                f"this {IDEMPOTENCY_HEADER} was used with a different request body", field=IDEMPOTENCY_HEADER
            )
        if claim.state is IdempotencyState.DONE and claim.result is not None:
            logger.info("repeated request: answering with the call it placed")
            bind_call(claim.result["callSid"], callee=request.to)
            return OutboundCallResult(call_sid=claim.result["callSid"])
        stale = claim.claimed_at is not None and utc_now() - claim.claimed_at > IDEMPOTENCY_LEASE
        if claim.state is IdempotencyState.UNKNOWN or (claim.state is IdempotencyState.IN_PROGRESS and stale):
            raise Conflict(
                f"the request with this {IDEMPOTENCY_HEADER} did not finish and whether Twilio placed the call is "
                "unknown: check the calls list before placing it again with a new key"
            )
        raise InProgress(
            f"a request with this {IDEMPOTENCY_HEADER} is still being processed: retry to get its result",
            retry_after_seconds=IDEMPOTENCY_RETRY_AFTER_SECONDS,
        )

    def placed(call_sid: str) -> None:
        # Recorded as soon as Twilio has the call, before anything else can fail: from here on a retry must get this
        # call back, never dial again.
        store.complete_idempotency_key(idempotency_key, {"callSid": call_sid})

    try:
        return _place(
            request,
            settings=settings,
            store=store,
            lines=lines,
            calls=calls,
            api_base_url=api_base_url,
            on_placed=placed,
        )
    except TwilioOutcomeUnknown:
        # The call may exist: a retry must not dial again.
        store.mark_idempotency_unknown(idempotency_key)
        raise
    except ApiError:
        # Refused before or by Twilio (not configured, agent full, number refused): nothing was dialled, so the key is
        # free for a retry. A crash leaves it held until IDEMPOTENCY_LEASE, then "outcome unknown": never a second call.
        store.release_idempotency_key(idempotency_key)
        raise


def request_fingerprint(request: OutboundCallRequest) -> str:
    """SHA-256 of the validated body in a canonical form: the same request written with other spacing or key order
    is the same request."""
    # A request naming no profile hashes as before profiles existed: keys claimed across the upgrade still match.
    unset = {"profile_id"} if request.profile_id is None else set()
    canonical = json.dumps(request.model_dump(mode="json", exclude=unset), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _place(
    request: OutboundCallRequest,
    *,
    settings: LambdaSettings,
    store: CallStore,
    lines: Lines,
    calls: TwilioCalls,
    api_base_url: str,
    on_placed: Callable[[str], None] | None = None,
) -> OutboundCallResult:
    line = _line_placing(request, lines)
    caller_id = line.caller_id or settings.twilio_phone_number
    if not caller_id:
        raise ServiceUnavailable(
            "outbound calls are not configured: TWILIO_PHONE_NUMBER is not set"
            + (f" and profile {line.profile_id!r} lists no numbers" if line.profile_id else "")
        )
    if not agent_can_take_call(settings, store, line):
        raise ServiceUnavailable("the agent or the line is at capacity or the relay is unhealthy: try again later")

    call_sid = calls.place_call(
        OutboundCall(
            to=request.to,
            from_number=caller_id,
            answer_url=f"{api_base_url}{INCOMING_PATH}?{OUTBOUND_ANSWER_QUERY}",
            status_callback_url=f"{api_base_url}{STATUS_PATH}",
            fallback_url=f"{api_base_url}{FALLBACK_PATH}",
            machine_detection=MACHINE_DETECTION[settings.answering_machine_detection],
        )
    )
    bind_call(call_sid, callee=request.to)
    if on_placed is not None:
        on_placed(call_sid)
    record = CallRecord(
        call_sid=call_sid,
        account_sid=settings.twilio_account_sid.get_secret_value(),
        direction=CallDirection.OUTBOUND,
        from_number=caller_id,
        to_number=request.to,
        status=CallStatus.QUEUED,
        context=request.context,
        caller_hash=caller_hash(settings.caller_hash_key, request.to),
        **line.record_fields,
    )
    try:
        store.create_call(record)
    except CallAlreadyExists:
        # The answer webhook won the race and created the record (on the line of the number the call is placed from,
        # the seat it may hold is that line's); only the context is ours to add.
        if request.context:
            store.update_call(call_sid, {"context": request.context}, only_if_unset=("context",))
    count(Metric.OUTBOUND_CALLS)
    logger.info("outbound call placed", extra={"callee": mask_phone(request.to), "profile_id": line.profile_id})
    return OutboundCallResult(call_sid=call_sid)


def _line_placing(request: OutboundCallRequest, lines: Lines) -> Line:
    try:
        return lines.placing(request.profile_id)
    except UnknownProfile as unknown:
        raise Unprocessable(str(unknown), field="profileId") from None
