"""The lines a relay process serves: the environment's own, and each profile version a call names, each with its
tools, built once per process.

A version is read from the table (`ReceptionistProfiles.get`, off the event loop) at start-up when it is published
then (its greetings are rendered before the relay reports ready), else the first time a call names it, and kept:
versions never change, so a redeploy reaches the next calls through the version the TwiML Lambda stores on
their records, while a live call keeps the line it was admitted with.
"""

from __future__ import annotations

import asyncio
import logging

from callcore.models import CallRecord
from callcore.store import CallStore
from callcore.store.receptionist_profiles import ProfileNotPublished, ReceptionistProfiles
from relay.line import LineSettings
from relay.settings import RelaySettings
from relay.tools import ToolRegistry
from relay.tools.credentials import SecretValues

log = logging.getLogger(__name__)


class LineNotAvailable(Exception):
    """The call names a profile version this relay cannot load (not in the table, or unreadable)."""


class Lines:
    def __init__(
        self,
        settings: RelaySettings,
        *,
        store: CallStore,
        default_tools: ToolRegistry,
        secrets: SecretValues | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self.default = LineSettings.from_environment(settings)
        self.default_tools = default_tools
        self._secrets = secrets or SecretValues()
        self._profiles: ReceptionistProfiles | None = None
        self._lines: dict[tuple[str, str], tuple[LineSettings, ToolRegistry]] = {}

    def _table(self) -> ReceptionistProfiles:
        if self._profiles is None:
            self._profiles = ReceptionistProfiles(self._store.table_name, client=self._store.client)
        return self._profiles

    def _load(self, profile_id: str, version: str) -> LineSettings:
        return LineSettings.from_profile(self._table().get(profile_id, version), self._settings)

    async def published(self) -> list[LineSettings]:
        """The current version of every published profile (none when nothing is published, or the table cannot be
        read now: those lines then load on their first call)."""

        def read() -> list[tuple[str, str]]:
            catalog = self._table().catalog()
            return sorted(catalog.versions.items()) if catalog else []

        try:
            current = await asyncio.to_thread(read)
        except Exception as error:
            log.warning("published profiles not read at start-up (%s)", type(error).__name__)
            return []
        lines = []
        for profile_id, version in current:
            try:
                line, _ = await self._line(profile_id, version)
            except LineNotAvailable as error:
                log.warning("profile %s not loaded at start-up: %s", profile_id, error)
                continue
            lines.append(line)
        return lines

    async def for_record(self, record: CallRecord) -> tuple[LineSettings, ToolRegistry]:
        """The call's line and its tools. Raises LineNotAvailable with what is wrong."""
        if record.profile_id is None:
            return self.default, self.default_tools
        if record.profile_version is None:
            raise LineNotAvailable(f"the call record names profile {record.profile_id!r} but no version")
        return await self._line(record.profile_id, record.profile_version)

    async def _line(self, profile_id: str, version: str) -> tuple[LineSettings, ToolRegistry]:
        key = (profile_id, version)
        known = self._lines.get(key)
        if known is not None:
            return known
        try:
            line = await asyncio.to_thread(self._load, *key)
        except ProfileNotPublished as missing:
            raise LineNotAvailable(str(missing)) from None
        except ValueError as invalid:  # an item whose content does not match its version
            raise LineNotAvailable(str(invalid)) from None
        loaded = (line, ToolRegistry.for_line(line, self._secrets))
        self._lines[key] = loaded
        log.info("loaded %s (%s)", line.describe, line.business_name)
        return loaded
