"""The per-call stream token: `v1.<expiry unix seconds>.<hex HMAC-SHA256(secret, "<CallSid>.<expiry>")>`.

The incoming-call Lambda issues it inside `<Stream><Parameter name="token">`; the relay verifies it on `start`.
It binds the stream to one CallSid for a short time; single use is enforced by the store (`CallStore.claim_stream`),
since only shared state can tell a second stream from the first across relay tasks.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from enum import StrEnum

VERSION = "v1"
DEFAULT_TTL_SECONDS = 120
# Clocks of the Lambda and the relay task may disagree a little; a token from the near future is still fine.
CLOCK_SKEW_SECONDS = 5
MAX_EXPIRY_DIGITS = 12  # unix seconds have 10 digits until the year 2286


class TokenRefusal(StrEnum):
    MALFORMED = "malformed"
    WRONG_VERSION = "wrong_version"
    EXPIRED = "expired"
    BAD_SIGNATURE = "bad_signature"  # tampered, another call's token, or another secret
    TOO_FAR_AHEAD = "too_far_ahead"


class StreamTokenError(Exception):
    def __init__(self, refusal: TokenRefusal) -> None:
        super().__init__(f"stream token refused: {refusal.value}")
        self.refusal = refusal


def _mac(secret: str, call_sid: str, expiry: int) -> str:
    return hmac.new(secret.encode(), f"{call_sid}.{expiry}".encode(), hashlib.sha256).hexdigest()


def issue(
    secret: str,
    call_sid: str,
    *,
    expiry: int | None = None,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> str:
    if not secret:
        raise ValueError("stream token secret is empty")
    if expiry is None:
        expiry = int(now if now is not None else time.time()) + ttl_seconds
    return f"{VERSION}.{expiry}.{_mac(secret, call_sid, expiry)}"


def verify(secret: str, token: str, call_sid: str, *, now: float | None = None, max_ttl_seconds: int = 3600) -> int:
    """Return the token's expiry if it is valid for this call now; raise StreamTokenError naming why not."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise StreamTokenError(TokenRefusal.MALFORMED)
    version, expiry_text, mac = parts
    if version != VERSION:
        raise StreamTokenError(TokenRefusal.WRONG_VERSION)
    # Plain ASCII digits of a sane length only: str.isdigit() also accepts digits int() refuses ("²"), and a
    # thousands-digit number makes int() slow or raise.
    if (
        not (expiry_text.isascii() and expiry_text.isdigit() and len(expiry_text) <= MAX_EXPIRY_DIGITS)
        or len(mac) != 64
    ):
        raise StreamTokenError(TokenRefusal.MALFORMED)
    expiry = int(expiry_text)
    # Check the MAC before the clock, so a forged token learns nothing from which refusal it gets.
    if not hmac.compare_digest(mac.encode(), _mac(secret, call_sid, expiry).encode()):
        raise StreamTokenError(TokenRefusal.BAD_SIGNATURE)
    current = now if now is not None else time.time()
    if expiry + CLOCK_SKEW_SECONDS < current:
        raise StreamTokenError(TokenRefusal.EXPIRED)
    if expiry - current > max_ttl_seconds + CLOCK_SKEW_SECONDS:
        raise StreamTokenError(TokenRefusal.TOO_FAR_AHEAD)
    return expiry
