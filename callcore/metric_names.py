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
