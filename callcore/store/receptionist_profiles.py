"""Receptionist profiles in the call table: what `cdk deploy` publishes and what the Lambdas and the relay read.

| item | pk | sk |
| --- | --- | --- |
| the catalog: which line answers which number | `RECEPTIONISTS` | `CATALOG` |
| one version of one profile | `RECEPTIONIST#<id>` | `VERSION#<version>` |

The catalog holds `numbers` {E.164: profile id}, `versions` {profile id: current version} and `fallback` (the id of
the line that answers numbers no profile lists, if any); a version holds `document`, the JSON of
`PublishedProfile.document()`, and the table's TTL once it is retired.

Versions are immutable (the version is a hash of the content) and written only if absent, so a call that started on a
version keeps reading the same settings while a redeploy publishes the next one; the catalog is the one item a deploy
overwrites. A version no longer in the catalog is retired: it gets the table's TTL (`RETIRED_VERSION_TTL`), long after
the longest call that could still be using it has ended.

Readers cache: a version forever (it never changes), the catalog for `CATALOG_CACHE_SECONDS`, so a redeploy reaches
new calls within that time without restarting anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from callcore.models import utc_now
from callcore.profiles.published import PublishedProfile
from callcore.store.keys import TTL_ATTRIBUTE
from callcore.store.retention import expires_at
from callcore.store.table import TableAccess, deserialize_item, serialize_item

CATALOG_PK = "RECEPTIONISTS"
CATALOG_SK = "CATALOG"
VERSION_SK_PREFIX = "VERSION#"
RETIRED_VERSION_TTL = timedelta(days=30)
CATALOG_CACHE_SECONDS = 30.0


def profile_pk(profile_id: str) -> str:
    return f"RECEPTIONIST#{profile_id}"


def version_sk(version: str) -> str:
    return f"{VERSION_SK_PREFIX}{version}"


class ProfileNotPublished(LookupError):
    """The catalog or a version a caller asked for is not in the table."""


@dataclass(frozen=True)
class ProfileCatalog:
    """Which profile (and which of its versions) answers each number; `fallback` answers numbers no profile lists."""

    numbers: dict[str, str] = field(default_factory=dict)  # E.164 -> profile id
    versions: dict[str, str] = field(default_factory=dict)  # profile id -> current version
    fallback: str | None = None

    def profile_for_number(self, number: str) -> tuple[str, str] | None:
        """(profile id, version) answering `number`: its own line, else the fallback line, else None."""
        profile_id = self.numbers.get(number, self.fallback)
        if profile_id is None:
            return None
        return profile_id, self.versions[profile_id]

    def current_version(self, profile_id: str) -> str | None:
        return self.versions.get(profile_id)

    @classmethod
    def of(cls, profiles: Iterable[PublishedProfile]) -> ProfileCatalog:
        listed = list(profiles)
        fallbacks = [p.profile_id for p in listed if p.profile.answers_unknown_numbers]
        if len(fallbacks) > 1:
            raise ValueError(f"answers_unknown_numbers is set by more than one profile: {', '.join(fallbacks)}")
        numbers: dict[str, str] = {}
        for published in listed:
            for number in published.profile.numbers:
                if number in numbers:
                    raise ValueError(f"{number} is listed by profiles {numbers[number]!r} and {published.profile_id!r}")
                numbers[number] = published.profile_id
        return cls(
            numbers=numbers,
            versions={p.profile_id: p.version for p in listed},
            fallback=fallbacks[0] if fallbacks else None,
        )


class ReceptionistProfiles(TableAccess):
    """Publish the deployed profiles (the custom resource) and read them per call (the Lambdas, the relay)."""

    def __init__(self, *args: Any, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock
        self._catalog: tuple[float, ProfileCatalog | None] | None = None
        self._versions: dict[tuple[str, str], PublishedProfile] = {}

    # --- publishing ---------------------------------------------------------------------------------------------

    def publish(self, profiles: Iterable[PublishedProfile], *, now: datetime | None = None) -> ProfileCatalog:
        """Write each profile's version (once), then the catalog; retire the versions the catalog no longer names.
        Safe to repeat: the same profiles publish nothing new."""
        at = now or utc_now()
        listed = list(profiles)
        catalog = ProfileCatalog.of(listed)
        previous = self._read_catalog()
        for published in listed:
            item = serialize_item(
                {
                    "pk": profile_pk(published.profile_id),
                    "sk": version_sk(published.version),
                    "entity": "receptionist_profile",
                    "published_at": at,
                    "document": json.dumps(published.document(), sort_keys=True),
                }
            )
            self._put_once(item, condition="attribute_not_exists(sk)")
            # A version that was retired and is current again (a rollback) must not expire under its calls.
            self.client.update_item(
                TableName=self.table_name,
                Key=serialize_item({"pk": profile_pk(published.profile_id), "sk": version_sk(published.version)}),
                UpdateExpression=f"REMOVE {TTL_ATTRIBUTE}",
            )
        self.client.put_item(
            TableName=self.table_name,
            Item=serialize_item(
                {
                    "pk": CATALOG_PK,
                    "sk": CATALOG_SK,
                    "entity": "receptionist_catalog",
                    "published_at": at,
                    "numbers": catalog.numbers or None,
                    "versions": catalog.versions or None,
                    "fallback": catalog.fallback,
                }
            ),
        )
        for profile_id in set(catalog.versions) | set(previous.versions if previous else {}):
            self._retire_versions(profile_id, keep=catalog.current_version(profile_id), at=at)
        self._catalog = (self._clock(), catalog)
        return catalog

    def _retire_versions(self, profile_id: str, *, keep: str | None, at: datetime) -> None:
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=serialize_item({":pk": profile_pk(profile_id), ":prefix": VERSION_SK_PREFIX}),
            ProjectionExpression=f"pk, sk, {TTL_ATTRIBUTE}",
        )
        for page in pages:
            for item in page.get("Items", []):
                if item["sk"]["S"] == version_sk(keep or "") or TTL_ATTRIBUTE in item:
                    continue
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET #ttl = :ttl",
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues=serialize_item({":ttl": expires_at(at, RETIRED_VERSION_TTL)}),
                )

    # --- reading ------------------------------------------------------------------------------------------------

    def catalog(self) -> ProfileCatalog | None:
        """The published catalog, cached for CATALOG_CACHE_SECONDS; None when no profile was ever published (a
        deployment or local run without profiles: the settings from the environment apply)."""
        now = self._clock()
        if self._catalog is None or now - self._catalog[0] >= CATALOG_CACHE_SECONDS:
            self._catalog = (now, self._read_catalog())
        return self._catalog[1]

    def _read_catalog(self) -> ProfileCatalog | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=serialize_item({"pk": CATALOG_PK, "sk": CATALOG_SK}), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        data = deserialize_item(response["Item"])
        return ProfileCatalog(
            numbers=dict(data.get("numbers") or {}),
            versions=dict(data.get("versions") or {}),
            fallback=data.get("fallback"),
        )

    def for_number(self, number: str) -> PublishedProfile | None:
        """The profile answering a dialled number (its own line, else the fallback line); None when the catalog
        names no line for it or no profile is published."""
        catalog = self.catalog()
        chosen = catalog.profile_for_number(number) if catalog else None
        return self.get(*chosen) if chosen else None

    def current(self, profile_id: str) -> PublishedProfile:
        """The current version of a profile by id (an outbound call names its line): ProfileNotPublished if none."""
        catalog = self.catalog()
        version = catalog.current_version(profile_id) if catalog else None
        if version is None:
            raise ProfileNotPublished(f"no profile {profile_id!r} is deployed")
        return self.get(profile_id, version)

    def get(self, profile_id: str, version: str) -> PublishedProfile:
        """One version, read once per process: versions never change."""
        cached = self._versions.get((profile_id, version))
        if cached is not None:
            return cached
        response = self.client.get_item(
            TableName=self.table_name,
            Key=serialize_item({"pk": profile_pk(profile_id), "sk": version_sk(version)}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise ProfileNotPublished(f"profile {profile_id!r} version {version} is not in the table")
        published = PublishedProfile.from_document(json.loads(deserialize_item(response["Item"])["document"]))
        self._versions[(profile_id, version)] = published
        return published
