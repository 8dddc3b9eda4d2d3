import pytest

from bench.relay_profile import top_entries

pytestmark = pytest.mark.unit

LOOP = 'process 7:"python -m relay";run (asyncio/base_events.py:607)'
COLLAPSED = [
    f"{LOOP};on_delta (relay_container/relay/agent_audio.py:70);write (asyncio/selector_events.py:1070) 6",
    f"{LOOP};on_delta (relay_container/relay/agent_audio.py:71) 2",
    f"{LOOP};loads (/x/site-packages/json/__init__.py:346) 2",
    "not a stack line",
]


def test_functions_are_ranked_by_their_own_samples_with_their_lines_summed():
    total, entries = top_entries(COLLAPSED, top=2)
    assert total == 10
    assert [e.function for e in entries] == ["write (asyncio/selector_events.py)", "on_delta (relay/agent_audio.py)"]
    assert entries[0].self_pct == pytest.approx(60.0)
    assert entries[1].self_pct == pytest.approx(20.0)
    assert entries[1].total_pct == pytest.approx(80.0)  # its own two samples and the six in the write it calls


def test_an_empty_profile_has_no_entries():
    assert top_entries([], top=5) == (0, [])
