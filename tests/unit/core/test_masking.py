from __future__ import annotations

import pytest

from callcore.masking import mask_phone


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550123", "+1******0123"),
        ("+442071838750", "+4*******8750"),
        ("(415) 555-0123", "******0123"),
        ("client:alice", "client:***"),
        ("sip:bob@example.com", "sip:***"),
        ("anonymous", "***"),
        ("", ""),
        (None, ""),
        ("1234", "***"),
    ],
)
def test_mask_phone(number: str | None, masked: str) -> None:
    assert mask_phone(number) == masked


def test_masked_number_never_contains_the_middle_digits() -> None:
    masked = mask_phone("+14155559876")
    assert "41555" not in masked
    assert masked.endswith("9876")
