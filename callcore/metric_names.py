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
