"""What the caller has actually heard.

Twilio plays the audio it is sent in order and echoes a `mark` once the audio queued before it has played. After a
`clear` it echoes every pending mark at once, so an echo alone cannot tell played from cleared: this tracker keeps
that state itself. Between echoes it interpolates with the clock (pcmu: 8 bytes = 1 ms), starting each chunk no
earlier than it was sent, so a gap between two responses never counts as playing.

Positions are in bytes on one timeline of everything sent to Twilio on this call ("global" bytes). Sent audio is kept
as byte ranges, not per frame: a frame that follows the previous one without a gap in play-out extends its range.
A mark follows a range once `mark_interval_ms` of audio went out unmarked (0: after every chunk), and `flush()`
marks the rest (the end of an utterance, or audio that stopped coming): the clock interpolates between the echoes,
so fewer marks cost no accuracy while the audio flows, and a gap always starts a new range, timed from its own send.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

BYTES_PER_MS = 8
BYTES_PER_SECOND = 1000 * BYTES_PER_MS
# A frame sent this late after its range would have played out still extends it: the play-out error this allows
# is re-anchored by the next echo, and without it a model streaming in real time would start a range per frame.
CONTIGUOUS_SLACK_SECONDS = 0.002


@dataclass(slots=True)
class _Range:
    item_id: str
    global_start: int
    size: int
    sent_at: float
    mark: str | None = None  # the mark sent right after this range's last byte


@dataclass(slots=True)
class _Item:
    sent_bytes: int = 0
    # Ranges not yet known to be played. Once a mark echo says one was, it leaves for `played_bytes`: an utterance
    # that streams for minutes keeps a handful of ranges, not one per mark (which the collector would walk, too).
    chunks: deque[_Range] = field(default_factory=deque)
    played_bytes: int = 0
    cap_bytes: int | None = None  # set by a clear: nothing past this was heard


class PlaybackTracker:
    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, keep_items: int = 8, mark_interval_ms: int = 0
    ) -> None:
        self._clock = clock
        self._keep_items = keep_items
        self._mark_bytes = mark_interval_ms * BYTES_PER_MS
        self._items: dict[str, _Item] = {}
        self._pending: deque[_Range] = deque()  # sent, not known to be played (no echo of a mark after it yet)
        self._open: _Range | None = None  # the last range sent, no mark after it yet: the next frame may extend it
        self.unmarked_bytes = 0  # sent since the last mark
        self.marks = 0  # marks handed out so far (a clear counts too): tells whether a mark came since a moment
        self._cleared_marks: Counter[str] = Counter()
        self._sent_bytes = 0
        # The last known point of the play-out: `anchor_bytes` had been played at `anchor_time`.
        self._anchor_bytes = 0
        self._anchor_time = 0.0
        self._drained = asyncio.Event()
        self._drained.set()

    # ---- feeding -----------------------------------------------------------------------------------------------

    def sent(self, item_id: str, size: int) -> str | None:
        """Record `size` bytes of `item_id` just sent to Twilio; returns the mark name to send right after them when
        a mark is due (the audio sent unmarked reached the mark interval), else None."""
        now = self._clock()
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item()
            self._forget_old_items()
        if not self._pending:
            # Twilio's queue is empty: this audio starts playing as it arrives.
            self._anchor_bytes, self._anchor_time = self._sent_bytes, now
        item.sent_bytes += size
        last = self._open
        if (
            last is not None
            and last.item_id == item_id
            and now <= last.sent_at + last.size / BYTES_PER_SECOND + CONTIGUOUS_SLACK_SECONDS
        ):
            last.size += size  # it plays on from the range before it without a gap
        else:
            last = self._open = _Range(item_id, self._sent_bytes, size, now)
            item.chunks.append(last)
            self._pending.append(last)
        self._sent_bytes += size
        self.unmarked_bytes += size
        self._drained.clear()
        return self._mark(last, item) if self.unmarked_bytes >= self._mark_bytes else None

    def flush(self) -> str | None:
        """The mark to send now after audio sent unmarked (the utterance ended, or its audio stopped coming); None
        when every byte sent is followed by a mark already."""
        last = self._open
        if last is None or not self.unmarked_bytes:
            return None
        return self._mark(last, self._items[last.item_id])

    def _mark(self, last: _Range, item: _Item) -> str:
        last.mark = f"{last.item_id}:{item.sent_bytes // BYTES_PER_MS}"
        self._open = None
        self.unmarked_bytes = 0
        self.marks += 1
        return last.mark

    def mark_echoed(self, name: str) -> bool:
        """Twilio echoed a mark. True when it marks audio that was played; False when it was cleared or unknown."""
        if self._cleared_marks[name] > 0:
            self._cleared_marks[name] -= 1  # counted: chunks under 1 ms repeat the previous chunk's name
            if not self._cleared_marks[name]:
                del self._cleared_marks[name]
            return False
        if not any(chunk.mark == name for chunk in self._pending):
            return False  # not a mark of the queue: emptying the queue for it would lose what is still to play
        while self._pending:
            chunk = self._pending.popleft()
            self._settle(chunk)
            if chunk.mark == name:
                self._anchor_bytes = chunk.global_start + chunk.size
                self._anchor_time = self._clock()
                if not self._pending:
                    self._drained.set()
                return True
        return False

    def clear(self) -> None:
        """A `clear` was just sent: freeze what each item had been heard; later echoes of pending marks are cleared."""
        heard = self._heard_global(self._clock())
        for chunk in self._pending:
            if chunk.mark is not None:
                self._cleared_marks[chunk.mark] += 1
        for item in self._items.values():
            if item.cap_bytes is None and item.chunks and item.chunks[-1].global_start + item.chunks[-1].size > heard:
                item.cap_bytes = self._item_heard_at(item, heard)
        self._pending.clear()
        self._open, self.unmarked_bytes = None, 0
        self.marks += 1
        self._anchor_bytes, self._anchor_time = self._sent_bytes, self._clock()
        self._drained.set()

    # ---- questions ---------------------------------------------------------------------------------------------

    def heard_ms(self, item_id: str) -> int | None:
        """Milliseconds of `item_id` the caller has heard: never beyond what was sent, None when none played."""
        item = self._items.get(item_id)
        if item is None:
            return None
        heard = self._item_heard_at(item, self._heard_global(self._clock()))
        if item.cap_bytes is not None:
            heard = min(heard, item.cap_bytes)
        return heard // BYTES_PER_MS if heard > 0 else None

    def sent_ms(self, item_id: str) -> int:
        item = self._items.get(item_id)
        return item.sent_bytes // BYTES_PER_MS if item else 0

    def playing_item(self) -> str | None:
        """The item whose audio is playing now (or queued next); None when Twilio's queue has played out."""
        heard = self._heard_global(self._clock())
        for chunk in self._pending:
            if chunk.global_start + chunk.size > heard:
                return chunk.item_id
        return None

    def unplayed_items(self, *, min_remaining_ms: int = 0) -> list[str]:
        """Items with audio still to play, in play order. A queue within `min_remaining_ms` of its end counts as
        played out: the clock and the echoes can disagree by a few ms at the very end of an utterance."""
        heard = self._heard_global(self._clock())
        end = self._pending[-1].global_start + self._pending[-1].size if self._pending else 0
        if end - heard <= min_remaining_ms * BYTES_PER_MS:
            return []
        seen: dict[str, None] = {}
        for chunk in self._pending:
            if chunk.global_start + chunk.size > heard:
                seen.setdefault(chunk.item_id)
        return list(seen)

    @property
    def ranges_kept(self) -> int:
        """Sent ranges still held: those not yet known to be played (what the tracker's memory grows with)."""
        return sum(len(item.chunks) for item in self._items.values())

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    async def wait_drained(self) -> None:
        """Until every mark sent so far has been echoed (the caller heard everything, or it was cleared)."""
        await self._drained.wait()

    # ---- internals ---------------------------------------------------------------------------------------------

    def _heard_global(self, now: float) -> int:
        position, clock = self._anchor_bytes, self._anchor_time
        for chunk in self._pending:
            if chunk.global_start + chunk.size <= position:
                continue
            start = max(clock, chunk.sent_at)
            if now <= start:
                break
            remaining = chunk.global_start + chunk.size - max(position, chunk.global_start)
            playable = round((now - start) * 1000 * BYTES_PER_MS)
            if playable < remaining:
                return max(position, chunk.global_start) + playable
            position = chunk.global_start + chunk.size
            clock = start + remaining / (1000 * BYTES_PER_MS)
        return position

    def _settle(self, played: _Range) -> None:
        item = self._items.get(played.item_id)
        if item is not None and item.chunks and item.chunks[0] is played:
            item.chunks.popleft()
            item.played_bytes += played.size

    @staticmethod
    def _item_heard_at(item: _Item, heard_global: int) -> int:
        """Bytes of `item` played by the time `heard_global` bytes of the call's audio were (never before the last
        echoed mark, so every settled range counts in full)."""
        total = item.played_bytes
        for chunk in item.chunks:
            if heard_global <= chunk.global_start:
                break
            total += min(chunk.size, heard_global - chunk.global_start)
        return total

    def _forget_old_items(self) -> None:
        while len(self._items) > self._keep_items:
            oldest = next(iter(self._items))
            if any(chunk.item_id == oldest for chunk in self._pending):
                return
            del self._items[oldest]
