"""`make bench-load`: our relay and two Node relays under the shared load harness, side by side.

    .venv/bin/python bench/relay_load_side_by_side.py [--calls 100] [--duration-s 30] [--ramp-s S] [--warmup-s 2]
        [--relays ours,seeds,bridge,floor] [--json-out F]

Our relay runs as the image runs it (`python -m relay`, default settings, pool 0, no greeting cache) on core 0 when
`taskset` is present; this process (moto, the Lambdas behind the local API) and the harness stay on core 1. Every
call is admitted as in production: the harness posts the signed incoming-call webhook to the TwiML Lambda, which
writes the call record and seat and answers the signed stream token the relay checks. The harness comes from
RELAY_LOAD_HARNESS (the Makefile points it at the shared bench folder beside the repository). The Node baselines in
its folder (the seeds-style relay, and twilio-realtime-agents, a published bridge with mark-confirmed playback) run
when `npm` and their folders are present, their packages installed once into a cache folder outside the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_rows import HEADER, LoadRow, cpu_ratio, row_from_summary, summary_from_output  # noqa: E402
from bench.relay_latency import free_port, until_status  # noqa: E402
from callcore.aws import dynamodb_client, s3_client  # noqa: E402
from callcore.local_resources import create_bucket, create_table  # noqa: E402
from local.apigw import create_server_app  # noqa: E402
from local.stack import (  # noqa: E402
    RELAY_PUBLIC_URL,
    STAGE,
    PhoneNetwork,
    StackOptions,
    _aws_endpoint,
    _environment,
    serve,
    stack_environment,
    warm_up_dynamodb,
)
from tests.fakes.twilio_rest import TwilioRestServer  # noqa: E402

NODE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "phone-voice-agent"
RELAY_CORE, LOAD_CORE = 0, 1


def pinned(command: list[str], core: int) -> list[str]:
    """`taskset -c CORE command` where taskset exists and the machine has the core; else the command as is."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > core:
        return ["taskset", "-c", str(core), *command]
    return command


ADMISSIONS_PER_SECOND = 10  # the default ramp: the local table (one moto process on the load core) keeps up with it


def ramp_seconds(args: argparse.Namespace) -> float:
    """Call starts spread over this long: every relay alike, so that ours, whose calls are admitted through the
    TwiML Lambda and the local table first, has them all live before the window opens."""
    return float(args.ramp_s) if args.ramp_s is not None else max(5.0, args.calls / ADMISSIONS_PER_SECOND)


def run_harness(harness: Path, args: argparse.Namespace, relay_port: int, relay_pid: int, extra: list[str]) -> str:
    command = [
        sys.executable, str(harness), "--relay-url", f"ws://127.0.0.1:{relay_port}/media-stream",
        "--relay-pid", str(relay_pid), "--calls", str(args.calls), "--duration-s", str(args.duration_s),
        "--model-port", str(args.model_port), "--warmup-s", str(args.warmup_s), "--ramp-s", str(ramp_seconds(args)),
        *extra,
    ]  # fmt: skip
    if args.json_out:
        command += ["--json-out", args.json_out]
    done = subprocess.run(pinned(command, LOAD_CORE), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-2000:])
        raise SystemExit(f"the harness exited {done.returncode}")
    return done.stdout


RELAY_NICENESS = -10  # every relay under test alike, where permitted


def _raise_priority() -> None:
    """On a machine shared with other work, the relay under test must not queue behind it for its core: that would
    be measured as the relay's latency. Needs the privilege; without it the relay runs at normal priority."""
    with contextlib.suppress(PermissionError):
        os.nice(RELAY_NICENESS)


RELAY_LOG = ROOT / "build" / "bench-load-relay.log"  # our relay's log of the last run: why a call ended, if one did


def start_pinned(
    command: list[str], environment: dict[str, str], folder: Path, *, log: Path | None = None
) -> subprocess.Popen[bytes]:
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        pinned(command, RELAY_CORE),
        env=environment,
        stdout=subprocess.DEVNULL if log is None else log.open("wb"),
        stderr=None if log is None else subprocess.STDOUT,
        cwd=folder,
        preexec_fn=_raise_priority,  # noqa: PLW1509 - only os.nice in the child, no threads involved
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


async def measure_ours(
    harness: Path, args: argparse.Namespace, observe: Callable[[int], AbstractContextManager[object]] | None = None
) -> LoadRow:
    """Our relay under the harness. `observe(relay_pid)` (a profiler attached for the run) wraps the harness run."""
    options = StackOptions()
    auth_token = os.urandom(16).hex()
    model_url = f"ws://127.0.0.1:{args.model_port}/v1/realtime?model=gpt-realtime"
    loop = asyncio.get_running_loop()
    with _aws_endpoint() as (aws, _external), TwilioRestServer(PhoneNetwork(loop, auth_token)) as twilio_rest:
        environment = {
            **stack_environment(aws, auth_token, twilio_rest.base_url, model_url, options),
            "GREETING_CACHE": "false",
            "MODEL_POOL_SIZE": "0",
            # Every harness call dials from one number: seats and the per-caller cap must fit them all.
            "MAX_CONCURRENT_CALLS": str(max(args.calls, 50)),
            "MAX_LIVE_CALLS_PER_CALLER": str(max(args.calls, 2)),
        }
        with _environment(environment):
            create_table(dynamodb_client(), environment["CALLS_TABLE"])
            create_bucket(s3_client(), environment["TRANSCRIPTS_BUCKET"])
            warm_up_dynamodb(environment["CALLS_TABLE"])
            async with serve(create_server_app(STAGE)) as api_origin:
                os.environ["CALL_CONTROL_URL"] = f"{api_origin}/{STAGE}"
                relay_port = free_port()
                relay = start_pinned(
                    [sys.executable, "-m", "relay"], {**os.environ, "PORT": str(relay_port)}, ROOT, log=RELAY_LOG
                )
                try:
                    await until_status(relay_port, "/healthz")
                    extra = [
                        "--twilio-auth-token", auth_token, "--sign-url", RELAY_PUBLIC_URL,
                        "--webhook-url", f"{api_origin}/{STAGE}/twilio/incoming", "--webhook-to", options.agent_number,
                    ]  # fmt: skip
                    # The harness blocks; the local API (the TwiML Lambda) must keep answering on this loop.
                    with observe(relay.pid) if observe is not None else contextlib.nullcontext():
                        stdout = await asyncio.to_thread(run_harness, harness, args, relay_port, relay.pid, extra)
                finally:
                    stop(relay)
    return row_from_summary("ours (python -m relay)", summary_from_output(stdout))


@dataclass(frozen=True)
class NodeBaseline:
    """A Node relay in the harness's folder: its label, folder name, entry script and cache folder name."""

    label: str
    folder: str
    entry: str
    cache: str


SEEDS_STYLE = NodeBaseline("Node relay, seeds' style", "baseline-node-relay", "relay.js", "node-baseline")
PUBLISHED_BRIDGE = NodeBaseline(
    "twilio-realtime-agents 1.2 (published bridge)", "baseline-tra", "relay.mjs", "tra-baseline"
)


BASELINES = {"seeds": SEEDS_STYLE, "bridge": PUBLISHED_BRIDGE}
RELAYS = ("ours", *BASELINES, "floor")
DEFAULT_RELAYS = ",".join(RELAYS)
FLOOR_LABEL = "floor: the seeds' pattern on aiohttp + uvloop"


def relay_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(RELAYS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"relays are a comma-separated subset of {', '.join(RELAYS)}; got {text!r}")
    return names


def node_baseline_dir(source: Path, baseline: NodeBaseline) -> Path | None:
    """The baseline with its packages: its own node_modules, else a copy installed once into the cache folder."""
    if (source / "node_modules").is_dir():
        return source
    cache = NODE_CACHE / baseline.cache
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", baseline.entry):
        shutil.copy2(source / name, cache / name)
    if not (cache / "node_modules").is_dir():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=cache, check=False)
        if done.returncode != 0:
            print(f"{baseline.label} skipped: npm ci failed in {cache}")
            return None
    return cache


def node_source_present(source: Path, baseline: NodeBaseline) -> bool:
    if shutil.which("npm") and shutil.which("node") and (source / baseline.entry).is_file():
        return True
    print(f"{baseline.label} skipped: needs npm, node and {source}/{baseline.entry}")
    return False


async def until_listening(port: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Until the port accepts a connection (the published bridge serves its WebSocket path and nothing else)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


async def measure_node(
    harness: Path, args: argparse.Namespace, harness_dir: Path, baseline: NodeBaseline
) -> LoadRow | None:
    source = harness_dir / baseline.folder
    if not node_source_present(source, baseline):
        return None
    folder = await asyncio.to_thread(node_baseline_dir, source, baseline)
    if folder is None:
        return None
    port = free_port()
    environment = {
        **os.environ,
        "PORT": str(port),
        "MODEL_URL": f"ws://127.0.0.1:{args.model_port}/v1/realtime?model=gpt-realtime",
    }
    relay = start_pinned(["node", baseline.entry], environment, folder)
    try:
        await until_listening(port)
        stdout = await asyncio.to_thread(run_harness, harness, args, port, relay.pid, ["--relay-pid-tree"])
    finally:
        stop(relay)
    return row_from_summary(baseline.label, summary_from_output(stdout))


async def measure_floor(harness: Path, args: argparse.Namespace) -> LoadRow:
    """`bench/floor_relay.py`: the seeds' pattern on our stack, to tell the stack's cost from the product's."""
    port = free_port()
    environment = {
        **os.environ,
        "PORT": str(port),
        "MODEL_URL": f"ws://127.0.0.1:{args.model_port}/v1/realtime?model=gpt-realtime",
    }
    relay = start_pinned([sys.executable, str(ROOT / "bench" / "floor_relay.py")], environment, ROOT)
    try:
        await until_listening(port)
        stdout = await asyncio.to_thread(run_harness, harness, args, port, relay.pid, [])
    finally:
        stop(relay)
    return row_from_summary(FLOOR_LABEL, summary_from_output(stdout))


async def main(args: argparse.Namespace, harness: Path) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's access log
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > LOAD_CORE:
        os.sched_setaffinity(0, {LOAD_CORE})  # moto and the Lambdas must not take the relay's core
    ours = await measure_ours(harness, args) if "ours" in args.relays else None
    rows = [
        row
        for name, baseline in BASELINES.items()
        if name in args.relays and (row := await measure_node(harness, args, harness.parent, baseline)) is not None
    ]
    if "floor" in args.relays:
        rows.append(await measure_floor(harness, args))
    print(HEADER)
    for row in [ours, *rows]:
        if row is not None:
            print(row.line())
    if ours is not None:
        for row in rows:
            print(f"CPU ratio ours / {row.relay}: {cpu_ratio(ours, row):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--duration-s", type=int, default=30)
    parser.add_argument("--model-port", type=int, default=free_port())
    parser.add_argument(
        "--relays",
        type=relay_names,
        default=relay_names(DEFAULT_RELAYS),
        help=f"which relays to run, comma-separated, of {','.join(RELAYS)} (default {DEFAULT_RELAYS}; the ratios "
        "need ours; floor is the seeds' pattern on our stack, bench/floor_relay.py)",
    )
    parser.add_argument("--json-out", help="append each run's full harness summary (one JSON line) to this file")
    parser.add_argument(
        "--ramp-s",
        type=float,
        default=None,
        help=f"call starts spread over this long (default: {ADMISSIONS_PER_SECOND} a second, at least 5 s)",
    )
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=2,
        help="settle time after the ramp (longer on a loaded machine, where "
        "admissions run late and their catch-up would otherwise count as latency)",
    )
    harness = Path(os.environ.get("RELAY_LOAD_HARNESS", ""))
    if not harness.name or not harness.is_file():
        print(f"bench-load skipped: no load harness at {harness} (set RELAY_LOAD_HARNESS to its relay_load.py)")
        raise SystemExit(0)
    asyncio.run(main(parser.parse_args(), harness))
