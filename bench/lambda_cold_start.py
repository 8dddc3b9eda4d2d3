"""Cold-start init time of each Lambda handler: the import of its module (Powertools, pydantic, boto3, twilio, the
resolver and its routes) in a fresh interpreter, as the Lambda runtime does it during INIT.

    .venv/bin/python bench/lambda_cold_start.py                # every handler, 7 fresh interpreters each
    .venv/bin/python bench/lambda_cold_start.py --runs 15      # steadier medians on a noisy machine
    .venv/bin/python bench/lambda_cold_start.py --top 15 lambdas.handlers.incoming_call   # what the time goes to
    .venv/bin/python bench/lambda_cold_start.py --check        # exit 1 if the TwiML route misses its goal

The child runs with the variables Lambda sets (LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME and friends), so Powertools
behaves as in Lambda: the Tracer is enabled and patches botocore and requests. Note that Powertools imports the X-Ray
SDK whether tracing is on or off, and the SDK's module-level recorder builds botocore X-Ray clients (for centralized
sampling) as it is imported: a fixed cost of using the Powertools Tracer, visible with --top.
Settings and secrets are read on the first invocation, not at init, so they are not part of the figure (a Secrets
Manager round trip adds to the first request of a container; Powertools Parameters caches it afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.constants import ROUTES

REPO_ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 300.0
TWIML_ROUTE = "lambdas.handlers.incoming_call"

# The deployed routes, with each function's own environment additions (e.g. no X-Ray SDK on the TwiML route).
ROUTES_BY_HANDLER = {route.handler.rpartition(".")[0]: route for route in ROUTES}
HANDLERS = {module: f"{'|'.join(route.methods)} {route.path}" for module, route in ROUTES_BY_HANDLER.items()}

_CHILD = """
import importlib, json, sys, time
started = time.perf_counter()
importlib.import_module(sys.argv[1])
elapsed = (time.perf_counter() - started) * 1000
print(json.dumps({"init_ms": elapsed, "modules": len(sys.modules)}))
"""


def lambda_like_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "TWILIO_"))}
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(REPO_ROOT),
            "AWS_LAMBDA_FUNCTION_NAME": "phone-agent-bench",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "phone-agent",
            "POWERTOOLS_METRICS_NAMESPACE": "PhoneVoiceAgent",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


@dataclass(frozen=True)
class Sample:
    init_ms: float
    modules: int


def measure(module: str, env: dict[str, str]) -> Sample:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, module], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"importing {module} failed:\n{result.stderr}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return Sample(init_ms=float(data["init_ms"]), modules=int(data["modules"]))


def top_imports(module: str, env: dict[str, str], count: int) -> list[tuple[int, str]]:
    """The slowest imports (cumulative microseconds) from `python -X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative_us.strip()), name.rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per handler (default 7)")
    parser.add_argument("--top", type=int, default=0, help="also list the N slowest imports of the named handlers")
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if the median of {TWIML_ROUTE} exceeds {GOAL_MS:.0f} ms"
    )
    parser.add_argument("handlers", nargs="*", help="handler modules (default: all)")
    args = parser.parse_args()

    modules = args.handlers or list(HANDLERS)
    env = lambda_like_environment()

    print(f"Lambda handler init: module import in a fresh interpreter, {args.runs} runs each, ms")
    print(f"Python {sys.version.split()[0]}; goal for {TWIML_ROUTE}: < {GOAL_MS:.0f} ms (median)")
    print(f"{'handler':<16} {'route':<31} {'median':>8} {'min':>8} {'max':>8} {'modules':>8}")
    medians: dict[str, float] = {}
    for module in modules:
        route = ROUTES_BY_HANDLER.get(module)
        route_env = {**env, **(route.environment if route else {})}
        samples = [measure(module, route_env) for _ in range(args.runs)]
        times = [sample.init_ms for sample in samples]
        medians[module] = statistics.median(times)
        print(
            f"{module.removeprefix('lambdas.handlers.'):<16} {HANDLERS.get(module, '?'):<31} "
            f"{medians[module]:>8.1f} {min(times):>8.1f} {max(times):>8.1f} {samples[-1].modules:>8}"
        )

    if args.top:
        for module in modules:
            print(f"\nslowest imports of {module} (cumulative ms):")
            route = ROUTES_BY_HANDLER.get(module)
            for cumulative_us, name in top_imports(module, {**env, **(route.environment if route else {})}, args.top):
                print(f"  {cumulative_us / 1000:>8.1f}  {name}")

    if args.check and TWIML_ROUTE in medians and medians[TWIML_ROUTE] > GOAL_MS:
        print(f"\n{TWIML_ROUTE}: {medians[TWIML_ROUTE]:.1f} ms exceeds the {GOAL_MS:.0f} ms goal", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
