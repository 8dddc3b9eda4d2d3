"""The conversation so far, as the caller lived it: what a new model session is told when the call moves to it (after
a reconnect or a rotation), and the one place the relay's own additions (tool results, notes, keypad keys) go
through on their way to the model.

Entries are kept in the order things happened: a caller turn takes its place when the server commits it (its text
arrives later, from input transcription), an agent utterance when its first audio arrives (its text is what the caller
heard, cut at the barge-in point), a tool call when the model makes it (its output when the tool is done).

Each entry remembers which model sessions already have it (`present_in`, session generations). `pending(generation)`
hands out, once, every entry with text that session lacks, as `conversation.item.create` events: for a new session
that is the whole conversation; for the current one, only what the relay added itself. A new session is given at
most MAX_SEED_CHARS of it, the most recent entries first (a tool call is kept or dropped together with its output).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from relay import realtime

# About 6,000 tokens of text: enough for a long call's recent turns, far below the model's context window.
MAX_SEED_CHARS = 24_000


@dataclass
class AgentUtterance:
    """An assistant audio item on its way to the caller's ear. `generation` is the model session it came from (the
    only one that can truncate it); `said` is what the caller heard of it, once the relay knows."""

    started_at: datetime
    generation: int
    text: str = ""
    text_final: bool = False
    generation_done: bool = False
    interrupted: bool = False
    heard_ms: int | None = None
    recorded: bool = False
    said: str | None = None

    @property
    def as_heard(self) -> str:
        """What the model should remember it said: the heard part once known, else everything generated so far
        (audio already sent to Twilio plays out: nothing can stop it while the model is away)."""
        return self.said if self.said is not None else self.text


class EntryKind(Enum):
    CALLER = "caller"
    AGENT = "agent"
    GREETING = "greeting"  # the cached greeting: played by the relay, never in any session until seeded
    NOTE = "note"  # a system instruction the relay added (wrap up, the goodbye was interrupted, ...)
    KEYPAD = "keypad"  # what the caller pressed, as a user message
    FUNCTION_CALL = "function_call"
    FUNCTION_OUTPUT = "function_output"


@dataclass(slots=True)
class _Entry:
    kind: EntryKind
    present_in: set[int]  # generations of the sessions that have it (made it, or were given it)
    key: str = ""  # the item id of a caller turn or an agent utterance, the call id of a tool call or its output
    text: str | None = None  # None until known (a transcription or a tool still running)
    name: str = ""  # a tool call's function name
    utterance: AgentUtterance | None = None

    @property
    def settled(self) -> bool:
        """Its text is final: a caller turn transcribed, an utterance whose heard part is known."""
        if self.utterance is not None:
            return self.utterance.said is not None
        return self.text is not None

    def content(self) -> str | None:
        if self.utterance is None:
            return self.text
        if self.kind is EntryKind.GREETING:
            return self.utterance.said or None  # told to the model only once the caller has heard it
        return self.utterance.as_heard or None

    def event(self) -> dict[str, Any]:
        text = self.content() or ""
        kind = self.kind
        if kind is EntryKind.CALLER or kind is EntryKind.KEYPAD:
            return realtime.user_message(text)
        if kind is EntryKind.AGENT:
            return realtime.assistant_message(text)
        if kind is EntryKind.GREETING:
            # At the root: the greeting came first, even when a caller turn was committed before it was sent.
            return realtime.assistant_message(text, previous_item_id="root")
        if kind is EntryKind.NOTE:
            return realtime.system_message(text)
        if kind is EntryKind.FUNCTION_CALL:
            return realtime.function_call_item(self.key, self.name, text)
        return realtime.function_call_output(self.key, text)


class ConversationMemory:
    def __init__(self, *, max_seed_chars: int = MAX_SEED_CHARS) -> None:
        self._entries: list[_Entry] = []
        self._max_seed_chars = max_seed_chars
        self._dropped: dict[int, int] = {}  # by session generation: entries it was not given (too long a call)

    # ---- what happened ---------------------------------------------------------------------------------------------

    def greeting(self, utterance: AgentUtterance) -> None:
        self._entries.append(_Entry(EntryKind.GREETING, set(), utterance=utterance))

    def caller_turn(self, item_id: str, generation: int) -> None:
        """The server committed a caller turn (its text comes with the transcription)."""
        self._entries.append(_Entry(EntryKind.CALLER, {generation}, key=item_id))

    def caller_said(self, item_id: str, transcript: str, generation: int) -> None:
        for entry in reversed(self._entries):
            if entry.kind is EntryKind.CALLER and entry.key == item_id:
                entry.text = transcript
                return
        self._entries.append(_Entry(EntryKind.CALLER, {generation}, key=item_id, text=transcript))

    def agent_item(self, item_id: str, utterance: AgentUtterance) -> None:
        self._entries.append(_Entry(EntryKind.AGENT, {utterance.generation}, key=item_id, utterance=utterance))

    def function_call(self, call_id: str, name: str, arguments: str, generation: int) -> None:
        self._entries.append(_Entry(EntryKind.FUNCTION_CALL, {generation}, key=call_id, text=arguments, name=name))

    def function_output(self, call_id: str, output: str) -> None:
        self._entries.append(_Entry(EntryKind.FUNCTION_OUTPUT, set(), key=call_id, text=output))

    def note(self, text: str) -> None:
        self._entries.append(_Entry(EntryKind.NOTE, set(), text=text))

    def keypad(self, text: str) -> None:
        self._entries.append(_Entry(EntryKind.KEYPAD, set(), text=text))

    # ---- what a session is told ------------------------------------------------------------------------------------

    def pending(self, generation: int, *, settled_only: bool = False) -> list[dict[str, Any]]:
        """The `conversation.item.create` events session `generation` lacks, in order; from now on it has them.

        `settled_only`: stop at the first entry whose text may still change (an utterance still playing, a turn not
        yet transcribed), for a session seeded ahead of time; the rest goes to it later, in order."""
        missing: list[_Entry] = []
        for entry in self._entries:
            if generation in entry.present_in:
                continue
            if settled_only and not entry.settled:
                break
            if entry.content():
                missing.append(entry)
        kept = self._fit(missing)
        if len(kept) < len(missing):
            self._dropped[generation] = self._dropped.get(generation, 0) + len(missing) - len(kept)
        for entry in missing:
            entry.present_in.add(generation)  # an entry left out for length is not offered to this session again
        return [entry.event() for entry in kept]

    def dropped(self, generation: int) -> int:
        """Entries session `generation` was not given for length (its instructions then say so)."""
        return self._dropped.get(generation, 0)

    def _fit(self, entries: list[_Entry]) -> list[_Entry]:
        """The most recent entries within MAX_SEED_CHARS; a tool call goes with its output or not at all."""
        budget = self._max_seed_chars
        kept: list[_Entry] = []
        outputs_kept: set[str] = set()
        outputs_dropped: set[str] = set()
        calls = {e.key: e for e in entries if e.kind is EntryKind.FUNCTION_CALL}
        for entry in reversed(entries):
            if entry.kind is EntryKind.FUNCTION_CALL and entry.key in outputs_dropped:
                continue
            cost = len(entry.content() or "")
            if entry.kind is EntryKind.FUNCTION_OUTPUT:
                call = calls.get(entry.key)
                cost += len(call.content() or "") if call is not None else 0
            if entry.kind is EntryKind.FUNCTION_CALL and entry.key in outputs_kept:
                cost = 0  # paid for with its output
            if cost > budget:
                if entry.kind is EntryKind.FUNCTION_OUTPUT:
                    outputs_dropped.add(entry.key)
                budget = 0
                continue
            budget -= cost
            if entry.kind is EntryKind.FUNCTION_OUTPUT:
                outputs_kept.add(entry.key)
            kept.append(entry)
        kept.reverse()
        return kept
