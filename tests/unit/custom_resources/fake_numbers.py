"""An in-process fake of Twilio's IncomingPhoneNumbers REST resource, plugged into the real twilio client as its
`http_client` (no socket): the handler's requests go through twilio's own URL building and response parsing.

It behaves as Twilio does where the handler depends on it: Basic auth with the account SID and token (401 / code
20003), the account in the path, partial matching of the `PhoneNumber` filter, 404 / 20404 for unknown numbers, and
updates that change only the parameters sent.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from twilio.http import HttpClient
from twilio.http.response import Response

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token"
_NUMBERS = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-f]{32})/IncomingPhoneNumbers\.json$")
_NUMBER = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-f]{32})/IncomingPhoneNumbers/(?P<sid>PN[0-9a-f]{32})\.json$"
)
UPDATABLE = frozenset(
    {
        "VoiceUrl",
        "VoiceMethod",
        "VoiceFallbackUrl",
        "VoiceFallbackMethod",
        "StatusCallback",
        "StatusCallbackMethod",
        "VoiceApplicationSid",
    }
)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


@dataclass
class FakeNumber:
    phone_number: str
    sid: str = field(default_factory=lambda: "PN" + uuid.uuid4().hex)
    values: dict[str, Any] = field(
        default_factory=lambda: {
            "voice_url": "https://demo.twilio.com/welcome/voice/",
            "voice_method": "POST",
            "voice_fallback_url": None,
            "voice_fallback_method": "POST",
            "status_callback": None,
            "status_callback_method": "POST",
            "voice_application_sid": None,
            "trunk_sid": None,
        }
    )

    def resource(self, account_sid: str) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": account_sid,
            "phone_number": self.phone_number,
            "friendly_name": self.phone_number,
            **self.values,
        }


@dataclass
class FakeTwilioNumbers(HttpClient):  # type: ignore[misc]  # twilio ships no type stubs
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    numbers: dict[str, FakeNumber] = field(default_factory=dict)
    updates: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(logger=None, is_async=False)

    def add(self, phone_number: str, **values: Any) -> FakeNumber:
        number = FakeNumber(phone_number)
        number.values.update(values)
        self.numbers[number.sid] = number
        return number

    @staticmethod
    def _json(status: int, body: dict[str, Any]) -> Response:
        return Response(status, json.dumps(body))

    def _error(self, status: int, code: int, message: str) -> Response:
        return self._json(status, {"code": code, "message": message, "status": status, "more_info": ""})

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if auth != (self.account_sid, self.auth_token):
            return self._error(401, 20003, "Authenticate")
        path = urlsplit(uri).path
        if match := _NUMBERS.match(path):
            if match["account"] != self.account_sid or method != "GET":
                return self._error(404, 20404, "The requested resource was not found")
            wanted = str((params or {}).get("PhoneNumber", ""))
            found = [n.resource(self.account_sid) for n in self.numbers.values() if wanted in n.phone_number]
            return self._json(
                200,
                {
                    "incoming_phone_numbers": found,
                    "page": 0,
                    "page_size": 50,
                    "first_page_uri": path,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "uri": path,
                    "start": 0,
                    "end": len(found),
                },
            )
        if (match := _NUMBER.match(path)) and match["account"] == self.account_sid:
            number = self.numbers.get(match["sid"])
            if number is None:
                return self._error(404, 20404, "The requested resource was not found")
            if method == "POST":
                sent = {str(k): str(v) for k, v in (data or {}).items()}
                unknown = set(sent) - UPDATABLE
                if unknown:
                    return self._error(400, 21200, f"unexpected parameters {sorted(unknown)}")
                for name, value in sent.items():
                    number.values[_snake(name)] = value or None  # Twilio stores "" as unset
                self.updates.append((number.sid, sent))
            return self._json(200, number.resource(self.account_sid))
        return self._error(404, 20404, "The requested resource was not found")
