import argparse

import pytest

from bench.relay_load_side_by_side import RELAYS, relay_names


def test_relays_are_picked_by_name_in_the_order_given() -> None:
    assert relay_names("ours, floor") == ["ours", "floor"]
    assert relay_names(",".join(RELAYS)) == ["ours", "seeds", "bridge", "floor"]


@pytest.mark.parametrize("text", ["", "ours,nodejs", " , "])
def test_an_unknown_or_empty_selection_is_refused_naming_the_choices(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="ours, seeds, bridge, floor"):
        relay_names(text)
