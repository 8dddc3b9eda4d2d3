"""Receptionist profiles in the call table (moto): published once per content, chosen by the dialled number, a live
call's version kept while a redeploy publishes the next, retired versions expiring."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from callcore.profiles import Profile, PublishedProfile, load_profile
from callcore.store import TTL_ATTRIBUTE, CallStore
from callcore.store.receptionist_profiles import (
    CATALOG_CACHE_SECONDS,
    RETIRED_VERSION_TTL,
    ProfileNotPublished,
    ReceptionistProfiles,
    profile_pk,
    version_sk,
)

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[3] / "profiles" / "example.toml"


def profile(name: str, numbers: list[str], **extra: object) -> Profile:
    return Profile.model_validate(
        {"business_name": name, "numbers": numbers, "timezone": "Europe/London", "greeting": f"{name} here.", **extra}
    )


BISTRO = PublishedProfile.of("bistro", profile("Bistro", ["+15550100001"], answers_unknown_numbers=True), None)
DENTIST = PublishedProfile.of("dentist", profile("Dentist", ["+15550100002", "+15550100003"]), "You are {business}.")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def profiles(store: CallStore, clock: Clock) -> ReceptionistProfiles:
    return ReceptionistProfiles(store.table_name, client=store.client, clock=clock)


def reader(store: CallStore, clock: Clock) -> ReceptionistProfiles:
    """Another process (a Lambda container, a relay task) with its own caches."""
    return ReceptionistProfiles(store.table_name, client=store.client, clock=clock)


def version_item(store: CallStore, published: PublishedProfile) -> dict[str, Any]:
    key = {"pk": {"S": profile_pk(published.profile_id)}, "sk": {"S": version_sk(published.version)}}
    return store.client.get_item(TableName=store.table_name, Key=key)["Item"]


def test_the_version_is_the_content_and_survives_the_table(profiles: ReceptionistProfiles) -> None:
    assert BISTRO.version == PublishedProfile.of("bistro", BISTRO.profile, None).version
    assert BISTRO.version != PublishedProfile.of("bistro", BISTRO.profile, "another prompt").version
    profiles.publish([BISTRO, DENTIST], now=AT)
    assert profiles.get("dentist", DENTIST.version) == DENTIST


def test_the_example_profile_round_trips_through_its_document() -> None:
    published = PublishedProfile.from_loaded(load_profile(EXAMPLE))
    assert PublishedProfile.from_document(json.loads(json.dumps(published.document()))) == published


def test_a_hand_edited_document_is_refused() -> None:
    document = DENTIST.document()
    document["profile"]["greeting"] = "Edited by hand."
    with pytest.raises(ValueError, match="does not match its content"):
        PublishedProfile.from_document(document)


def test_each_number_gets_its_own_line_and_unknown_numbers_the_fallback(
    profiles: ReceptionistProfiles, store: CallStore, clock: Clock
) -> None:
    profiles.publish([BISTRO, DENTIST], now=AT)
    other = reader(store, clock)
    assert other.for_number("+15550100003") == DENTIST
    assert other.for_number("+15550100001") == BISTRO
    assert other.for_number("+15550100999") == BISTRO  # answers_unknown_numbers


def test_without_a_fallback_an_unknown_number_has_no_line(profiles: ReceptionistProfiles) -> None:
    profiles.publish([DENTIST], now=AT)
    assert profiles.for_number("+15550100999") is None
    with pytest.raises(ProfileNotPublished, match="bistro"):
        profiles.current("bistro")


def test_nothing_published_means_no_catalog(profiles: ReceptionistProfiles) -> None:
    assert profiles.catalog() is None
    assert profiles.for_number("+15550100001") is None


def test_two_fallbacks_or_a_shared_number_are_refused(profiles: ReceptionistProfiles) -> None:
    twin = PublishedProfile.of("twin", profile("Twin", [], answers_unknown_numbers=True), None)
    with pytest.raises(ValueError, match="more than one profile"):
        profiles.publish([BISTRO, twin])
    clash = PublishedProfile.of("clash", profile("Clash", ["+15550100001"]), None)
    with pytest.raises(ValueError, match=r"\+15550100001 is listed by profiles 'bistro' and 'clash'"):
        profiles.publish([BISTRO, clash])


def test_a_redeploy_reaches_new_calls_within_the_cache_time_and_live_calls_keep_their_version(
    profiles: ReceptionistProfiles, store: CallStore, clock: Clock
) -> None:
    profiles.publish([BISTRO, DENTIST], now=AT)
    relay = reader(store, clock)
    live = relay.for_number("+15550100002")
    assert live == DENTIST

    changed = PublishedProfile.of("dentist", profile("Dentist", ["+15550100002"], greeting="New words."), None)
    profiles.publish([BISTRO, changed], now=AT)
    assert relay.for_number("+15550100002") == DENTIST  # still inside the cache time
    clock.now += CATALOG_CACHE_SECONDS
    assert relay.for_number("+15550100002") == changed
    assert relay.get("dentist", DENTIST.version) == DENTIST  # the live call's version is still readable


def test_retired_versions_expire_and_a_rollback_revives_one(profiles: ReceptionistProfiles, store: CallStore) -> None:
    profiles.publish([BISTRO, DENTIST], now=AT)
    changed = PublishedProfile.of("dentist", profile("Dentist", ["+15550100002"], greeting="New words."), None)
    profiles.publish([changed], now=AT)  # the bistro line is removed, the dentist's first version replaced
    expiry = str(int((AT + RETIRED_VERSION_TTL).timestamp()))
    assert version_item(store, DENTIST)[TTL_ATTRIBUTE] == {"N": expiry}
    assert version_item(store, BISTRO)[TTL_ATTRIBUTE] == {"N": expiry}
    assert TTL_ATTRIBUTE not in version_item(store, changed)

    profiles.publish([BISTRO, DENTIST], now=AT)
    assert TTL_ATTRIBUTE not in version_item(store, DENTIST)
    assert TTL_ATTRIBUTE in version_item(store, changed)


def test_publishing_the_same_profiles_twice_writes_nothing_new(
    profiles: ReceptionistProfiles, store: CallStore
) -> None:
    profiles.publish([BISTRO, DENTIST], now=AT)
    before = store.client.scan(TableName=store.table_name)["Items"]
    profiles.publish([BISTRO, DENTIST], now=AT)
    assert store.client.scan(TableName=store.table_name)["Items"] == before
