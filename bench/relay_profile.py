"""`make bench-profile`: where our relay's CPU goes under the shared load harness, sampled by py-spy.

    .venv/bin/python bench/relay_profile.py [--calls 100] [--duration-s 30] [--top 20] [--out build/relay-profile.txt]

The relay runs exactly as `make bench-load` runs it (`python -m relay` pinned to core 0, every call admitted through
the TwiML Lambda); py-spy attaches to it for the harness's measurement window, from core 1, without pausing it
(`--nonblocking`), and writes the collapsed stacks (`--out`, for flame graph tools). Printed: the harness row (CPU
per call-second from the same run) and each top function's share of the relay's busy samples, by itself ("self")
and with what it calls ("total").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_rows import HEADER  # noqa: E402
from bench.relay_latency import free_port  # noqa: E402
from bench.relay_load_side_by_side import LOAD_CORE, measure_ours, pinned, ramp_seconds  # noqa: E402

# One sampler at a modest rate: py-spy shares the load core with the harness, which must not saturate.
SAMPLES_PER_SECOND = 100
HARNESS_WARMUP_S = 2  # relay_load.py's default for --warmup-s
# "name (path/to/module.py:123)" as py-spy writes a frame; the line number is dropped to sum a function's lines.
_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class ProfileEntry:
    function: str
    self_pct: float
    total_pct: float


def _function(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["path"]
    for marker in ("site-packages/", "relay_container/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['name']} ({path})"


def top_entries(collapsed: Iterable[str], top: int) -> tuple[int, list[ProfileEntry]]:
    """From py-spy's collapsed stacks ("frame;frame;... count" per line): the total sample count and the `top`
    functions by their own samples, each with its self and inclusive share of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";")]
        # The first frame is the thread ("process 12 ..."/"thread ..."), never a function.
        functions = [frame for frame in frames if not frame.startswith(("process ", "thread "))]
        if not functions:
            continue
        total += count
        own[functions[-1]] += count
        for function in set(functions):
            inclusive[function] += count
    entries = [
        ProfileEntry(function, 100 * samples / total, 100 * inclusive[function] / total)
        for function, samples in own.most_common(top)
    ]
    return total, entries


def table(total: int, entries: list[ProfileEntry]) -> str:
    lines = [f"{total} busy samples", "| self % | total % | function |", "| --- | --- | --- |"]
    lines += [f"| {e.self_pct:.1f} | {e.total_pct:.1f} | `{e.function}` |" for e in entries]
    return "\n".join(lines)


@contextlib.contextmanager
def py_spy(out: Path, relay_pid: int, *, after_s: float, duration_s: int) -> Iterator[subprocess.Popen[bytes]]:
    """py-spy recording `relay_pid` from the load core over the harness's measurement window: it starts once the
    calls have ramped up and settled (`after_s`), so admissions are not in the profile, and stops on its own."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(binary).is_file():
        raise SystemExit("py-spy is not installed: `make setup` installs the dev extras, which have it")
    # --gil: only samples where the relay holds the GIL. uvloop waits for its sockets in C with the GIL released,
    # and py-spy cannot tell that wait from work: without it the wait showed as half the profile, in `Runner.run`.
    record = [
        binary, "record", "--pid", str(relay_pid), "--rate", str(SAMPLES_PER_SECOND), "--nonblocking", "--gil",
        "--duration", str(duration_s), "--format", "raw", "--output", str(out),
    ]  # fmt: skip
    recorder = subprocess.Popen(
        pinned(["sh", "-c", f"sleep {after_s:g} && exec {shlex.join(record)}"], LOAD_CORE),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield recorder
    finally:
        try:
            _, errors = recorder.communicate(timeout=after_s + duration_s + 60)
        except subprocess.TimeoutExpired:
            recorder.send_signal(signal.SIGINT)
            _, errors = recorder.communicate(timeout=30)
        if recorder.returncode != 0:
            sys.stderr.write(errors.decode(errors="replace")[-2000:])


async def main(args: argparse.Namespace, harness: Path) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > LOAD_CORE:
        os.sched_setaffinity(0, {LOAD_CORE})
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's access log
    collapsed = Path(args.out)
    collapsed.parent.mkdir(parents=True, exist_ok=True)
    # The ramp and warm-up come first; the profile covers the steady state only.
    after_s = ramp_seconds(args) + args.warmup_s
    row = await measure_ours(
        harness, args, lambda pid: py_spy(collapsed, pid, after_s=after_s, duration_s=args.duration_s)
    )
    total, entries = top_entries((await asyncio.to_thread(collapsed.read_text)).splitlines(), args.top)
    print(HEADER)
    print(row.line())
    print()
    print(table(total, entries))
    print(f"\ncollapsed stacks (for flame graph tools): {collapsed}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--duration-s", type=int, default=30)
    parser.add_argument("--model-port", type=int, default=free_port())
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--json-out", help="append the harness's full summary (one JSON line) to this file")
    parser.add_argument("--ramp-s", type=float, default=None, help="call starts spread over this long")
    parser.add_argument("--warmup-s", type=float, default=HARNESS_WARMUP_S, help="settle time after the ramp")
    parser.add_argument("--out", default=str(ROOT / "build" / "relay-profile.txt"))
    harness = Path(os.environ.get("RELAY_LOAD_HARNESS", ""))
    if not harness.name or not harness.is_file():
        print(f"bench-profile skipped: no load harness at {harness} (set RELAY_LOAD_HARNESS to its relay_load.py)")
        raise SystemExit(0)
    asyncio.run(main(parser.parse_args(), harness))
