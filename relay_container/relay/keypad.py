"""Keypad keys (Twilio `dtmf` frames). A key reaches the model as a text item ("The caller pressed 7 on the keypad."),
so the agent can run a menu or take a number; keys pressed in quick succession go together, `#` sends at once.
DTMF_TRANSFER_DIGIT, when set, hands the caller to the human line at once instead.

Callers key in card numbers and PINs: the digits reach the model and nothing else. Logs, metrics and the transcript
say only how many keys were pressed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from callcore.models import utc_now
from relay.tools import TransferRequest

if TYPE_CHECKING:
    from relay.call_session import CallSession

log = logging.getLogger(__name__)

KEYS = frozenset("0123456789*#")
KEY_GAP_SECONDS = 1.0  # keys pressed within this of each other reach the model as one item
SEND_KEY = "#"
TRANSFER_REASON = "the caller pressed the keypad key for a person"
TRANSFER_SUMMARY = "The caller pressed the key for a member of staff while talking to the voice assistant."


def keys_text(digits: list[str]) -> str:
    return f"The caller pressed {', '.join(digits)} on the keypad."


class Keypad:
    def __init__(self, call: CallSession) -> None:
        self._call = call
        self._digits: list[str] = []
        self._sender: asyncio.Task[None] | None = None

    async def pressed(self, digit: str) -> None:
        call = self._call
        call.limits.activity()
        if digit not in KEYS:
            log.warning("a keypad frame with no valid key was ignored")
            return
        if digit == call.line.dtmf_transfer_digit:
            log.info("the transfer key was pressed: handing the caller to the human line")
            await call.interrupt_agent()
            call.hand_off.begin(TransferRequest(TRANSFER_REASON, TRANSFER_SUMMARY), None, wait_for_words=False)
            return
        self._digits.append(digit)
        if self._sender is not None:
            self._sender.cancel()
        if digit == SEND_KEY:
            await self._send()
        else:
            self._sender = call.spawn(self._send_after_gap(), "keypad")

    async def _send_after_gap(self) -> None:
        await asyncio.sleep(KEY_GAP_SECONDS)
        self._sender = None
        await self._send()

    async def _send(self) -> None:
        digits, self._digits = self._digits, []
        if not digits:
            return
        call = self._call
        log.info("%d keypad key(s) passed to the agent", len(digits))
        call.recorder.caller_turn(f"(pressed {len(digits)} key(s) on the keypad)", started_at=utc_now(), item_id=None)
        call.memory.keypad(keys_text(digits))
        await call.link.sync()
        await call.responses.request()
