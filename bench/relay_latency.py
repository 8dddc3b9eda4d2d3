"""Relay latency and cost per call, measured against the fakes.

    .venv/bin/python bench/relay_latency.py [--calls 10] [--concurrent 10] [--seconds 10]

The relay runs as its own process (`python -m relay`, exactly what the image runs) so its CPU can be read from
/proc alone; the fake OpenAI server (model connect 300 ms, first audio 400 ms), the fake Twilio calls and a moto
server for DynamoDB/S3 run in this process.

Figures:
- greeting latency of the first call a fresh relay takes, with the slow model: placed the moment the relay's port
  listens (what a load balancer without a readiness check does), and the moment `/healthz` says ready (what it does
  now), each against a relay process of its own;
- greeting latency: fake Twilio's `start` sent -> first greeting audio received (p50/p95 over --calls calls);
- turn latency: `speech_stopped` sent by the fake model -> first reply audio received by the fake Twilio. The fake
  waits 400 ms before its first delta, so the relay's own share is the figure minus 400 ms;
- barge-in truncation error: |truncate.audio_end_ms - what the fake Twilio had played of that item|;
- CPU: the relay process's user+system CPU time over a window where --concurrent calls stream caller audio in real
  time and receive model audio, as CPU-ms per call-second. It does not depend on how busy the box is (it counts the
  relay's own work, not wall time), so `800 / figure` is the number of concurrent calls one core carries at 80 %.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcore import stream_token  # noqa: E402
from callcore.aws import dynamodb_client, reset_clients, s3_client  # noqa: E402
from callcore.local_resources import create_bucket, create_table  # noqa: E402
from callcore.models import CallRecord  # noqa: E402
from callcore.store import CallStore  # noqa: E402
from local.moto_endpoint import moto_endpoint  # noqa: E402
from tests.fakes.audio import BYTES_PER_MS, tone  # noqa: E402
from tests.fakes.openai_realtime import AudioResponse, FakeRealtimeServer, FakeRealtimeSession  # noqa: E402
from tests.fakes.twilio_media import FakeTwilioCall  # noqa: E402

AUTH_TOKEN = "bench-auth-token"
TOKEN_SECRET = "bench-stream-secret"
OPENAI_KEY = "bench-openai-key"
PUBLIC_URL = "wss://relay.bench.invalid/media-stream"
GREETING = tone(1500, freq=480)
REPLY = tone(2000, freq=620)
# What the relay renders into its cache at start-up: the inbound and outbound greetings and the filler.
GREETING_RENDERS = (
    AudioResponse(GREETING, "Thanks for calling."),
    AudioResponse(GREETING, "Hello from the office."),
    AudioResponse(tone(600, freq=500), "One moment, please."),
)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def poll(predicate: Callable[[], object], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """The fakes expose state, not events: poll it every 2 ms."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.002)


class Bench:
    def __init__(self, openai: FakeRealtimeServer, relay_url: str, store: CallStore) -> None:
        self.openai = openai
        self.relay_url = relay_url
        self.store = store

    def new_call(self) -> FakeTwilioCall:
        call_sid = "CA" + uuid.uuid4().hex
        self.store.create_call(CallRecord(call_sid=call_sid, from_number="+15551230001", to_number="+15559870002"))
        return FakeTwilioCall(
            self.relay_url,
            public_url=PUBLIC_URL,
            auth_token=AUTH_TOKEN,
            call_sid=call_sid,
            token=stream_token.issue(TOKEN_SECRET, call_sid),
        )

    async def session_of(self, call: FakeTwilioCall) -> FakeRealtimeSession:
        """The model session that got this call's instructions (pooled sessions are shared out in any order)."""
        marker = "already greeted"

        def find() -> FakeRealtimeSession | None:
            for session in self.openai.sessions:
                if (
                    getattr(session, "_bench_call", None) is None
                    and not session.closed.is_set()
                    and any(
                        e.get("type") == "session.update" and marker in e["session"].get("instructions", "")
                        for e in session.events
                    )
                ):
                    session._bench_call = call.call_sid  # type: ignore[attr-defined]
                    return session
            return None

        await poll(
            lambda: (
                find() is not None
                or any(getattr(s, "_bench_call", None) == call.call_sid for s in self.openai.sessions)
            )
        )
        return next(s for s in self.openai.sessions if getattr(s, "_bench_call", None) == call.call_sid)

    async def one_call(self) -> tuple[float, float, float]:
        call = self.new_call()
        await call.connect()
        await call.wait_for_media(1, timeout=10)
        assert call.first_media_at is not None
        assert call.start_sent_at is not None
        greeting_ms = (call.first_media_at - call.start_sent_at) * 1000
        session = await self.session_of(call)
        await call.wait_for_media(len(GREETING), timeout=10)
        await poll(lambda: call.queued_ms() == 0)
        await session.speech_started()
        before = len(call.received_media)
        stopped_at = time.monotonic()
        await session.speech_stopped("What are your opening hours?")
        await poll(lambda: len(call.received_media) > before)
        turn_ms = (time.monotonic() - stopped_at) * 1000
        reply_start = len(GREETING)
        await poll(lambda: call.timeline.played_bytes_at(time.monotonic_ns()) >= reply_start + 800 * BYTES_PER_MS)
        truncations = len(session.truncations)
        await session.speech_started()
        await poll(lambda: len(session.truncations) > truncations and call.clears > 0)
        heard = (call.timeline.played_bytes_at(time.monotonic_ns()) - reply_start) / BYTES_PER_MS
        error_ms = abs(session.truncations[-1]["audio_end_ms"] - heard)
        await call.stop()
        return greeting_ms, turn_ms, error_ms

    async def load(self, concurrent: int, seconds: float, relay_pid: int) -> float:
        calls = [self.new_call() for _ in range(concurrent)]
        await asyncio.gather(*(call.connect() for call in calls))
        sessions = [await self.session_of(call) for call in calls]
        await asyncio.gather(*(call.wait_for_media(len(GREETING), timeout=15) for call in calls))

        async def talk(call: FakeTwilioCall, session: FakeRealtimeSession) -> None:
            end = time.monotonic() + seconds
            turn = 0
            while time.monotonic() < end:
                await call.send_silence(1000)
                turn += 1
                if turn % 3 == 0:  # every third second the model answers with 2 s of audio
                    await session.speech_started()
                    await session.speech_stopped("Tell me more.")

        cpu_before, wall_before = cpu_seconds(relay_pid), time.monotonic()
        await asyncio.gather(*(talk(call, session) for call, session in zip(calls, sessions, strict=True)))
        cpu = cpu_seconds(relay_pid) - cpu_before
        wall = time.monotonic() - wall_before
        await asyncio.gather(*(call.stop() for call in calls))
        return cpu * 1000 / (concurrent * wall)


def start_relay(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "relay"], env=env, stdout=subprocess.DEVNULL, cwd=ROOT)


async def until_status(port: int, path: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Until GET `path` answers 200 (polled every 10 ms, as fast as any load balancer could notice)."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)


async def first_call_greeting_ms(bench: Bench) -> float:
    call = bench.new_call()
    await call.connect()
    await call.wait_for_media(1, timeout=10)
    assert call.first_media_at is not None
    assert call.start_sent_at is not None
    await call.stop()
    return (call.first_media_at - call.start_sent_at) * 1000


async def fresh_relay_first_call(openai: FakeRealtimeServer, env: dict[str, str], store: CallStore, gate: str) -> float:
    """Start a relay process, place one call as soon as `gate` answers 200, return its greeting latency."""
    openai.scripted.clear()
    openai.script(*GREETING_RENDERS)
    port = free_port()
    relay = start_relay({**env, "PORT": str(port)})
    try:
        await until_status(port, gate)
        return await first_call_greeting_ms(Bench(openai, f"ws://127.0.0.1:{port}/media-stream", store))
    finally:
        relay.terminate()
        relay.wait(timeout=30)


async def main(args: argparse.Namespace) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    with moto_endpoint() as endpoint:
        await measure(args, endpoint)


async def measure(args: argparse.Namespace, endpoint: str) -> None:
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    reset_clients()
    table, bucket = f"calls-{uuid.uuid4().hex[:8]}", f"transcripts-{uuid.uuid4().hex[:8]}"
    create_table(dynamodb_client(), table)
    create_bucket(s3_client(), bucket)
    openai = FakeRealtimeServer(
        api_key=OPENAI_KEY,
        connect_delay=0.3,
        first_audio_delay=0.4,
        default_response=AudioResponse(REPLY, "Here is everything you asked about, in detail."),
    )
    await openai.start()
    env = {
        **os.environ,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_REALTIME_URL": openai.url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "STREAM_TOKEN_SECRET": TOKEN_SECRET,
        "RELAY_PUBLIC_URL": PUBLIC_URL,
        "CALLS_TABLE": table,
        "TRANSCRIPTS_BUCKET": bucket,
        "MODEL_POOL_SIZE": str(args.pool),
        "LOG_LEVEL": "WARNING",
    }
    store = CallStore(table)
    relay: subprocess.Popen[bytes] | None = None
    try:
        at_listen = await fresh_relay_first_call(openai, env, store, "/livez")
        at_ready = await fresh_relay_first_call(openai, env, store, "/healthz")
        openai.scripted.clear()
        openai.script(*GREETING_RENDERS)
        relay_port = free_port()
        relay = start_relay({**env, "PORT": str(relay_port)})
        await until_status(relay_port, "/healthz")  # ready: greetings rendered, pool full
        bench = Bench(openai, f"ws://127.0.0.1:{relay_port}/media-stream", store)
        greetings, turns, errors = [], [], []
        for _ in range(args.calls):
            greeting_ms, turn_ms, error_ms = await bench.one_call()
            greetings.append(greeting_ms)
            turns.append(turn_ms)
            errors.append(error_ms)
            await asyncio.sleep(0.5)  # let the pool refill, as between real calls
        print(f"calls measured: {args.calls} (model connect 300 ms, first audio 400 ms, pool {args.pool})")
        print(
            f"greeting latency ms of a fresh relay's first call: {at_listen:.1f} placed when its port listens, "
            f"{at_ready:.1f} placed when /healthz says ready"
        )
        print(
            f"greeting latency ms (steady state): p50 {pct(greetings, 50):.1f}  p95 {pct(greetings, 95):.1f}  "
            f"max {max(greetings):.1f}"
        )
        print(
            f"turn latency ms (speech stopped -> first audio at Twilio, incl. the model's 400 ms): "
            f"p50 {pct(turns, 50):.1f}  p95 {pct(turns, 95):.1f}  -> relay share p50 {pct(turns, 50) - 400:.1f}"
        )
        print(f"barge-in truncation error ms: mean {statistics.mean(errors):.1f}  max {max(errors):.1f}")
        cpu_ms = await bench.load(args.concurrent, args.seconds, relay.pid)
        print(
            f"relay CPU: {cpu_ms:.2f} CPU-ms per call-second with {args.concurrent} concurrent calls "
            f"-> about {800 / cpu_ms:.0f} concurrent calls per core at 80 % CPU"
        )
    finally:
        if relay is not None:
            relay.terminate()
            relay.wait(timeout=30)
        await openai.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pool", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
