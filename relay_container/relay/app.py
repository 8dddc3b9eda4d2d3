"""The relay's aiohttp application: `GET /media-stream` (Twilio's WebSocket), `GET /healthz` (readiness: what the
load balancer checks) and `GET /livez` (liveness: the container's own health check).

Process-wide resources live in `cleanup_ctx` (the HTTP client session, the warm model pool, the greeting cache,
start-up readiness, the metrics reporter, ECS task protection, the heartbeat admission reads); background tasks are
cancelled on cleanup. A call's own resources belong to its `CallSession`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from callcore.metric_names import RelayMetric
from callcore.store import RELAY_HEARTBEAT_INTERVAL, CallStore
from callcore.transcripts import TranscriptArchive
from relay import realtime
from relay.admission import Admission, AdmissionRefused, Admitted
from relay.call_control import CallControlClient
from relay.call_session import CallDependencies, CallSession
from relay.greeting import GreetingCache
from relay.lines import Lines
from relay.logs import CALL_SID
from relay.metrics import RelayMetrics
from relay.model_pool import ModelSessionPool
from relay.prompt import render_instructions
from relay.readiness import Condition, Probe, Readiness
from relay.realtime import RealtimeConnection
from relay.settings import MEDIA_STREAM_PATH, RelaySettings
from relay.shutdown import HAND_OVER_SECONDS, after_drain_seconds
from relay.task_protection import TaskProtection
from relay.tools import ToolRegistry
from relay.twilio_stream import (
    CloseCode,
    Connected,
    FrameRejected,
    Start,
    TwilioSide,
    parse_frame,
)

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0  # Twilio sends `start` right after `connected`; a socket that doesn't is dropped
BASE_INSTRUCTIONS = "You are a phone receptionist. Wait for the call's instructions."


@dataclass
class RelayState:
    """Live calls and the draining flag (SIGTERM: refuse new streams, let live calls finish)."""

    draining: bool = False
    awaiting_start: int = 0  # upgraded sockets that have not sent `start` yet
    calls: set[CallSession] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()


@dataclass(frozen=True)
class Clients:
    """Outbound HTTP: the one client session of the process and the call-control client built on it."""

    http: aiohttp.ClientSession
    call_control: CallControlClient | None


CLIENTS = web.AppKey("clients", Clients)
SETTINGS = web.AppKey("settings", RelaySettings)
STORE = web.AppKey("store", CallStore)
ARCHIVE = web.AppKey("archive", TranscriptArchive)
TOOLS = web.AppKey("tools", ToolRegistry)
METRICS = web.AppKey("metrics", RelayMetrics)
STATE = web.AppKey("state", RelayState)
ADMISSION = web.AppKey("admission", Admission)
POOL = web.AppKey("pool", ModelSessionPool)
GREETINGS = web.AppKey("greetings", GreetingCache)
READINESS = web.AppKey("readiness", Readiness)
LINES = web.AppKey("lines", Lines)


def create_app(
    settings: RelaySettings,
    *,
    store: CallStore | None = None,
    archive: TranscriptArchive | None = None,
    tools: ToolRegistry | None = None,
    metrics: RelayMetrics | None = None,
) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[STORE] = store or settings.call_store()
    app[ARCHIVE] = archive or TranscriptArchive(settings.transcripts_bucket, hash_key=settings.caller_hash_key)
    app[TOOLS] = tools or ToolRegistry.default(settings)
    app[LINES] = Lines(settings, store=app[STORE], default_tools=app[TOOLS])
    app[METRICS] = metrics or RelayMetrics(settings.metrics_namespace)
    app[STATE] = RelayState()
    app[ADMISSION] = Admission(
        auth_token=settings.twilio_auth_token.get_secret_value(),
        public_url=settings.relay_public_url,
        token_secret=settings.stream_token_secret.get_secret_value(),
        store=app[STORE],
        lines=app[LINES],
    )
    app.cleanup_ctx.append(_aws_clients)
    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(_model_sessions)
    app.cleanup_ctx.append(_readiness)
    app.cleanup_ctx.append(_operations)
    app.cleanup_ctx.append(_heartbeat)
    app.on_shutdown.append(_end_live_calls)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get(MEDIA_STREAM_PATH, media_stream)
    return app


# ---- resources -----------------------------------------------------------------------------------------------------


async def _aws_clients(app: web.Application) -> AsyncIterator[None]:
    """Build the boto3 clients before the first call: creating one takes tens of milliseconds, which the first
    caller's greeting would otherwise wait for during admission."""
    store, archive = app[STORE], app[ARCHIVE]
    await asyncio.to_thread(lambda: (store.client, archive.client))
    yield


def http_session() -> aiohttp.ClientSession:
    """The relay's one HTTP client: model sessions, tools and call control. Every call holds a model socket on it
    (two during a rotation), so it has no connection cap: aiohttp's default of 100 held the 101st call's model
    session back until it timed out. Admission (seats, MAX_PENDING_STREAMS) bounds what a task takes on."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with http_session() as http:
        control = CallControlClient(settings.call_control_url, http) if settings.call_control_url else None
        app[CLIENTS] = Clients(http=http, call_control=control)
        yield


def _open_raw(app: web.Application) -> Coroutine[Any, Any, RealtimeConnection]:
    settings = app[SETTINGS]
    return RealtimeConnection.connect(
        app[CLIENTS].http, settings.openai_realtime_url, settings.openai_api_key.get_secret_value()
    )


async def _model_sessions(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    base_session = realtime.session_config(
        settings, app[LINES].default, instructions=BASE_INSTRUCTIONS, tools=app[TOOLS].session_tools()
    )

    async def open_configured() -> RealtimeConnection:
        connection = await _open_raw(app)
        try:
            await connection.send(realtime.session_update(base_session))
        except BaseException:
            await connection.close(settings.close_timeout_seconds)  # cancelled mid-way: do not leak the session
            raise
        return connection

    pool = ModelSessionPool(
        open_configured,
        size=settings.model_pool_size,
        max_age_seconds=settings.model_pool_max_age_seconds,
        close_timeout=settings.close_timeout_seconds,
    )
    greetings = GreetingCache(settings, app[LINES].default)
    app[POOL] = pool
    app[GREETINGS] = greetings
    tasks: list[asyncio.Task[None]] = []
    if settings.greeting_cache_enabled:
        renders = greetings.run(lambda: _open_raw(app), published=app[LINES].published)
        tasks.append(asyncio.create_task(renders, name="greeting-cache"))
    if settings.model_pool_size > 0:
        tasks.append(asyncio.create_task(pool.run(), name="model-pool"))
    yield
    await _cancel(tasks)
    await greetings.close()
    await pool.close()


async def _readiness(app: web.Application) -> AsyncIterator[None]:
    """Start-up readiness (relay.readiness): what a call needs at its best, bounded by READINESS_DEADLINE_SECONDS."""
    settings, greetings, pool, store = app[SETTINGS], app[GREETINGS], app[POOL], app[STORE]
    table = Probe("call table", lambda: asyncio.to_thread(store.last_heartbeat))
    conditions = [table.condition]
    if settings.greeting_cache_enabled:
        conditions.append(Condition("greetings", greetings.ready))
    if pool.size > 0:
        conditions.append(Condition("model pool", pool.filled))
    readiness = Readiness(conditions, deadline_seconds=settings.readiness_deadline_seconds, metrics=app[METRICS])
    app[READINESS] = readiness
    tasks = [
        asyncio.create_task(table.run(), name="readiness-call-table"),
        asyncio.create_task(readiness.run(), name="readiness"),
    ]
    yield
    await _cancel(tasks)


async def _operations(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    metrics = app[METRICS]
    protection = TaskProtection(
        settings.ecs_agent_uri, app[CLIENTS].http, expires_minutes=settings.task_protection_minutes
    )
    metrics.add_listener(protection.on_active_calls)
    tasks = [
        asyncio.create_task(metrics.run_active_calls_reporter(), name="active-calls-reporter"),
        asyncio.create_task(protection.run_renewer(), name="task-protection"),
    ]
    yield
    await _cancel(tasks)
    await metrics.drain_listeners()


def relay_task_id(settings: RelaySettings) -> str:
    """Which relay process a heartbeat comes from: the ECS task (the last segment of ECS_AGENT_URI), else host + pid."""
    if settings.ecs_agent_uri:
        tail = urlsplit(settings.ecs_agent_uri).path.rstrip("/").rsplit("/", 1)[-1]
        if tail:
            return tail
    return f"{socket.gethostname()}-{os.getpid()}"


async def _heartbeat(app: web.Application) -> AsyncIterator[None]:
    """Tell the incoming-call Lambda this relay takes calls: without a fresh heartbeat from some relay, callers go
    straight to the human line instead of into a stream nobody answers. A relay beats from the moment it is ready
    (greetings rendered, model pool full, call table answered; or its readiness deadline passed) until it drains."""
    store, state, readiness = app[STORE], app[STATE], app[READINESS]
    task_id = relay_task_id(app[SETTINGS])

    async def beat() -> None:
        try:
            await asyncio.to_thread(store.record_heartbeat, task_id)
        except Exception:
            # A missed beat is retried on the next tick; the relay keeps serving its calls meanwhile.
            log.warning("could not write the relay heartbeat", exc_info=True)

    async def run() -> None:
        await readiness.ready.wait()
        while True:
            if not state.draining:
                await beat()
            await asyncio.sleep(RELAY_HEARTBEAT_INTERVAL.total_seconds())

    task = asyncio.create_task(run(), name="relay-heartbeat")
    yield
    await _cancel([task])


async def _end_live_calls(app: web.Application) -> None:
    """Calls still live at shutdown (the drain timed out) end now, each handed to a human when possible, and their
    records are written while the HTTP client and AWS clients still exist.

    This must run in `on_shutdown`: right after it aiohttp waits for the handlers and then force-closes every
    connection, which would cut callers off with no hand-over and lose the outcome. All calls end concurrently:
    one by one, their hand-overs (seconds each) would outlast the ECS stop timeout.
    """
    state = app[STATE]
    state.draining = True
    sessions = list(state.calls)
    if sessions:
        log.warning("shutting down with %d live calls: handing them over", len(sessions))
        await asyncio.gather(*(session.end_for_shutdown() for session in sessions), return_exceptions=True)
    # The calls' teardowns (sockets, then records) run now; the stop budget (relay.shutdown) leaves room for them.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(after_drain_seconds(app[SETTINGS].close_timeout_seconds) - HAND_OVER_SECONDS):
            await state.idle.wait()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---- draining (SIGTERM) --------------------------------------------------------------------------------------------


def start_draining(app: web.Application) -> None:
    app[STATE].draining = True
    log.info("draining: /healthz answers 503, new streams are refused, %d live calls continue", len(app[STATE].calls))


async def wait_for_calls(app: web.Application, limit_seconds: float) -> bool:
    """True when every live call ended within `limit_seconds`."""
    try:
        async with asyncio.timeout(limit_seconds):
            await app[STATE].idle.wait()
    except TimeoutError:
        return False
    return True


# ---- routes --------------------------------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """Readiness, for the load balancer: 200 only when a call would be served at its best (relay.readiness)."""
    state, readiness = request.app[STATE], request.app[READINESS]
    calls = len(state.calls)
    if state.draining:
        return web.json_response({"status": "draining", "calls": calls}, status=503)
    if not readiness.ready.is_set():
        return web.json_response({"status": "starting", "waiting_for": readiness.waiting_for}, status=503)
    if readiness.at_deadline:
        # Taking calls without what it waited for: they greet live or fail over until it arrives.
        return web.json_response({"status": "ok", "calls": calls, "ready_without": readiness.missing_at_deadline})
    return web.json_response({"status": "ok", "calls": calls})


async def livez(request: web.Request) -> web.Response:
    """Liveness, for the container's own health check: true while the process serves, draining or not."""
    return web.json_response({"status": "alive"})


async def media_stream(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings, metrics, state = app[SETTINGS], app[METRICS], app[STATE]
    if state.draining:
        log.info("stream refused: draining")
        metrics.record(RelayMetric.REJECTED_STREAMS, 1, "Count")
        raise web.HTTPServiceUnavailable(text="draining")
    if not app[ADMISSION].upgrade_is_signed(request.headers):
        log.warning("stream refused: bad or missing X-Twilio-Signature on the upgrade (from %s)", request.remote)
        metrics.record(RelayMetric.REJECTED_STREAMS, 1, "Count")
        raise web.HTTPForbidden(text="invalid signature")
    ws = web.WebSocketResponse(max_msg_size=settings.max_frame_bytes, decode_text=False)  # orjson parses bytes
    await ws.prepare(request)
    if state.awaiting_start >= settings.max_pending_streams:
        # A signature over the URL alone can be replayed: bound what sockets that never start can hold.
        log.warning("stream refused: %d sockets already wait for their start frame", state.awaiting_start)
        metrics.record(RelayMetric.REJECTED_STREAMS, 1, "Count")
        await _close(ws, CloseCode.TRY_AGAIN_LATER, "too many streams starting", settings.close_timeout_seconds)
        return ws
    try:
        state.awaiting_start += 1
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                start = await _await_start(ws)
        finally:
            state.awaiting_start -= 1
        if start is None:
            return ws
        CALL_SID.set(start.call_sid)  # every log line of this call from here on carries it
        started_at = time.monotonic()
        twilio = TwilioSide(ws, start.stream_sid, close_timeout=settings.close_timeout_seconds)
        admitted = await app[ADMISSION].admit(start)
        session = _new_call_session(app, admitted, twilio, started_at)
    except (FrameRejected, AdmissionRefused) as refusal:
        log.warning("stream refused: %s (close %d)", refusal.reason, refusal.code)
        metrics.record(RelayMetric.REJECTED_STREAMS, 1, "Count")
        await _close(ws, refusal.code, refusal.reason, settings.close_timeout_seconds)
        return ws
    except TimeoutError:
        log.warning("stream refused: no start frame within %.0f s", START_TIMEOUT_SECONDS)
        metrics.record(RelayMetric.REJECTED_STREAMS, 1, "Count")
        await _close(ws, CloseCode.POLICY, "no start frame", settings.close_timeout_seconds)
        return ws
    except Exception as error:
        # E.g. the store throttled or unreachable: Twilio gets a clear close instead of a dropped connection.
        log.warning("stream refused: admission failed (%s: %s)", type(error).__name__, str(error)[:200])
        metrics.record(RelayMetric.REJECTED_STREAMS, 1, "Count")
        await _close(ws, CloseCode.INTERNAL_ERROR, "admission failed", settings.close_timeout_seconds)
        return ws
    state.calls.add(session)
    state.idle.clear()
    metrics.call_started()
    # The call runs in its own task: aiohttp cancels a WebSocket handler once the peer's socket is gone, and the
    # call's teardown (closing the model session, writing the records) must run to its end regardless.
    call = asyncio.create_task(_run_call(state, metrics, session), name=f"call:{admitted.start.call_sid}")
    state.tasks.add(call)
    call.add_done_callback(state.tasks.discard)
    await asyncio.shield(call)
    return ws


def _new_call_session(app: web.Application, admitted: Admitted, twilio: TwilioSide, started_at: float) -> CallSession:
    settings, greetings, line = app[SETTINGS], app[GREETINGS], admitted.line
    direction = admitted.record.direction
    greeting_text = greetings.text_for(direction, line)
    greeting = greetings.get(direction, line)
    if greeting is None and settings.greeting_cache_enabled and line is not greetings.default_line:
        # A profile version's first call on this process greets live; the calls after it get the cached audio.
        greetings.ensure(line, lambda: _open_raw(app))
    deps = CallDependencies(
        settings=settings,
        store=app[STORE],
        archive=app[ARCHIVE],
        pool=app[POOL],
        tools=app[TOOLS],
        metrics=app[METRICS],
        http=app[CLIENTS].http,
        call_control=app[CLIENTS].call_control,
    )
    return CallSession(
        admitted,
        twilio,
        deps,
        line=line,
        line_tools=admitted.line_tools,
        instructions=render_instructions(line, admitted.record, greeting=greeting_text),
        greeting_text=greeting_text,
        greeting=greeting,
        filler=greetings.filler(line),
        started_at=started_at,
    )


async def _run_call(state: RelayState, metrics: RelayMetrics, session: CallSession) -> None:
    try:
        await session.run()
    finally:
        state.calls.discard(session)
        metrics.call_ended()
        if not state.calls:
            state.idle.set()


async def _await_start(ws: web.WebSocketResponse) -> Start | None:
    """Frames up to `start`: at most one `connected`, anything else is refused (1008); None when the peer left."""
    connected = False
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            frame = parse_frame(message.data)
            if isinstance(frame, Start):
                return frame
            if not isinstance(frame, Connected):
                raise FrameRejected(CloseCode.POLICY, f"{type(frame).__name__.lower()} frame before start")
            if connected:
                raise FrameRejected(CloseCode.POLICY, "a second connected frame")
            connected = True
        elif message.type is aiohttp.WSMsgType.BINARY:
            raise FrameRejected(CloseCode.UNSUPPORTED, "binary frames not supported")
        elif message.type is aiohttp.WSMsgType.ERROR:
            log.warning("stream refused before start: %s (closed %s)", ws.exception(), ws.close_code)
            return None
    return None


async def _close(ws: web.WebSocketResponse, code: CloseCode, reason: str, grace_seconds: float) -> None:
    with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
        async with asyncio.timeout(grace_seconds):
            await ws.close(code=code, message=reason.encode()[:120])
