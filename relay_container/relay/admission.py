"""Who may open a media stream. Two gates, both before any model session is touched:

1. the upgrade: `X-Twilio-Signature` over RELAY_PUBLIC_URL (checked before the WebSocket handshake completes);
2. the `start` frame: the stream token in `customParameters.token`, bound to start's CallSid and unexpired, then
   `CallStore.claim_stream` so it is used once (a second stream for the same call is refused on any task).

Then the call's line: the profile version its record names (`relay.lines`), or the environment's line. A version
the relay cannot load refuses the stream (1011) with the reason in the log: Twilio then runs what follows `<Connect>`
(the human line, or an apology), and no other call is affected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from callcore import stream_token
from callcore.models import CallRecord
from callcore.store import CallNotFound, CallStore
from callcore.twilio_signature import SIGNATURE_HEADER, validate_websocket
from relay.line import LineSettings
from relay.lines import LineNotAvailable, Lines
from relay.tools import ToolRegistry
from relay.twilio_stream import CloseCode, Start

log = logging.getLogger(__name__)


class AdmissionRefused(Exception):
    """The stream is refused; `code` is the WebSocket close code, `reason` the short log/close text."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Admitted:
    start: Start
    record: CallRecord
    token_expiry: int
    line: LineSettings
    line_tools: ToolRegistry


class Admission:
    def __init__(self, *, auth_token: str, public_url: str, token_secret: str, store: CallStore, lines: Lines) -> None:
        self._auth_token = auth_token
        self._public_url = public_url
        self._token_secret = token_secret
        self._store = store
        self._lines = lines

    def upgrade_is_signed(self, headers: Mapping[str, str]) -> bool:
        return validate_websocket(self._auth_token, self._public_url, headers.get(SIGNATURE_HEADER))

    async def admit(self, start: Start) -> Admitted:
        """Check the token, claim the stream, load the call record and its line. Raises AdmissionRefused."""
        token = start.custom_parameters.get("token", "")
        if not token:
            raise AdmissionRefused(CloseCode.POLICY, "no stream token in start.customParameters")
        try:
            expiry = stream_token.verify(self._token_secret, token, start.call_sid)
        except stream_token.StreamTokenError as error:
            raise AdmissionRefused(CloseCode.POLICY, f"stream token {error.refusal.value}") from None
        try:
            claimed = await asyncio.to_thread(self._store.claim_stream, start.call_sid, start.stream_sid)
        except CallNotFound:
            raise AdmissionRefused(CloseCode.POLICY, "no call record for this CallSid") from None
        if not claimed:
            raise AdmissionRefused(CloseCode.POLICY, "a stream was already admitted for this call")
        record = await asyncio.to_thread(self._store.require_call, start.call_sid)
        try:
            line, tools = await self._lines.for_record(record)
        except LineNotAvailable as error:
            log.error("the call's receptionist profile cannot be loaded: %s", error)
            raise AdmissionRefused(CloseCode.INTERNAL_ERROR, "receptionist profile not available") from None
        return Admitted(start=start, record=record, token_expiry=expiry, line=line, line_tools=tools)
