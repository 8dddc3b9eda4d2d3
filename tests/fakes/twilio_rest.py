"""A fake of the Twilio REST API's Account, Calls and Recordings resources that records every request it receives.

One fake (`FakeTwilioRest`) holds the rules and the recording; it is reached two ways:

- `InProcessTwilioHttpClient`: a `twilio.http.HttpClient` for unit tests (no socket). It hands the fake the form body
  encoded exactly as `requests` would put it on the wire, and the Basic auth header.
- `TwilioRestServer`: the same fake behind a real HTTP server on 127.0.0.1, for integration tests; the Lambdas reach
  it through `TWILIO_API_BASE_URL` and twilio's own `TwilioHttpClient`.

What it enforces, as Twilio does: Basic auth with the account SID and auth token, the account in the path, `To` in
E.164 (error 21211), exactly one of `Url`/`Twiml`/`ApplicationSid` on create (21205), `Url` and `Twiml` exclusive on
update, inline TwiML of at most 4000 characters (32018), unknown calls (20404) and updates to calls that are no
longer live (21220). Tests script other failures with `fail_next`.

A call reads back (GET) as Twilio's call resource does: `status`, `start_time` and `end_time` in RFC 2822 (`null`
until the call started or ended), `duration` in whole seconds as a string (`null` until it ended). A call ends when it
is completed or canceled through the API, or when a test says so (`end_call`: the caller hung up).

The account (`GET /Accounts/{AccountSid}.json`) reads back with its `status` (`account_status`: active unless a test
suspends it), as `make deploy` checks the credentials before deploying.

Recordings (`/Calls/{CallSid}/Recordings.json`, `/Recordings/{RecordingSid}.json|.wav`): created only on a call in
progress (21220 otherwise), `RecordingChannels` mono|dual, `RecordingStatusCallbackEvent` from in-progress|completed|
absent, an absolute `RecordingStatusCallback` URL (21609 otherwise); the media served as `audio/x-wav` once the
recording completed (`finish_recording`, which also returns the status callback Twilio would post, signed with
twilio's own RequestValidator); DELETE removes it for good (later requests 20404).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator

API_ORIGIN = "https://api.twilio.com"
_ACCOUNT = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})\.json$")
_CALLS = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Calls\.json$")
_CALL = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Calls/(?P<sid>[^/]+)\.json$")
_CALL_RECORDINGS = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Calls/(?P<call>[^/]+)/Recordings\.json$"
)
_RECORDING = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Recordings/(?P<sid>RE[0-9a-fA-F]{32})\.(?P<ext>json|wav)$"
)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
RECORDING_EVENTS = frozenset({"in-progress", "completed", "absent"})
LIVE_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress"})
MAX_TWIML_CHARS = 4000


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    form: dict[str, list[str]]
    username: str | None
    password: str | None

    def value(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        return list(self.form.get(name, []))

    @property
    def call_sid(self) -> str | None:
        match = _CALL.match(self.path)
        return match.group("sid") if match else None


@dataclass
class FakeCall:
    sid: str
    to: str
    from_: str
    status: str = "in-progress"
    direction: str = "inbound"
    twiml_updates: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def end(self, status: str, at: datetime) -> None:
        self.status = status
        self.ended_at = at

    @property
    def duration(self) -> int | None:
        """Whole seconds from start to end, as Twilio bills them; None while the call is live or never started."""
        if self.ended_at is None:
            return None
        if self.started_at is None:
            return 0
        return int((self.ended_at - self.started_at).total_seconds())


@dataclass
class FakeRecording:
    sid: str
    call_sid: str
    channels: int
    status_callback: str | None
    status_callback_events: list[str]
    status: str = "in-progress"
    duration: int = -1
    audio: bytes = b""


@dataclass(frozen=True)
class StatusCallback:
    """A recording-status callback as Twilio posts it: the URL, the form and the X-Twilio-Signature header."""

    url: str
    params: dict[str, str]
    signature: str


@dataclass(frozen=True)
class ScriptedError:
    status: int
    code: int
    message: str


class FakeTwilioRest:
    def __init__(self, *, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[RecordedRequest] = []
        self.calls: dict[str, FakeCall] = {}
        self.recordings: dict[str, FakeRecording] = {}
        self.deleted_recordings: set[str] = set()
        self.refused_numbers: dict[str, int] = {}
        self.account_status = "active"  # Twilio's account states: active, suspended, closed
        self._scripted: list[ScriptedError] = []
        self._lock = threading.Lock()

    # ---- test controls ---------------------------------------------------------------------------------------

    def add_call(
        self,
        sid: str,
        *,
        status: str = "in-progress",
        to: str = "+15005550006",
        from_: str = "+15005550001",
        started_at: datetime | None = None,
    ) -> FakeCall:
        """A call Twilio knows about (an inbound call the Lambdas answered earlier), started now unless told."""
        started = started_at or datetime.now(UTC)
        call = FakeCall(sid=sid, to=to, from_=from_, status=status, created_at=started, started_at=started)
        self.calls[sid] = call
        return call

    def end_call(self, sid: str, *, status: str = "completed", at: datetime | None = None) -> FakeCall:
        """The call ended on Twilio's side (the caller hung up, the line dropped): no request of ours did it."""
        call = self.calls[sid]
        call.end(status, at or datetime.now(UTC))
        return call

    def fail_next(self, *, status: int, code: int, message: str) -> None:
        """The next request is answered with this Twilio error instead of being handled."""
        self._scripted.append(ScriptedError(status, code, message))

    def refuse_number(self, number: str, code: int = 21211) -> None:
        """Creating a call to `number` fails with `code` (a valid-looking number Twilio will not dial)."""
        self.refused_numbers[number] = code

    def requests_for(self, call_sid: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.call_sid == call_sid]

    def finish_recording(self, sid: str, *, audio: bytes, duration: int, status: str = "completed") -> StatusCallback:
        """The call ended: the recording is `completed` with this audio (or `absent`/`failed`). Returns the status
        callback Twilio then posts, signed with the auth token over the callback URL and form."""
        recording = self.recordings[sid]
        recording.status, recording.audio, recording.duration = status, audio, duration
        assert recording.status_callback, "the recording was created without a RecordingStatusCallback"
        params = {
            "AccountSid": self.account_sid,
            "CallSid": recording.call_sid,
            "RecordingSid": sid,
            "RecordingUrl": f"{API_ORIGIN}/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}",
            "RecordingStatus": status,
            "RecordingDuration": str(duration),
            "RecordingChannels": str(recording.channels),
            "RecordingStartTime": "Mon, 22 Nov 2026 10:00:00 +0000",
            "RecordingSource": "StartCallRecordingAPI",
            "RecordingTrack": "both",
        }
        if status != "completed":
            params["ErrorCode"] = "0" if status == "absent" else "16104"
        signature = RequestValidator(self.auth_token).compute_signature(recording.status_callback, params)
        return StatusCallback(url=recording.status_callback, params=params, signature=str(signature))

    # ---- the API ---------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, Payload]:
        form = parse_qs(body.decode(), keep_blank_values=True)
        username, password = _basic_auth(headers)
        with self._lock:
            self.requests.append(RecordedRequest(method.upper(), path, form, username, password))
            if (username, password) != (self.account_sid, self.auth_token):
                return _error(401, 20003, "Authenticate")
            if self._scripted:
                scripted = self._scripted.pop(0)
                return _error(scripted.status, scripted.code, scripted.message)
            if (match := _ACCOUNT.match(path)) and method.upper() == "GET":
                if match.group("account") != self.account_sid:
                    return _error(404, 20404, f"The requested resource {path} was not found")
                return 200, self._account_json()
            if match := _CALL_RECORDINGS.match(path):
                if match.group("account") != self.account_sid:
                    return _error(403, 20003, "Account mismatch")
                if method.upper() == "POST":
                    return self._start_recording(match.group("call"), form)
            elif match := _RECORDING.match(path):
                if match.group("account") != self.account_sid:
                    return _error(403, 20003, "Account mismatch")
                return self._recording(method.upper(), match.group("sid"), match.group("ext"), path)
            elif match := _CALLS.match(path):
                if match.group("account") != self.account_sid:
                    return _error(403, 20003, "Account mismatch")
                if method.upper() == "POST":
                    return self._create(form)
            elif match := _CALL.match(path):
                if match.group("account") != self.account_sid:
                    return _error(403, 20003, "Account mismatch")
                call = self.calls.get(match.group("sid"))
                if call is None:
                    return _error(404, 20404, f"The requested resource {path} was not found")
                if method.upper() == "POST":
                    return self._update(call, form)
                if method.upper() == "GET":
                    return 200, self._call_json(call)
            return _error(404, 20404, f"The requested resource {path} was not found")

    def _account_json(self) -> dict[str, Any]:
        return {
            "sid": self.account_sid,
            "owner_account_sid": self.account_sid,
            "friendly_name": "Test account",
            "status": self.account_status,
            "type": "Full",
            "auth_token": self.auth_token,  # Twilio returns it to the account itself; a client must never show it
            "uri": f"/2010-04-01/Accounts/{self.account_sid}.json",
        }

    def _create(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        to = _first(form, "To")
        from_ = _first(form, "From")
        if not to or not _E164.match(to):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if to in self.refused_numbers:
            return _error(400, self.refused_numbers[to], f"Twilio will not call {to}")
        if not from_:
            return _error(400, 21603, "A 'From' phone number is required.")
        instructions = [name for name in ("Url", "Twiml", "ApplicationSid") if _first(form, name)]
        if len(instructions) != 1:
            return _error(400, 21205, "Exactly one of Url, Twiml or ApplicationSid is required.")
        sid = "CA" + uuid.uuid4().hex
        call = FakeCall(sid=sid, to=to, from_=from_, status="queued", direction="outbound-api")
        self.calls[sid] = call
        return 201, self._call_json(call)

    def _start_recording(self, call_sid: str, form: dict[str, list[str]]) -> tuple[int, Payload]:
        call = self.calls.get(call_sid)
        if call is None:
            return _error(404, 20404, f"The requested resource Calls/{call_sid} was not found")
        if call.status != "in-progress":
            return _error(400, 21220, "Call is not in-progress. Cannot start a recording.")
        channels = _first(form, "RecordingChannels") or "mono"
        if channels not in {"mono", "dual"}:
            return _error(400, 21610, f"Invalid RecordingChannels: {channels}")
        events = " ".join(form.get("RecordingStatusCallbackEvent", [])).split()
        if not set(events) <= RECORDING_EVENTS:
            return _error(400, 21610, f"Invalid RecordingStatusCallbackEvent: {events}")
        callback = _first(form, "RecordingStatusCallback")
        if callback is not None and urlsplit(callback).scheme not in {"http", "https"}:
            return _error(400, 21609, f"Invalid RecordingStatusCallback URL: {callback}")
        sid = "RE" + uuid.uuid4().hex
        recording = FakeRecording(sid, call_sid, 2 if channels == "dual" else 1, callback, events or ["completed"])
        self.recordings[sid] = recording
        return 201, self._recording_json(recording)

    def _recording(self, method: str, sid: str, ext: str, path: str) -> tuple[int, Payload]:
        recording = self.recordings.get(sid)
        if recording is None or sid in self.deleted_recordings:
            return _error(404, 20404, f"The requested resource {path} was not found")
        if method == "DELETE" and ext == "json":
            self.deleted_recordings.add(sid)
            return 204, None
        if method == "GET" and ext == "json":
            return 200, self._recording_json(recording)
        if method == "GET" and ext == "wav" and recording.status == "completed":
            return 200, recording.audio
        return _error(404, 20404, f"The requested resource {path} was not found")

    def _recording_json(self, recording: FakeRecording) -> dict[str, Any]:
        return {
            "sid": recording.sid,
            "account_sid": self.account_sid,
            "call_sid": recording.call_sid,
            "status": recording.status,
            "channels": recording.channels,
            "duration": str(recording.duration),
            "source": "StartCallRecordingAPI",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording.sid}.json",
        }

    def _update(self, call: FakeCall, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        twiml = _first(form, "Twiml")
        url = _first(form, "Url")
        status = _first(form, "Status")
        if twiml and url:
            return _error(400, 21232, "Url and Twiml are mutually exclusive")
        if twiml and len(twiml) > MAX_TWIML_CHARS:
            return _error(400, 32018, "Inline TwiML is longer than 4000 characters")
        if call.status not in LIVE_STATUSES:
            return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if status in {"completed", "canceled"}:
            call.end(status, datetime.now(UTC))
        if twiml:
            call.twiml_updates.append(twiml)
        return 200, self._call_json(call)

    def _call_json(self, call: FakeCall) -> dict[str, Any]:
        duration = call.duration
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "date_created": _rfc2822(call.created_at),
            "date_updated": _rfc2822(call.ended_at or call.started_at or call.created_at),
            "to": call.to,
            "from": call.from_,
            "status": call.status,
            "start_time": _rfc2822(call.started_at),
            "end_time": _rfc2822(call.ended_at),
            "duration": None if duration is None else str(duration),
            "price": None,
            "price_unit": "USD",
            "direction": call.direction,
            "answered_by": None,
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call.sid}.json",
        }


Payload = dict[str, Any] | bytes | None  # JSON, media (audio/x-wav), or no body (204)


def _rfc2822(at: datetime | None) -> str | None:
    """Twilio's timestamps on the call resource: `Tue, 31 Aug 2010 20:36:28 +0000`."""
    return None if at is None else format_datetime(at.astimezone(UTC).replace(microsecond=0))


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _basic_auth(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if not value.startswith("Basic "):
        return None, None
    username, _, password = base64.b64decode(value[6:]).decode().partition(":")
    return username, password


class InProcessTwilioHttpClient(HttpClient):  # type: ignore[misc]
    """twilio's HttpClient contract, answered by the fake in-process (unit tests cannot open sockets)."""

    def __init__(self, fake: FakeTwilioRest) -> None:
        super().__init__(logging.getLogger("tests.fakes.twilio_rest"), is_async=False)
        self.fake = fake

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        parts = urlsplit(uri)
        assert f"{parts.scheme}://{parts.netloc}" == API_ORIGIN, f"unexpected Twilio host in {uri}"
        wire_headers = dict(headers or {})
        if auth:
            wire_headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        # `requests` form-encodes a dict with list values as repeated fields; so does this.
        body = urlencode(data or {}, doseq=True).encode()
        status, payload = self.fake.handle(method, parts.path, wire_headers, body)
        if payload is None:
            return Response(status, "", {})
        assert not isinstance(payload, bytes), "media is fetched over HTTP (TwilioRestServer), not through the SDK"
        return Response(status, json.dumps(payload), {"Content-Type": "application/json"})


class TwilioRestServer:
    """The fake behind a real HTTP/1.1 server on 127.0.0.1 (an ephemeral port), served from a background thread."""

    def __init__(self, fake: FakeTwilioRest) -> None:
        self.fake = fake
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        fake = self.fake

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = fake.handle(self.command, urlsplit(self.path).path, dict(self.headers.items()), body)
                content_type = "audio/x-wav" if isinstance(payload, bytes) else "application/json"
                if isinstance(payload, bytes):
                    encoded = payload
                else:
                    encoded = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            do_GET = _serve
            do_POST = _serve
            do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-twilio-rest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port (idempotent): afterwards connections to `base_url` are refused."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> TwilioRestServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
