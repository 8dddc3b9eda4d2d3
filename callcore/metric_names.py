"""The metric names every part emits and the stack's dashboard, alarms and autoscaling read: one definition.

Relay metrics are EMF documents with the dimension `Service=relay`; Lambda metrics come from Powertools Metrics with
the dimension `service=<POWERTOOLS_SERVICE_NAME>` (`phone-agent`). Both in one namespace: `PhoneVoiceAgent` locally,
the stack's name in AWS (each deployed stack in a namespace of its own; `infra.settings.DeploySettings`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

METRICS_NAMESPACE: Final = "PhoneVoiceAgent"
RELAY_SERVICE: Final = "relay"
LAMBDA_SERVICE: Final = "phone-agent"


class RelayMetric(StrEnum):
    # Per task, every 10 s (only then, so each task weighs the same in the Average): what autoscaling tracks.
    ACTIVE_CALLS = "ActiveCalls"
    GREETING_LATENCY = "GreetingLatency"
    TURN_LATENCY = "TurnLatency"
    BARGE_INS = "BargeIns"
    TOOL_LATENCY = "ToolLatency"
    TOOL_ERRORS = "ToolErrors"
    MODEL_ERRORS = "ModelErrors"
    CALL_DURATION = "CallDuration"
    CALL_COST = "CallCost"
    REJECTED_STREAMS = "RejectedStreams"
    TRANSFERS = "Transfers"
    MODEL_RECONNECTS = "ModelReconnects"  # a model session lost mid-call was replaced and re-seeded: the call went on
    MODEL_ROTATIONS = "ModelRotations"  # a call moved to a fresh model session before OpenAI's 60-minute limit
    SILENCE_ENDS = "SilenceEnds"  # calls the agent ended because nobody spoke after it checked in
    # A starting task that took calls at READINESS_DEADLINE_SECONDS without its greetings or model pool ready.
    READY_AT_DEADLINE = "ReadyAtDeadline"


class LambdaMetric(StrEnum):
    CALLS_STARTED = "CallsStarted"
    OVERFLOW_CALLS = "OverflowCalls"
    TRANSFERS = "Transfers"
    HANG_UPS = "HangUps"
    REJECTED_SIGNATURES = "RejectedSignatures"
    OUTBOUND_CALLS = "OutboundCalls"
    TRANSCRIPTS_RECOVERED = "TranscriptsRecovered"
    CALLS_SWEPT = "CallsSwept"  # ended calls whose end-of-call work the sweep had to finish
    CALLS_ANALYZED = "CallsAnalyzed"  # post-call analyses made (the text model answered and the record took it)
    RECORDINGS_STORED = "RecordingsStored"  # call recordings copied into the bucket and deleted at Twilio
    CALLS_OVER_CALLER_LIMIT = "CallsOverCallerLimit"  # answered busy: the caller already had their most live calls
    # Calls still open well past MAX_CALL_SECONDS that the sweep asked Twilio about (their last callback was lost).
    CALLS_RECONCILED = "CallsReconciled"
    # Seats the fleet counter was off by, against the seats the call records hold; corrected when seen. Never 0 for
    # long in a healthy system: its alarm means a seat moved outside the records' transactions.
    SEAT_DRIFT = "SeatDrift"
    NUMBERS_REDACTED = "NumbersRedacted"  # finished records whose caller number the sweep replaced by its masked form
