"""Powertools Logger, Tracer and Metrics: created once per process, shared by every handler module.

Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE (set by the stack); the
defaults here are the contract's values so a local run emits the same metric names. Metrics carry the dimension
`service=<service name>` that Powertools adds by itself.

Every handler wraps itself in `observed`, which applies the decorators in one fixed order (logger context outermost,
then metrics flushing, then tracing), so no handler can get the order wrong.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

from callcore.masking import mask_phone
from callcore.metric_names import LAMBDA_SERVICE, LambdaMetric
from callcore.metric_names import METRICS_NAMESPACE as DEFAULT_NAMESPACE

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or LAMBDA_SERVICE
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE

# The X-Ray SDK costs ~150-230 ms at import (it builds a botocore client for sampling). A function on the caller's
# critical path (the TwiML webhook) sets POWERTOOLS_TRACE_DISABLED=true and skips it entirely; Lambda's active
# tracing still records its invocation segment. Every other function traces its DynamoDB/S3/Twilio calls.
TRACING_ENABLED = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() not in {"true", "1"}

logger = Logger(service=SERVICE_NAME)
# Patch only what the Lambdas call out with: botocore (DynamoDB, S3, Secrets Manager) and requests (the twilio SDK).
# patch_all would import and patch every supported library the bundle happens to contain, at init.
tracer = Tracer(service=SERVICE_NAME, patch_modules=("botocore", "requests")) if TRACING_ENABLED else None
metrics = Metrics(service=SERVICE_NAME, namespace=METRICS_NAMESPACE)

# Most webhooks (a status callback, a retried answer) rightly emit no metric; Powertools warns on every such flush.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


# The Lambdas' metric names: one definition in the core, read by the stack's dashboard and alarms too.
Metric = LambdaMetric


def count(metric: Metric, value: int = 1) -> None:
    metrics.add_metric(name=metric.value, unit=MetricUnit.Count, value=value)


def bind_call(call_sid: str, **numbers: str | None) -> None:
    """Make the CallSid the correlation id of every later log line of this invocation; numbers only masked."""
    logger.set_correlation_id(call_sid)
    masked = {name: mask_phone(number) for name, number in numbers.items() if number}
    if masked:
        logger.append_keys(**masked)


LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def observed(handler: LambdaHandler) -> LambdaHandler:
    """Logger context (state cleared per invocation, the event never logged: it carries phone numbers), metrics
    flushed as EMF, X-Ray tracing without the response (it holds stream tokens)."""
    traced = tracer.capture_lambda_handler(handler, capture_response=False) if tracer is not None else handler
    # Powertools emits ColdStart through `single_metric`, which ignores POWERTOOLS_METRICS_DISABLED (local runs set it):
    # ask for it only where metrics are on.
    flushed = metrics.log_metrics(traced, capture_cold_start_metric=not is_metrics_disabled())
    return logger.inject_lambda_context(flushed, clear_state=True, log_event=False)
