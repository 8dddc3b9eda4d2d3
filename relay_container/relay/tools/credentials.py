"""The business API's credentials: a Secrets Manager secret a profile names (`business_api.credentials_secret`),
its value sent in the header the profile names (`business_api.header`).

Values are read off the event loop (boto3 blocks) and kept per process for `SECRET_CACHE_SECONDS`, so a rotated
secret reaches the calls within that time without a Secrets Manager read per request. A value is never logged:
failures name the secret and the error's type only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from relay.tools.base import ToolError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

log = logging.getLogger(__name__)

SECRET_CACHE_SECONDS = 300.0
_UNAVAILABLE = "The booking system is not reachable right now. Apologise and offer to take a message or transfer."


class SecretValues:
    def __init__(
        self,
        client: Callable[[], SecretsManagerClient] | None = None,
        *,
        ttl_seconds: float = SECRET_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client
        self._client: SecretsManagerClient | None = None
        self._ttl = ttl_seconds
        self._clock = clock
        self._values: dict[str, tuple[float, str]] = {}
        self._reads: dict[str, asyncio.Task[str]] = {}  # one read per secret at a time, shared by the calls asking

    def _read(self, name: str) -> str:
        if self._client is None:
            if self._client_factory is None:
                from callcore.aws import secretsmanager_client  # noqa: PLC0415 - boto3 only when a profile has one

                self._client_factory = secretsmanager_client
            self._client = self._client_factory()
        value = self._client.get_secret_value(SecretId=name).get("SecretString")
        if not value:
            raise ValueError("the secret holds no string value")
        return value

    async def get(self, name: str) -> str:
        """The secret's value; a ToolError the model can put into words when it cannot be read."""
        cached = self._values.get(name)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        read = self._reads.get(name)
        if read is None:
            read = asyncio.create_task(asyncio.to_thread(self._read, name), name="secret-read")
            self._reads[name] = read
            read.add_done_callback(lambda _: self._reads.pop(name, None))
        try:
            value = await asyncio.shield(read)
        except Exception as error:
            log.error("business API credentials %s could not be read (%s)", name, type(error).__name__)
            raise ToolError(_UNAVAILABLE) from None
        self._values[name] = (self._clock(), value)
        return value


class CredentialsHeader:
    """The header a business API request carries: `header: <the secret's value>`."""

    def __init__(self, secret_name: str, header: str, values: SecretValues) -> None:
        self.secret_name = secret_name
        self.header = header
        self._values = values

    async def headers(self) -> dict[str, str]:
        return {self.header: await self._values.get(self.secret_name)}
