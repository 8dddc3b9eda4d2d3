"""Phone numbers are personal data: logs and analytics see them masked, or as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import re

_PHONE = re.compile(r"^\+?\d{5,15}$")


def mask_phone(number: str | None) -> str:
    """`+14155550123` -> `+1******0123`.

    Keeps the `+`, the first digit (the country zone) and the last four digits: what support staff need to tell
    calls apart. Anything that is not a plain number (a SIP URI, a `client:` identity) keeps only its scheme, since the
    rest may be a name.
    """
    if not number:
        return ""
    compact = re.sub(r"[\s().-]", "", number)
    if _PHONE.match(compact):
        head = 2 if compact.startswith("+") else 0
        return compact[:head] + "*" * (len(compact) - head - 4) + compact[-4:]
    scheme, sep, _ = number.partition(":")
    return f"{scheme}:***" if sep and scheme.isalpha() and len(scheme) <= 10 else "***"


# A run of at least five digits, possibly spaced or punctuated as people write phone numbers ("+1 (415) 555-0123").
# Fewer digits ("a table for 4", "at 7:30") are not a number anyone can be reached on and stay readable.
_DIGIT_RUN = re.compile(r"\+?\d(?:[\s().-]*\d){4,}")


def mask_digits(text: str | None) -> str:
    """Free text (e.g. the model's reason for a transfer) with every phone-number-like digit run masked.

    `call me on +1 415-555-0123 please` -> `call me on +1******0123 please`: the same shape `mask_phone` gives.
    """
    if not text:
        return ""
    return _DIGIT_RUN.sub(lambda match: mask_phone(match.group(0)), text)


# Three or more digits in a row, possibly spaced or punctuated: card numbers, PINs, security codes, account and phone
# numbers, years of birth, house numbers. One or two digits ("a table for 4", "at 7:30", "the 12th") stay readable.
_SPOKEN_NUMBER = re.compile(r"\d(?:[\s.-]*\d){2,}")


def mask_spoken_numbers(text: str) -> str:
    """What a caller said, with every run of three or more digits replaced digit for digit by `#`.

    `my card is 4111 1111 1111 1111, code 737` -> `my card is #### #### #### ####, code ###`. Callers read out card
    numbers and codes; the stored transcript keeps the shape of what was said, never the digits.
    """
    return _SPOKEN_NUMBER.sub(lambda match: re.sub(r"\d", "#", match.group(0)), text)


def caller_hash(hash_key: bytes, number: str) -> str:
    """A keyed hash of a phone number: lets analysts count repeat callers (the S3 call summaries) and the relay
    recognise a returning one (`callcore.store.callers`) without storing the number. Without the key it cannot be
    matched back to a number by hashing every possible one."""
    return hmac.new(hash_key, number.encode(), hashlib.sha256).hexdigest()[:32]
