"""Place an outbound call with the agent on it.

Twilio assigns the CallSid when the call is created, and the stream token must be bound to it, so the call is not
created with inline TwiML: it is created with `url={api}/twilio/incoming?direction=outbound`. Twilio requests that
URL, signed and carrying the CallSid, when the callee answers (after answering-machine detection, when it is on);
the incoming-call route then answers with the same `<Connect><Stream>` + token as for an inbound call, and the relay
reads `direction=outbound` from the record to open with an outbound line.
"""

from __future__ import annotations

from callcore.masking import mask_phone
from callcore.models import CallDirection, CallRecord, CallStatus
from callcore.store import CallAlreadyExists, CallStore
from lambdas.errors import ServiceUnavailable
from lambdas.logic.admission import agent_can_take_call
from lambdas.models import OutboundCallRequest, OutboundCallResult
from lambdas.observability import Metric, bind_call, count, logger
from lambdas.settings import AnsweringMachineDetection, LambdaSettings
from lambdas.twilio_calls import OutboundCall, TwilioCalls
from lambdas.webhooks import FALLBACK_PATH, INCOMING_PATH, STATUS_PATH

# Twilio's MachineDetection values: "Enable" answers as soon as it knows; "DetectMessageEnd" waits for the beep, which
# is what leaving a message needs.
MACHINE_DETECTION = {
    AnsweringMachineDetection.OFF: None,
    AnsweringMachineDetection.HANGUP: "Enable",
    AnsweringMachineDetection.MESSAGE: "DetectMessageEnd",
}
OUTBOUND_ANSWER_QUERY = "direction=outbound"


def place_outbound_call(
    request: OutboundCallRequest,
    *,
    settings: LambdaSettings,
    store: CallStore,
    calls: TwilioCalls,
    api_base_url: str,
) -> OutboundCallResult:
    caller_id = settings.twilio_phone_number
    if not caller_id:
        raise ServiceUnavailable("outbound calls are not configured: TWILIO_PHONE_NUMBER is not set")
    if not agent_can_take_call(settings, store):
        raise ServiceUnavailable("the agent is at capacity or the relay is unhealthy: try again later")

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
    record = CallRecord(
        call_sid=call_sid,
        account_sid=settings.twilio_account_sid.get_secret_value(),
        direction=CallDirection.OUTBOUND,
        from_number=caller_id,
        to_number=request.to,
        status=CallStatus.QUEUED,
        context=request.context,
    )
    try:
        store.create_call(record)
    except CallAlreadyExists:
        # The answer webhook won the race and created the record; only the context is ours to add.
        if request.context:
            store.update_call(call_sid, {"context": request.context}, only_if_unset=("context",))
    count(Metric.OUTBOUND_CALLS)
    logger.info("outbound call placed", extra={"callee": mask_phone(request.to)})
    return OutboundCallResult(call_sid=call_sid)
