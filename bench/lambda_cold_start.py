"""Cold-start init time of each Lambda handler: the import of its module (Powertools, pydantic, botocore, twilio, the
resolver and its routes) in a fresh interpreter, as the Lambda runtime does it during INIT.

    .venv/bin/python bench/lambda_cold_start.py                # every handler, both layouts, 7 runs each
    .venv/bin/python bench/lambda_cold_start.py --runs 15      # steadier medians on a noisy machine
    .venv/bin/python bench/lambda_cold_start.py --top 15 lambdas.handlers.incoming_call   # what the time goes to
    .venv/bin/python bench/lambda_cold_start.py --check        # exit 1 if the TwiML route misses its goal
    .venv/bin/python bench/lambda_cold_start.py --layout shipped lambdas.handlers.incoming_call --runs 21

Two layouts, side by side in one run:
- `shipped`: what Lambda runs. The code asset and the dependency layer exactly as `cdk synth` stages them (for this
  machine's architecture), with the bytecode synth precompiles, on sys.path in Lambda's order (/var/task, /opt/python,
  then the runtime's own boto3/botocore), imported by a CPython of the runtime's version (3.12) that may not write
  bytecode (Lambda's disk is read-only). Needs a Python 3.12 (`python3.12` on PATH or LAMBDA_BYTECODE_PYTHON); the
  first run builds the layer with pip (cached under build/). The goal is judged on this layout when it is available.
- `dev`: this checkout's modules under this venv's Python, for comparison (and the goal's stand-in without a 3.12).

Measured side by side in the same rounds: a stdlib yardstick (this VM's speed drifts up to 2x with its neighbours'
load, so absolute figures only compare within one run) and, for the TwiML route, the floor: the import of the
third-party modules it is built on alone (TWIML_LIBRARIES), so the route's own share is the difference.

The child gets the variables Lambda sets (LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME and friends) plus the stack's own
function environment for the route (infra.constants), so Powertools behaves as deployed: the Tracer is on (and patches
botocore and requests) except on the TwiML route, which runs without the X-Ray SDK.
Settings and secrets are read on the first invocation, not at init, so they are not part of the figure (a Secrets
Manager round trip adds to the first request of a container; Powertools Parameters caches it afterwards).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from infra.bundling import (
    BUILD_DIR,
    BundlingError,
    build_dependency_layer,
    compile_bytecode,
    find_bytecode_python,
    stage_lambda_code,
)
from infra.constants import LAMBDA_BASE_ENVIRONMENT, LAMBDA_PYTHON_VERSION, ROUTES
from infra.settings import Architecture

REPO_ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 300.0
TWIML_ROUTE = "lambdas.handlers.incoming_call"
# The third-party modules the TwiML route imports, which the issue and the architecture prescribe (botocore for
# DynamoDB, Powertools' resolver/Logger/Metrics, pydantic, twilio's validator and TwiML): their import alone, measured
# side by side, is the floor no code of ours can go under; the handler's figure minus it is the route's own share.
TWIML_LIBRARIES = (
    "botocore.session",
    "botocore.config",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.metrics",
    "pydantic.main",
    "twilio.request_validator",
    "twilio.twiml.voice_response",
)
LIBRARIES = ",".join(TWIML_LIBRARIES)
# What the Lambda runtime itself puts on sys.path after the layer (/var/runtime): boto3 and botocore. Installed once
# for the bench at this venv's botocore version, precompiled like the rest.
RUNTIME_PACKAGES = ("boto3", "botocore")

# The deployed routes, with each function's own environment additions (e.g. no X-Ray SDK on the TwiML route).
ROUTES_BY_HANDLER = {route.handler.rpartition(".")[0]: route for route in ROUTES}
HANDLERS = {module: f"{'|'.join(route.methods)} {route.path}" for module, route in ROUTES_BY_HANDLER.items()}

# Before it imports the handler, the runtime's bootstrap (awslambdaric/bootstrap.py) has already imported these; they
# are the runtime's cost, not the route's.
_CHILD = """
import importlib, json, logging, os, sys, time, traceback
started = time.perf_counter()
for name in sys.argv[1].split(","):
    importlib.import_module(name)
elapsed = (time.perf_counter() - started) * 1000
print(json.dumps({"init_ms": elapsed, "modules": len(sys.modules)}))
"""

# The yardstick: import-bound work of the same kind as a handler's init (unmarshal bytecode, run module bodies),
# from the interpreter's own precompiled stdlib, so it does not change when the project's code does.
_REFERENCE_CHILD = """
import json, time
started = time.perf_counter()
import asyncio, decimal, email.message, http.cookiejar, logging.handlers, ssl, urllib.request, xml.etree.ElementTree
import argparse, dataclasses, inspect, typing, uuid, zipfile
print(json.dumps({"init_ms": (time.perf_counter() - started) * 1000}))
"""


@dataclass(frozen=True)
class Layout:
    """Where the handler modules come from and which interpreter imports them."""

    name: str
    interpreter: str
    task_root: Path
    python_path: tuple[Path, ...] = ()
    note: str = ""
    environment: dict[str, str] = field(default_factory=dict)

    def child_environment(self, module: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "TWILIO_", "PYTHON"))}
        route = ROUTES_BY_HANDLER.get(module)
        env.update(
            {
                "LAMBDA_TASK_ROOT": str(self.task_root),
                "AWS_LAMBDA_FUNCTION_NAME": "phone-agent-bench",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(route.memory_mib if route else 512),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_python{LAMBDA_PYTHON_VERSION}",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "POWERTOOLS_SERVICE_NAME": "phone-agent",
                "POWERTOOLS_METRICS_NAMESPACE": "PhoneVoiceAgent",
                "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's disk is read-only: nothing compiled here is kept
                **LAMBDA_BASE_ENVIRONMENT,
                **(route.environment if route else {}),
                **self.environment,
            }
        )
        if self.python_path:
            env["PYTHONPATH"] = os.pathsep.join(str(path) for path in self.python_path)
        return env

    def python(self, *arguments: str, environment_of: str) -> subprocess.CompletedProcess[str]:
        """This layout's interpreter in a fresh process, with the Lambda environment of the module `environment_of`."""
        return subprocess.run(
            [self.interpreter, "-s", *arguments],
            env=self.child_environment(environment_of),
            cwd=self.task_root,
            capture_output=True,
            text=True,
            check=False,
        )


@dataclass(frozen=True)
class Sample:
    init_ms: float
    modules: int


def dev_layout() -> Layout:
    return Layout("dev", sys.executable, REPO_ROOT, note=f"this checkout, Python {platform.python_version()}")


def host_architecture() -> Architecture:
    return Architecture.ARM64 if platform.machine().lower() in {"aarch64", "arm64"} else Architecture.X86_64


def runtime_packages(interpreter: str) -> Path:
    """boto3/botocore as the Lambda runtime provides them, installed once under build/ for `interpreter`."""
    pins = [f"{name}=={version(name)}" for name in RUNTIME_PACKAGES]
    key = hashlib.sha256("\0".join([*pins, interpreter]).encode()).hexdigest()[:16]
    target = BUILD_DIR / "bench-runtime" / key
    if not target.is_dir():
        staging = target.with_name(f".staging-{key}")
        result = subprocess.run(
            [interpreter, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(staging), *pins],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BundlingError(f"pip could not install {pins} for the bench:\n{result.stderr.strip()}")
        compile_bytecode(staging, interpreter)
        staging.rename(target)
    return target


def shipped_layout() -> Layout | None:
    """The staged asset + layer for this machine's architecture, with bytecode, under a Python 3.12; None without
    one (said on stderr)."""
    interpreter = find_bytecode_python()
    if interpreter is None:
        print(
            f"note: no Python {LAMBDA_PYTHON_VERSION} found (python{LAMBDA_PYTHON_VERSION} on PATH or "
            "LAMBDA_BYTECODE_PYTHON): the shipped layout is not measured",
            file=sys.stderr,
        )
        return None
    architecture = host_architecture()
    code = stage_lambda_code(bytecode_python=interpreter)
    layer = build_dependency_layer(architecture, bytecode_python=interpreter)
    runtime = runtime_packages(interpreter)
    return Layout(
        "shipped",
        interpreter,
        code.path,
        python_path=(code.path, layer.path / "python", runtime),
        note=f"staged asset + layer ({architecture.value}) with bytecode, Python {LAMBDA_PYTHON_VERSION}",
    )


def _last_json_line(layout: Layout, what: str, result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if result.returncode != 0:
        raise SystemExit(f"{what} ({layout.name}) failed:\n{result.stderr}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def measure(layout: Layout, module: str) -> Sample:
    """`module` is a handler module, or LIBRARIES (measured under the TwiML route's environment)."""
    result = layout.python("-c", _CHILD, module, environment_of=TWIML_ROUTE if module == LIBRARIES else module)
    data = _last_json_line(layout, f"importing {module}", result)
    return Sample(init_ms=float(data["init_ms"]), modules=int(data["modules"]))


def top_imports(layout: Layout, module: str, count: int) -> list[tuple[int, str]]:
    """The slowest imports (cumulative microseconds) from `python -X importtime`."""
    result = layout.python("-X", "importtime", "-c", f"import {module}", environment_of=module)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative_us.strip()), name.rstrip()))
    return sorted(rows, reverse=True)[:count]


def measure_reference(layout: Layout) -> float:
    """The machine-speed yardstick: the same interpreter importing a fixed set of precompiled stdlib modules."""
    result = layout.python("-c", _REFERENCE_CHILD, environment_of=TWIML_ROUTE)
    return float(_last_json_line(layout, "the yardstick", result)["init_ms"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per handler and layout (default 7)")
    parser.add_argument("--top", type=int, default=0, help="also list the N slowest imports of the named handlers")
    parser.add_argument("--layout", choices=("both", "shipped", "dev"), default="both", help="default: both")
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if {TWIML_ROUTE} misses the {GOAL_MS:.0f} ms goal"
    )
    parser.add_argument("handlers", nargs="*", help="handler modules (default: all)")
    args = parser.parse_args()

    modules = args.handlers or list(HANDLERS)
    layouts: list[Layout] = []
    if args.layout in ("both", "shipped"):
        shipped = shipped_layout()
        if shipped is not None:
            layouts.append(shipped)
    if args.layout in ("both", "dev") or not layouts:
        layouts.append(dev_layout())
    judged_layout = layouts[0]

    # Round-robin: every round measures the yardstick, the libraries and each handler in each layout once, so a slow
    # spell of this shared machine weighs on all of them alike instead of on whichever happened to run during it.
    measured = [LIBRARIES, *modules] if TWIML_ROUTE in modules else modules
    reference: list[float] = []
    samples: dict[tuple[str, str], list[Sample]] = {(lay.name, module): [] for lay in layouts for module in measured}
    for _ in range(args.runs):
        reference.append(measure_reference(judged_layout))
        for module in measured:
            for layout in layouts:
                samples[layout.name, module].append(measure(layout, module))
    reference_ms = statistics.median(reference)

    print(f"Lambda handler init: module import in a fresh interpreter, {args.runs} rounds, ms")
    for layout in layouts:
        print(f"  {layout.name}: {layout.note}")
    print(
        f"machine yardstick (stdlib imports, {judged_layout.name} interpreter): median {reference_ms:.1f} ms this run"
        " (this VM's speed drifts up to 2x with its neighbours' load: compare figures within one run)"
    )
    print(f"{'handler':<16} {'route':<31} {'layout':<8} {'median':>8} {'min':>8} {'max':>8} {'modules':>8}")
    medians: dict[tuple[str, str], float] = {}
    for module in measured:
        for layout in layouts:
            times = [sample.init_ms for sample in samples[layout.name, module]]
            medians[layout.name, module] = statistics.median(times)
            label = "(libraries)" if module == LIBRARIES else module.removeprefix("lambdas.handlers.")
            route = "what the TwiML route imports" if module == LIBRARIES else HANDLERS.get(module, "?")
            print(
                f"{label:<16} {route:<31} {layout.name:<8} {medians[layout.name, module]:>8.1f} "
                f"{min(times):>8.1f} {max(times):>8.1f} {samples[layout.name, module][-1].modules:>8}"
            )

    if args.top:
        for layout in layouts:
            for module in modules:
                print(f"\nslowest imports of {module}, {layout.name} layout (cumulative ms):")
                for cumulative_us, name in top_imports(layout, module, args.top):
                    print(f"  {cumulative_us / 1000:>8.1f}  {name}")

    if TWIML_ROUTE not in modules:
        return 0
    print()
    for layout in layouts:
        route_ms, floor_ms = medians[layout.name, TWIML_ROUTE], medians[layout.name, LIBRARIES]
        print(
            f"{TWIML_ROUTE} ({layout.name}): {route_ms:.1f} ms = libraries {floor_ms:.1f} ms + the route's own code "
            f"and models {route_ms - floor_ms:.1f} ms; {route_ms / reference_ms:.2f} x the yardstick"
        )
    judged = medians[judged_layout.name, TWIML_ROUTE]
    verdict = "meets" if judged < GOAL_MS else "MISSES"
    print(f"goal < {GOAL_MS:.0f} ms ({judged_layout.name} layout, median): {judged:.1f} ms {verdict} it in this run")
    return 1 if args.check and judged >= GOAL_MS else 0


if __name__ == "__main__":
    raise SystemExit(main())
