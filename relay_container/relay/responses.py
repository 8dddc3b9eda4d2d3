"""One model response at a time: the service refuses a `response.create` while one is active, so the relay asks for
one only when none is, and asks again after the active one when something it added is still unanswered.

"Something it added" is an input the model must answer: a function output or a system instruction. Each is counted
when sent and confirmed by the server's `conversation.item.added`; a `response.created` that arrives after the
confirmation reads it. The server's event order decides, so a response that crossed the relay's `response.create` on
the wire is known to have answered the inputs, and the agent does not talk twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from relay import realtime

# A failed request the service answers with these leaves the call working: no reason to count a model error.
RECOVERABLE_MODEL_ERRORS = frozenset({"conversation_already_has_active_response", "response_cancel_not_active"})


@dataclass
class ResponseState:
    had_audio: bool = False
    tool_calls: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ResponseTracker:
    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[bool]], tools_busy: Callable[[], bool]) -> None:
        self._send = send
        self._tools_busy = tools_busy
        self.active = False
        self.idle = asyncio.Event()
        self.idle.set()
        self._wanted = False  # asked while one was active (or no session was live): ask when possible
        self._unconfirmed = 0  # inputs sent, not yet confirmed by conversation.item.added
        self._unanswered = False  # an input was confirmed after the latest response.created
        self.states: dict[str, ResponseState] = {}

    def state(self, response_id: str) -> ResponseState:
        return self.states.setdefault(response_id, ResponseState())

    def expect_answer(self) -> None:
        """An input the model must answer is on its way (a function output, a system instruction)."""
        self._unconfirmed += 1

    async def request(self, instructions: str | None = None) -> None:
        """`response.create`, never while a response is active (then it is sent when that one is done)."""
        if self.active:
            self._wanted = True
            return
        self.active = True
        self.idle.clear()
        if not await self._send(realtime.response_create(instructions)):
            self._settle()
            self._wanted = True  # no live session: the next one is asked to carry on

    def on_created(self, event: dict[str, Any]) -> None:
        self.active = True
        self.idle.clear()
        self._unanswered = False  # this response reads every item the server confirmed before it
        response_id = (event.get("response") or {}).get("id")
        if response_id:
            self.state(response_id)

    async def on_done(self, response_id: str) -> None:
        state = self.states.get(response_id)
        if state is not None:
            state.done.set()
        self.active = False
        if self._wanted and not self._tools_busy():
            self._wanted = False
            # Only when something the relay added is still unanswered: a response the server's turn detection
            # started after the function output already answered it, and asking again makes the agent talk twice.
            if self._unanswered or self._unconfirmed:
                await self.request()
        if not self.active:
            self.idle.set()

    def on_item_added(self, item: dict[str, Any]) -> None:
        if item.get("type") == "function_call_output" or (
            item.get("type") == "message" and item.get("role") == "system"
        ):
            self._unconfirmed = max(0, self._unconfirmed - 1)
            self._unanswered = True

    def on_error(self, code: object) -> None:
        if code == "conversation_already_has_active_response":
            self._wanted = True  # asked while the server's VAD started one: ask again when it is done

    def reset(self) -> bool:
        """The session went away: its response with it. True when the agent owes the caller an answer (a reply was
        cut off, or something the relay added was never answered), so the next session is asked to carry on."""
        owed = self.active or self._wanted or self._unconfirmed > 0
        self._settle()
        self._wanted = False
        self._unconfirmed = 0
        self._unanswered = False
        for state in self.states.values():
            state.done.set()  # a hand-off waiting for this response's words waits for what was already sent
        return owed

    def _settle(self) -> None:
        self.active = False
        self.idle.set()
