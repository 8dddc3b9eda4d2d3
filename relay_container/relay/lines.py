"""The lines a relay process serves: the environment's own, and each profile version a call names, each with its
tools, built once per process.

A version is read from the table (`ReceptionistProfiles.get`, off the event loop) the first time a call names it and
kept: versions never change, so a redeploy reaches the next calls through the version the TwiML Lambda stores on
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

    def _load(self, profile_id: str, version: str) -> LineSettings:
        if self._profiles is None:
            self._profiles = ReceptionistProfiles(self._store.table_name, client=self._store.client)
        return LineSettings.from_profile(self._profiles.get(profile_id, version), self._settings)

    async def for_record(self, record: CallRecord) -> tuple[LineSettings, ToolRegistry]:
        """The call's line and its tools. Raises LineNotAvailable with what is wrong."""
        if record.profile_id is None:
            return self.default, self.default_tools
        if record.profile_version is None:
            raise LineNotAvailable(f"the call record names profile {record.profile_id!r} but no version")
        key = (record.profile_id, record.profile_version)
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
