"""A fake Twilio Media Streams peer: it dials the relay's `/media-stream` the way Twilio does and plays what the relay
sends back on a real-time clock.

Twilio's side, reproduced:
- the upgrade carries `X-Twilio-Signature` over the public `wss://` URL (no parameters), then `connected`, `start`
  (with `customParameters`), `media` frames of 20 ms / 160 bytes paced on a monotonic schedule, `dtmf`, `stop`;
  `sequenceNumber`, `chunk` and `timestamp` are strings, as Twilio sends them;
- outbound `media` of any size is queued and played at 8 bytes per ms, computed from the monotonic clock (not slept
  per byte, so timing stays exact on a loaded machine); a `mark` is echoed once everything queued before it has
  played (at once if nothing is queued); `clear` drops the unplayed audio and echoes every pending mark at once;
- frames Twilio would not accept (not JSON, unknown event, wrong `streamSid`, bad base64) are ignored, as Twilio
  does, and recorded in `violations` so the test fails.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from tests.fakes.audio import BYTES_PER_MS, SILENCE_BYTE, silence
from tests.fakes.signal import Signal

FRAME_MS = 20
FRAME_BYTES = FRAME_MS * BYTES_PER_MS  # 160 μ-law bytes per inbound frame
NS_PER_BYTE = 1_000_000_000 // (BYTES_PER_MS * 1000)  # 125 µs of audio per μ-law byte
SIGNATURE_HEADER = "X-Twilio-Signature"
TWILIO_USER_AGENT = "Twilio.TmeWs/1.0"
DTMF_DIGITS = frozenset("0123456789*#")
OUTBOUND_EVENTS = frozenset({"media", "mark", "clear"})


def _to_ns(t: float) -> int:
    return round(t * 1_000_000_000)


@dataclass
class _Segment:
    """One outbound media payload on the playback timeline."""

    start_ns: int
    data: bytes
    kept: int  # bytes that will play (all of them unless a clear cut the segment)

    def played_at(self, t_ns: int) -> int:
        if t_ns <= self.start_ns:
            return 0
        return min(self.kept, (t_ns - self.start_ns) // NS_PER_BYTE)


class PlaybackTimeline:
    """Twilio's playback buffer as a timeline: each payload starts when the previous one ends (or on arrival if the
    line was idle), so the position at any instant is arithmetic on monotonic nanoseconds."""

    def __init__(self) -> None:
        self.segments: list[_Segment] = []
        self.queued_until_ns = 0

    def enqueue(self, now_ns: int, data: bytes) -> None:
        start = max(now_ns, self.queued_until_ns)
        self.segments.append(_Segment(start, data, len(data)))
        self.queued_until_ns = start + len(data) * NS_PER_BYTE

    def drained_at(self, now_ns: int) -> int:
        """When everything queued so far will have played."""
        return max(now_ns, self.queued_until_ns)

    def clear(self, now_ns: int) -> None:
        for segment in self.segments:
            segment.kept = segment.played_at(now_ns)
        self.queued_until_ns = min(self.queued_until_ns, now_ns)

    def played_bytes_at(self, t_ns: int) -> int:
        return sum(segment.played_at(t_ns) for segment in self.segments)

    def played(self, now_ns: int) -> bytearray:
        heard = bytearray()
        for segment in self.segments:
            heard += segment.data[: segment.played_at(now_ns)]
        return heard


@dataclass
class _PendingMark:
    name: str
    due_ns: int


def twilio_signature(auth_token: str, public_url: str) -> str:
    """What Twilio puts in X-Twilio-Signature on the WebSocket upgrade: the HMAC of the URL alone."""
    signature: str = RequestValidator(auth_token).compute_signature(public_url, {})
    return signature


class FakeTwilioCall:
    """One call's media stream, from Twilio's side."""

    def __init__(
        self,
        relay_url: str,
        *,
        public_url: str,
        auth_token: str,
        call_sid: str,
        token: str | None,
        account_sid: str = "AC" + "0" * 32,
        stream_sid: str | None = None,
        signature: str | None = None,
        custom_parameters: dict[str, str] | None = None,
    ) -> None:
        self.relay_url = relay_url
        self.public_url = public_url
        self.auth_token = auth_token
        self.call_sid = call_sid
        self.token = token
        self.account_sid = account_sid
        self.stream_sid = stream_sid or "MZ" + secrets.token_hex(16)
        self.signature = signature
        self.custom_parameters = dict(custom_parameters or {})
        self.received_media = bytearray()
        self.events_received: list[dict[str, Any]] = []
        self.events_sent: list[dict[str, Any]] = []
        self.marks_received: list[str] = []
        self.marks_echoed: list[tuple[str, int, bool]] = []
        self.violations: list[str] = []
        self.clears = 0
        self.unsent = 0  # messages not sent because the relay had closed the socket
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.handshake_status: int | None = None
        self.first_media_at: float | None = None
        self.start_sent_at: float | None = None
        self.timeline = PlaybackTimeline()
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._mark_pump: asyncio.Task[None] | None = None
        self._pending_marks: deque[_PendingMark] = deque()
        self._marks_changed = asyncio.Event()
        self._changed = Signal()
        self._send_lock = asyncio.Lock()
        self._sequence = 0
        self._chunk = 0
        self._last_timestamp_ms: int | None = None
        self._next_frame_at = 0.0
        self._mark_waits = 0  # echoes already handed out by wait_for_mark(None)

    async def __aenter__(self) -> FakeTwilioCall:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- connecting --

    async def connect(self) -> None:
        """Upgrade (signed like Twilio), then `connected` and `start`. A refused upgrade sets `handshake_status`."""
        headers = {"User-Agent": TWILIO_USER_AGENT}
        signature = twilio_signature(self.auth_token, self.public_url) if self.signature is None else self.signature
        if signature:
            headers[SIGNATURE_HEADER] = signature
        self._http = aiohttp.ClientSession()
        try:
            self._ws = await self._http.ws_connect(self.relay_url, headers=headers, autoping=True, heartbeat=None)
        except aiohttp.WSServerHandshakeError as exc:
            self.handshake_status = exc.status
            await self._finish()
            return
        self._reader = asyncio.create_task(self._read(), name=f"fake-twilio-read-{self.call_sid}")
        self._mark_pump = asyncio.create_task(self._pump_marks(), name=f"fake-twilio-marks-{self.call_sid}")
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"}, sequenced=False)
        parameters = dict(self.custom_parameters)
        if self.token is not None:
            parameters["token"] = self.token
        await self._send(
            {
                "event": "start",
                "streamSid": self.stream_sid,
                "start": {
                    "streamSid": self.stream_sid,
                    "accountSid": self.account_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )
        self.start_sent_at = time.monotonic()
        self._next_frame_at = self.start_sent_at

    # -- what the caller says --

    async def send_audio(self, mulaw: bytes, *, realtime: bool = True) -> None:
        """Caller audio as Twilio frames it: 160-byte (20 ms) frames, the last padded with μ-law silence, sent on a
        drift-free real-time schedule (or back to back with `realtime=False`)."""
        start_sent_at = self._require_started()
        if len(mulaw) % FRAME_BYTES:
            mulaw += bytes([SILENCE_BYTE]) * (FRAME_BYTES - len(mulaw) % FRAME_BYTES)
        if realtime and self._next_frame_at < time.monotonic() - FRAME_MS / 1000:
            self._next_frame_at = time.monotonic()  # the line was idle: a new schedule, not a catch-up burst
        for offset in range(0, len(mulaw), FRAME_BYTES):
            if self.closed.is_set():
                return  # the relay hung up: the caller's audio goes nowhere
            if realtime:
                delay = self._next_frame_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                captured_at = self._next_frame_at
                self._next_frame_at += FRAME_MS / 1000
            else:
                captured_at = time.monotonic()
            elapsed_ms = int((captured_at - start_sent_at) * 1000)
            timestamp = (
                elapsed_ms if self._last_timestamp_ms is None else max(self._last_timestamp_ms + FRAME_MS, elapsed_ms)
            )
            self._last_timestamp_ms = timestamp
            self._chunk += 1
            frame = mulaw[offset : offset + FRAME_BYTES]
            await self._send(
                {
                    "event": "media",
                    "streamSid": self.stream_sid,
                    "media": {
                        "track": "inbound",
                        "chunk": str(self._chunk),
                        "timestamp": str(timestamp),
                        "payload": base64.b64encode(frame).decode("ascii"),
                    },
                }
            )

    async def send_silence(self, ms: int) -> None:
        await self.send_audio(silence(ms))

    async def send_dtmf(self, digit: str) -> None:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        self._require_started()
        await self._send(
            {"event": "dtmf", "streamSid": self.stream_sid, "dtmf": {"track": "inbound_track", "digit": digit}}
        )

    async def send_raw(self, data: str | bytes) -> None:
        """Any frame, as is (text or binary): for the relay's malformed-frame tests."""
        ws = self._require_socket()
        async with self._send_lock:
            if isinstance(data, bytes):
                await ws.send_bytes(data)
            else:
                await ws.send_str(data)

    async def stop(self) -> None:
        """The call ended: `stop`, then Twilio closes the socket."""
        self._require_started()
        await self._send(
            {
                "event": "stop",
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )
        ws = self._require_socket()
        await ws.close()
        await self._finish()

    async def close(self, *, code: int | None = None) -> None:
        """The line drops without `stop`: the TCP connection is aborted (no close frame), or closed with `code`."""
        if self._ws is not None and not self._ws.closed:
            if code is None:
                connection = self._ws._conn  # the TCP transport under the socket: aborting it sends no close frame
                if connection is not None and connection.transport is not None:
                    connection.transport.abort()
            else:
                await self._ws.close(code=code)
        await self._finish()

    # -- what the caller hears --

    @property
    def played(self) -> bytearray:
        """The bytes the caller has heard up to now."""
        return self.timeline.played(time.monotonic_ns())

    def heard_ms(self) -> float:
        return self.timeline.played_bytes_at(time.monotonic_ns()) / BYTES_PER_MS

    def played_bytes_at(self, t: float) -> int:
        """Playback position (bytes heard) at monotonic time `t`."""
        return self.timeline.played_bytes_at(_to_ns(t))

    def queued_ms(self) -> float:
        """Audio sent by the relay and not yet played."""
        now = time.monotonic_ns()
        return max(0, self.timeline.queued_until_ns - now) / 1_000_000

    @property
    def sequence_number(self) -> int:
        """The last sequenceNumber sent."""
        return self._sequence

    async def wait_for_media(self, min_bytes: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self._changed.wait_until(
            lambda: len(self.received_media) >= min_bytes or self.closed.is_set(), timeout, f"{min_bytes} media bytes"
        )
        if len(self.received_media) < min_bytes:
            raise AssertionError(f"the stream closed after {len(self.received_media)} of {min_bytes} media bytes")

    async def wait_for_mark(self, name: str | None = None, timeout: float = 5.0) -> str:  # noqa: ASYNC109
        """An echoed mark: the one named `name`, or (None) the next echo not yet returned by this method."""
        if name is not None:
            found: str = await self._changed.wait_until(
                lambda: name if any(echo[0] == name for echo in self.marks_echoed) else None,
                timeout,
                f"the echo of mark {name!r}",
            )
            return found
        index = self._mark_waits
        echo: tuple[str, int, bool] = await self._changed.wait_until(
            lambda: self.marks_echoed[index] if len(self.marks_echoed) > index else None, timeout, "a mark echo"
        )
        self._mark_waits = index + 1
        return echo[0]

    async def wait_closed(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self.closed.wait(), timeout)

    # -- internals --

    def _require_socket(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is None:
            raise RuntimeError("not connected (was the upgrade refused? see handshake_status)")
        return self._ws

    def _require_started(self) -> float:
        self._require_socket()
        if self.start_sent_at is None:
            raise RuntimeError("the stream has not started")
        return self.start_sent_at

    async def _send(self, message: dict[str, Any], *, sequenced: bool = True) -> bool:
        """Sends one message; once the socket is gone, messages are dropped (counted in `unsent`), as on a dead line."""
        ws = self._require_socket()
        async with self._send_lock:
            if ws.closed:
                self.unsent += 1
                return False
            if sequenced:
                self._sequence += 1
                message = {"event": message["event"], "sequenceNumber": str(self._sequence), **message}
            try:
                await ws.send_str(json.dumps(message))
            except ConnectionError:
                self.unsent += 1
                return False
            self.events_sent.append(message)
            return True

    async def _read(self) -> None:
        ws = self._require_socket()
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    self._violation("a binary frame (Media Streams messages are JSON text)")
                elif message.type == aiohttp.WSMsgType.ERROR:
                    break
        finally:
            self.close_code = ws.close_code if ws.close_code is not None else 1006
            self.closed.set()
            self._changed.notify()
            # The relay hung up: nothing more will play or echo, and the HTTP session must not outlive the call.
            if self._mark_pump is not None:
                self._mark_pump.cancel()
            if self._http is not None:
                http, self._http = self._http, None
                await http.close()

    def _violation(self, text: str) -> None:
        self.violations.append(text)
        self._changed.notify()

    async def _on_text(self, text: str) -> None:
        now_ns = time.monotonic_ns()
        try:
            data = json.loads(text)
        except ValueError:
            self._violation(f"not JSON: {text[:80]!r}")
            return
        if not isinstance(data, dict):
            self._violation(f"not a JSON object: {text[:80]!r}")
            return
        self.events_received.append(data)
        self._changed.notify()
        event = data.get("event")
        if event not in OUTBOUND_EVENTS:
            self._violation(f"unknown event {event!r} (Twilio accepts media, mark, clear)")
            return
        if data.get("streamSid") != self.stream_sid:
            self._violation(f"{event} with streamSid {data.get('streamSid')!r}, expected {self.stream_sid!r}")
            return
        if event == "media":
            self._on_media(data, now_ns)
        elif event == "mark":
            self._on_mark(data, now_ns)
        else:
            await self._on_clear(now_ns)

    def _on_media(self, data: dict[str, Any], now_ns: int) -> None:
        media = data.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            self._violation("media without media.payload")
            return
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._violation(f"media.payload is not base64: {payload[:40]!r}")
            return
        if not audio:
            return
        if self.first_media_at is None:
            self.first_media_at = now_ns / 1_000_000_000
        self.received_media += audio
        self.timeline.enqueue(now_ns, audio)
        self._changed.notify()

    def _received_mark(self, data: dict[str, Any]) -> str | None:
        """The name of a `mark` the relay sent, recorded as received; None (a violation) when it has none."""
        mark = data.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str) or not name:
            self._violation("mark without mark.name")
            return None
        self.marks_received.append(name)
        return name

    def _on_mark(self, data: dict[str, Any], now_ns: int) -> None:
        name = self._received_mark(data)
        if name is None:
            return
        self._pending_marks.append(_PendingMark(name, self.timeline.drained_at(now_ns)))
        self._marks_changed.set()
        self._changed.notify()

    async def _on_clear(self, now_ns: int) -> None:
        self.clears += 1
        self.timeline.clear(now_ns)
        # Marks whose audio had already played were heard; every other pending one is echoed now, as cleared.
        while self._pending_marks:
            mark = self._pending_marks.popleft()
            played = mark.due_ns <= now_ns
            position = self.timeline.played_bytes_at(mark.due_ns if played else now_ns)
            await self._echo(mark.name, position, cleared=not played)
        self._marks_changed.set()

    async def _pump_marks(self) -> None:
        """Echoes each mark when the audio queued before it has played, on the monotonic clock."""
        while True:
            self._marks_changed.clear()
            if not self._pending_marks:
                await self._marks_changed.wait()
                continue
            mark = self._pending_marks[0]
            delay = (mark.due_ns - time.monotonic_ns()) / 1_000_000_000
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._marks_changed.wait(), delay)
                continue
            self._pending_marks.popleft()
            await self._echo(mark.name, self.timeline.played_bytes_at(mark.due_ns), cleared=False)

    async def _echo(self, name: str, position: int, *, cleared: bool) -> None:
        self.marks_echoed.append((name, position, cleared))
        self._changed.notify()
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def _finish(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
            self._reader.cancel()
        if self._mark_pump is not None:
            self._mark_pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mark_pump
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._ws is None or self._reader is None:
            self.closed.set()
        self._changed.notify()
