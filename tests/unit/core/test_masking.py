from __future__ import annotations

import pytest

from callcore.masking import mask_digits, mask_phone, mask_spoken_numbers


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


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call me on +1 415-555-0123 please", "call me on +1******0123 please"),
        ("my number is 4155550123.", "my number is ******0123."),
        ("(415) 555 0123", "(******0123"),
        ("+44 20 7946 0958 is the office", "+4*******0958 is the office"),
        ("a table for 4 at 7:30 on 12/05", "a table for 4 at 7:30 on 12/05"),
        ("", ""),
        (None, ""),
    ],
)
def test_digit_runs_in_free_text_are_masked_like_phone_numbers(text, masked):
    assert mask_digits(text) == masked


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        ("my card is 4111 1111 1111 1111", "my card is #### #### #### ####"),
        ("the code is 737", "the code is ###"),
        ("pin 1234, born 1980", "pin ####, born ####"),
        ("call me on 415-555-0123", "call me on ###-###-####"),
        ("a table for 4 at 7:30 on the 12th", "a table for 4 at 7:30 on the 12th"),
        ("no digits at all", "no digits at all"),
    ],
)
def test_spoken_numbers_lose_every_digit_and_keep_their_shape(said: str, stored: str) -> None:
    assert mask_spoken_numbers(said) == stored
