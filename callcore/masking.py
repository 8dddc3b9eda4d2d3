"""Phone numbers are personal data: logs and analytics see them masked."""

from __future__ import annotations

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
