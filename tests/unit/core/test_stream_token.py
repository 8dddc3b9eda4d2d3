from __future__ import annotations

import hashlib
import hmac

import pytest

from callcore import stream_token
from callcore.stream_token import StreamTokenError, TokenRefusal

SECRET = "test-stream-secret"
SID = "CA" + "1" * 32
OTHER = "CA" + "2" * 32
NOW = 1_800_000_000.0


def refusal(token: str, call_sid: str = SID, now: float = NOW, secret: str = SECRET) -> TokenRefusal:
    with pytest.raises(StreamTokenError) as refused:
        stream_token.verify(secret, token, call_sid, now=now)
    return refused.value.refusal


def test_contract_format_and_round_trip() -> None:
    token = stream_token.issue(SECRET, SID, now=NOW, ttl_seconds=120)
    version, expiry, mac = token.split(".")
    assert version == "v1"
    assert int(expiry) == int(NOW) + 120
    # The contract: hex HMAC-SHA256(secret, "<CallSid>.<expiry>"), computed independently here.
    assert mac == hmac.new(SECRET.encode(), f"{SID}.{expiry}".encode(), hashlib.sha256).hexdigest()
    assert stream_token.verify(SECRET, token, SID, now=NOW) == int(NOW) + 120


def test_same_expiry_gives_the_same_token() -> None:
    """A retried webhook re-issues the identical token from the stored expiry."""
    first = stream_token.issue(SECRET, SID, now=NOW)
    expiry = int(first.split(".")[1])
    assert stream_token.issue(SECRET, SID, expiry=expiry) == first


def test_wrong_call() -> None:
    assert refusal(stream_token.issue(SECRET, OTHER, now=NOW)) is TokenRefusal.BAD_SIGNATURE


def test_expired() -> None:
    token = stream_token.issue(SECRET, SID, now=NOW, ttl_seconds=60)
    assert stream_token.verify(SECRET, token, SID, now=NOW + 60)  # still valid at its expiry
    assert refusal(token, now=NOW + 60 + stream_token.CLOCK_SKEW_SECONDS + 1) is TokenRefusal.EXPIRED


def test_tampered_expiry_or_mac() -> None:
    token = stream_token.issue(SECRET, SID, now=NOW)
    version, expiry, mac = token.split(".")
    assert refusal(f"{version}.{int(expiry) + 3600}.{mac}") is TokenRefusal.BAD_SIGNATURE
    flipped = ("0" if mac[0] != "0" else "1") + mac[1:]
    assert refusal(f"{version}.{expiry}.{flipped}") is TokenRefusal.BAD_SIGNATURE


def test_other_secret() -> None:
    assert refusal(stream_token.issue("another-secret", SID, now=NOW)) is TokenRefusal.BAD_SIGNATURE


def test_wrong_version() -> None:
    token = stream_token.issue(SECRET, SID, now=NOW)
    assert refusal("v2" + token[2:]) is TokenRefusal.WRONG_VERSION


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v1.123",
        "v1.abc.def",
        "v1.12.34.56",
        "v1.-5." + "0" * 64,
        "v1.1800000100." + "z" * 63,
        "v1.\u00b9\u00b2\u00b3." + "0" * 64,  # superscript digits: str.isdigit() says yes, int() refuses them
        "v1.\u0661\u0662\u0663." + "0" * 64,  # Arabic-Indic digits: int() reads them, the contract does not
        "v1." + "9" * 5000 + "." + "0" * 64,  # past int()'s digit limit
        "v1." + "1" * 13 + "." + "0" * 64,
    ],
)
def test_malformed(token: str) -> None:
    assert refusal(token) is TokenRefusal.MALFORMED


def test_expiry_too_far_in_the_future_is_refused() -> None:
    token = stream_token.issue(SECRET, SID, expiry=int(NOW) + 10 * 3600)
    assert refusal(token) is TokenRefusal.TOO_FAR_AHEAD


def test_empty_secret_cannot_issue() -> None:
    with pytest.raises(ValueError, match="empty"):
        stream_token.issue("", SID)
