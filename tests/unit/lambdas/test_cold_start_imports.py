"""What a cold start of each Lambda imports and builds, checked in a fresh interpreter: no timings (this machine's are
noisy; `bench/lambda_cold_start.py` measures them), only the things that make init slow when they creep back in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.constants import LAMBDA_BASE_ENVIRONMENT, ROUTES

REPO_ROOT = Path(__file__).resolve().parents[3]
ROUTE_BY_MODULE = {route.handler.rpartition(".")[0]: route for route in ROUTES}
TWIML_ROUTE = "lambdas.handlers.incoming_call"

_PROBE = """
import importlib, json, sys
import pydantic
importlib.import_module(sys.argv[1])
def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)
built = sorted(
    f"{cls.__module__}.{cls.__qualname__}"
    for cls in subclasses(pydantic.BaseModel)
    if cls.__module__.startswith(("callcore.", "lambdas.")) and cls.__pydantic_complete__
)
print(json.dumps({"modules": sorted(sys.modules), "built": built}))
"""


def _import_in_fresh_interpreter(module: str) -> tuple[set[str], set[str]]:
    route = ROUTE_BY_MODULE[module]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(REPO_ROOT),
            "AWS_LAMBDA_FUNCTION_NAME": "cold-start-probe",
            "AWS_REGION": "us-east-1",
            **LAMBDA_BASE_ENVIRONMENT,
            **route.environment,
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, module], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return set(data["modules"]), set(data["built"])


@pytest.fixture(scope="module")
def twiml_route_import() -> tuple[set[str], set[str]]:
    return _import_in_fresh_interpreter(TWIML_ROUTE)


def test_the_twiml_route_imports_no_sdk_it_does_not_call(twiml_route_import: tuple[set[str], set[str]]):
    modules, _built = twiml_route_import
    # boto3 (botocore is enough), the X-Ray SDK (~150-230 ms, disabled on this route), the twilio REST client and
    # requests (only call control uses them), aiohttp (the relay's).
    for heavy in ("boto3", "aws_xray_sdk", "twilio.rest", "requests", "aiohttp", "pydantic_settings"):
        assert heavy not in modules, f"{TWIML_ROUTE} imports {heavy} during init"


def test_the_twiml_route_builds_only_the_models_it_reads(twiml_route_import: tuple[set[str], set[str]]):
    _modules, built = twiml_route_import
    # The other routes' request models and the relay's turn and booking models are built on first use, not here.
    for deferred in (
        "lambdas.models.CallStatusCallback",
        "lambdas.models.TransferRequest",
        "lambdas.models.OutboundCallRequest",
        "callcore.models.TranscriptTurn",
        "callcore.models.Booking",
    ):
        assert deferred not in built
    assert "callcore.models.CallRecord" in built  # the record it creates: built at import, as the relay needs it


@pytest.mark.parametrize("module", sorted(set(ROUTE_BY_MODULE) - {TWIML_ROUTE}))
def test_every_handler_imports_cleanly_without_the_relays_packages(module: str):
    modules, _built = _import_in_fresh_interpreter(module)
    assert "aiohttp" not in modules
    assert "relay" not in modules
