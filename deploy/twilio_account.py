"""Twilio's REST API, one request: fetch the account the .env names, authenticated with the .env's auth token. A typo
in either fails here, in a second, instead of in the Twilio number custom resource twenty minutes into a deploy.

One GET with Basic auth does not need the twilio SDK; the base URL can point at a local fake (TWILIO_API_BASE_URL,
the same setting the Lambdas use)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

from deploy.env_file import TeamKeys
from deploy.errors import DeployError

TWILIO_API_ORIGIN = "https://api.twilio.com"
TIMEOUT_SECONDS = 10.0
_HTTP_UNAUTHORIZED = 401
_HTTP_FORBIDDEN = 403
_HTTP_NOT_FOUND = 404


def verify_twilio_account(keys: TeamKeys, *, base_url: str = TWILIO_API_ORIGIN) -> None:
    """Raise DeployError unless Twilio accepts the SID and token and the account is active."""
    url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{keys.twilio_account_sid}.json"
    credentials = base64.b64encode(f"{keys.twilio_account_sid}:{keys.twilio_auth_token}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is Twilio's https origin, or a test's loopback fake
        url, headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - see above
            account: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as error:
        raise DeployError(_refusal(error.code, _twilio_code(error))) from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeployError(f"Twilio's REST API could not be reached to check the credentials: {reason}") from None
    except ValueError:
        raise DeployError("Twilio's REST API answered the account check with something other than JSON") from None
    status = account.get("status")
    if status != "active":
        raise DeployError(
            f"the Twilio account in TWILIO_ACCOUNT_SID is {status}, not active: calls cannot be placed or answered "
            "(the Twilio console says why)"
        )


def _refusal(status: int, code: int | None) -> str:
    shown = f" (HTTP {status}, Twilio error {code})" if code else f" (HTTP {status})"
    if status == _HTTP_UNAUTHORIZED:
        return (
            f"Twilio refused TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN{shown}: copy both again from the Twilio "
            "console's home page into .env (the token of that same account; after a token rotation, the new one)"
        )
    if status in {_HTTP_FORBIDDEN, _HTTP_NOT_FOUND}:
        return (
            f"Twilio does not let these credentials read the account in TWILIO_ACCOUNT_SID{shown}: "
            "are the SID and the token of the same account?"
        )
    return f"Twilio could not check the credentials{shown}: try again, or see status.twilio.com"


def _twilio_code(error: urllib.error.HTTPError) -> int | None:
    try:
        body = json.loads(error.read() or b"{}")
    except (ValueError, OSError):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None
