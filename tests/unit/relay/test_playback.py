"""The playback tracker against a controlled clock: echoes, interpolation, clear, gaps between responses."""

from __future__ import annotations

import asyncio

import pytest

from relay.playback import PlaybackTracker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1000


def marked(tracker: PlaybackTracker, item_id: str, size: int) -> str:
    """Sent with a mark right after it (the tracker's default: a mark after every chunk)."""
    mark = tracker.sent(item_id, size)
    assert mark is not None
    return mark


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_nothing_heard_before_anything_played(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock)
    assert tracker.heard_ms("item_a") is None
    marked(tracker, "item_a", 800)
    assert tracker.heard_ms("item_a") is None  # sent at this very instant: nothing played yet


def test_interpolates_between_echoes_and_never_exceeds_sent(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock)
    first = marked(tracker, "item_a", 800)  # 100 ms
    second = marked(tracker, "item_a", 800)
    assert first == "item_a:100"
    assert second == "item_a:200"
    clock.advance_ms(50)
    assert tracker.heard_ms("item_a") == 50
    clock.advance_ms(60)  # Twilio echoes a little late
    assert tracker.mark_echoed(first)
    assert tracker.heard_ms("item_a") == 100  # re-anchored on the echo
    clock.advance_ms(40)
    assert tracker.heard_ms("item_a") == 140
    clock.advance_ms(1000)
    assert tracker.heard_ms("item_a") == 200  # capped at what was sent
    assert tracker.mark_echoed(second)
    assert not tracker.has_pending


def test_gap_between_responses_does_not_count_as_playing(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock)
    mark = marked(tracker, "item_a", 400)  # 50 ms
    clock.advance_ms(50)
    tracker.mark_echoed(mark)
    clock.advance_ms(2000)  # silence: the model is thinking
    marked(tracker, "item_b", 1600)
    clock.advance_ms(30)
    assert tracker.heard_ms("item_b") == 30
    assert tracker.playing_item() == "item_b"


def test_second_item_queued_behind_the_first(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock)
    marked(tracker, "item_a", 800)
    marked(tracker, "item_b", 800)
    clock.advance_ms(150)
    assert tracker.heard_ms("item_a") == 100
    assert tracker.heard_ms("item_b") == 50
    assert tracker.playing_item() == "item_b"
    assert tracker.unplayed_items() == ["item_b"]


def test_clear_freezes_heard_and_cleared_echoes_do_not_count(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock)
    marks = [marked(tracker, "item_a", 800) for _ in range(5)]  # 500 ms queued
    clock.advance_ms(120)
    assert tracker.mark_echoed(marks[0])  # the first 100 ms ended by now (Twilio started 20 ms late)
    clock.advance_ms(10)
    tracker.clear()
    assert tracker.heard_ms("item_a") == 110
    # Twilio echoes every pending mark at once after a clear: none of them was heard.
    assert not any(tracker.mark_echoed(mark) for mark in marks[1:])
    clock.advance_ms(500)
    assert tracker.heard_ms("item_a") == 110
    assert tracker.playing_item() is None


async def test_wait_drained_follows_the_echoes(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock)
    await tracker.wait_drained()  # nothing pending
    mark = marked(tracker, "item_a", 80)
    waiter = asyncio.create_task(tracker.wait_drained())
    await asyncio.sleep(0)
    assert not waiter.done()
    tracker.mark_echoed(mark)
    await waiter


def test_sent_ms_and_unknown_marks(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock)
    marked(tracker, "item_a", 1234)
    assert tracker.sent_ms("item_a") == 154
    assert tracker.sent_ms("other") == 0
    assert not tracker.mark_echoed("never-sent")


def test_the_last_few_ms_count_as_played_out(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock)
    marked(tracker, "item_a", 800)
    clock.advance_ms(70)
    assert tracker.unplayed_items(min_remaining_ms=20) == ["item_a"]
    clock.advance_ms(15)
    assert tracker.unplayed_items(min_remaining_ms=20) == []
    assert tracker.unplayed_items() == ["item_a"]


def test_echoes_of_cleared_marks_sharing_a_name_leave_later_audio_pending(clock: Clock) -> None:
    """Chunks under 8 bytes (1 ms) repeat the previous mark name. Both copies are echoed after a clear; the second
    must not be taken for an unknown echo that empties the queue of the next response (which would hide it from
    the next barge-in and let a hang-up start before the goodbye was heard)."""
    tracker = PlaybackTracker(clock=clock)
    first = marked(tracker, "item_a", 800)
    second = marked(tracker, "item_a", 4)
    assert first == second
    clock.advance_ms(50)
    tracker.clear()
    marked(tracker, "item_b", 1600)
    assert tracker.mark_echoed(first) is False
    assert tracker.mark_echoed(second) is False
    assert tracker.has_pending
    clock.advance_ms(50)
    assert tracker.unplayed_items() == ["item_b"]


def test_an_echo_of_a_mark_never_sent_changes_nothing(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock)
    mark = marked(tracker, "item_a", 1600)
    clock.advance_ms(50)
    assert tracker.mark_echoed("item_other:5") is False
    assert tracker.has_pending
    assert tracker.unplayed_items() == ["item_a"]
    assert tracker.mark_echoed(mark) is True
    assert not tracker.has_pending


def test_a_mark_follows_every_mark_interval_of_audio_and_the_clock_interpolates_between(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock, mark_interval_ms=100)
    marks = []
    for _ in range(10):  # 200 ms in 20 ms frames, as fast as the model sends them
        marks.append(tracker.sent("item_a", 160))
    assert [m for m in marks if m is not None] == ["item_a:100", "item_a:200"]
    clock.advance_ms(130)
    assert tracker.heard_ms("item_a") == 130
    assert tracker.mark_echoed("item_a:100")
    assert tracker.heard_ms("item_a") == 100  # re-anchored: Twilio started 30 ms late
    clock.advance_ms(20)
    assert tracker.heard_ms("item_a") == 120


def test_audio_after_a_gap_in_play_out_is_timed_from_its_own_send(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock, mark_interval_ms=100)
    assert tracker.sent("item_a", 160) is None  # 20 ms
    clock.advance_ms(50)  # the model paused: the caller heard 20 ms, then 30 ms of silence
    assert tracker.sent("item_a", 160) is None
    clock.advance_ms(10)
    assert tracker.heard_ms("item_a") == 30  # 20 before the gap, 10 of the second frame
    assert tracker.flush() == "item_a:40"
    assert tracker.flush() is None  # everything sent is marked
    clock.advance_ms(100)
    assert tracker.heard_ms("item_a") == 40
    assert tracker.mark_echoed("item_a:40")
    assert not tracker.has_pending


def test_a_clear_drops_the_unmarked_audio_too(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock, mark_interval_ms=100)
    mark = marked(tracker, "item_a", 800)
    tracker.sent("item_a", 160)
    clock.advance_ms(50)
    tracker.clear()
    assert tracker.flush() is None
    assert not tracker.has_pending
    assert tracker.mark_echoed(mark) is False  # echoed after the clear: cleared, not played
    assert tracker.heard_ms("item_a") == 50


def test_an_utterance_streaming_for_minutes_keeps_only_its_unplayed_ranges_and_still_cuts_exactly(clock: Clock) -> None:
    tracker = PlaybackTracker(clock=clock, mark_interval_ms=200)
    for _ in range(10 * 60 * 50):  # ten minutes of one utterance, a 20 ms frame every 20 ms, every mark echoed
        mark = tracker.sent("item_a", 160)
        clock.advance_ms(20)
        if mark is not None:
            assert tracker.mark_echoed(mark)
    assert tracker.ranges_kept <= 1  # played ranges are settled, not kept: 3000 marks went by
    assert tracker.heard_ms("item_a") == 600_000
    tracker.sent("item_a", 800)  # 100 ms more, half of it heard when the caller barges in
    clock.advance_ms(50)
    tracker.clear()
    assert tracker.heard_ms("item_a") == 600_050
    assert tracker.sent_ms("item_a") == 600_100
