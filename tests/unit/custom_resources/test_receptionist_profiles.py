"""The custom resource that publishes the receptionist profiles, against the call table on moto: what `cdk deploy`
sends it on create, on an update with a changed profile, twice in a row, and on delete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from callcore.local_resources import create_table
from callcore.profiles import Profile, PublishedProfile
from callcore.store import TTL_ATTRIBUTE
from callcore.store.receptionist_profiles import ReceptionistProfiles, profile_pk, version_sk
from lambdas.custom_resources.receptionist_profiles import PHYSICAL_ID, PublishingError, handle, on_event

TABLE = "calls-test"


def profile(name: str, numbers: list[str], **extra: Any) -> Profile:
    return Profile.model_validate(
        {
            "business_name": name,
            "numbers": numbers,
            "timezone": "America/New_York",
            "greeting": f"{name} here.",
            **extra,
        }
    )


BISTRO = PublishedProfile.of(
    "bistro",
    profile("Bistro", ["+15550100001"], answers_unknown_numbers=True, recording={"enabled": True}),
    None,
)
DENTIST = PublishedProfile.of(
    "dentist", profile("Dentist", ["+15550100002"], limits={"max_call_seconds": 900}), "You are {business_name}."
)
DENTIST_LATER = PublishedProfile.of(
    "dentist", profile("Dentist", ["+15550100002"], greeting="Bright Smile Dental, hello."), "You are {business_name}."
)


def properties(*profiles: PublishedProfile) -> dict[str, Any]:
    """As infra/constructs/receptionist_profiles.py sets them: one JSON document per profile."""
    return {
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
        "Profiles": [json.dumps(p.document(), sort_keys=True) for p in profiles],
    }


def create(*profiles: PublishedProfile) -> dict[str, Any]:
    return {
        "RequestType": "Create",
        "LogicalResourceId": "ReceptionistProfiles",
        "ResourceProperties": properties(*profiles),
    }


def update(old: list[PublishedProfile], new: list[PublishedProfile]) -> dict[str, Any]:
    return {
        "RequestType": "Update",
        "LogicalResourceId": "ReceptionistProfiles",
        "PhysicalResourceId": PHYSICAL_ID,
        "ResourceProperties": properties(*new),
        "OldResourceProperties": properties(*old),
    }


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        yield dynamodb


def publisher(client: Any) -> ReceptionistProfiles:
    return ReceptionistProfiles(TABLE, client=client)


def reader(client: Any) -> ReceptionistProfiles:
    """A Lambda or relay process reading the table afterwards, with caches of its own."""
    return ReceptionistProfiles(TABLE, client=client)


def items(client: Any) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName=TABLE)["Items"], key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def test_create_publishes_every_profile_for_its_numbers(client):
    response = handle(create(BISTRO, DENTIST), publisher(client))

    assert response["PhysicalResourceId"] == PHYSICAL_ID
    assert response["Data"] == {"Versions": f"bistro={BISTRO.version},dentist={DENTIST.version}"}
    profiles = reader(client)
    assert profiles.for_number("+15550100001") == BISTRO
    assert profiles.for_number("+15550100002") == DENTIST
    assert profiles.for_number("+15550100999") == BISTRO  # the fallback line
    # Booleans and numbers arrive as they were (CloudFormation would have made them strings as nested properties).
    assert profiles.current("bistro").profile.recording.enabled is True
    assert profiles.current("dentist").profile.limits.max_call_seconds == 900


def test_an_update_with_a_changed_profile_publishes_it_and_retires_the_old_version(client):
    handle(create(BISTRO, DENTIST), publisher(client))

    response = handle(update([BISTRO, DENTIST], [BISTRO, DENTIST_LATER]), publisher(client))

    assert response["PhysicalResourceId"] == PHYSICAL_ID  # the same resource: CloudFormation deletes nothing after
    assert DENTIST_LATER.version != DENTIST.version
    profiles = reader(client)
    assert profiles.for_number("+15550100002") == DENTIST_LATER
    assert profiles.current("bistro") == BISTRO
    # A call that started on the old version still reads it, until it expires long after the call has ended.
    assert profiles.get("dentist", DENTIST.version) == DENTIST
    old = client.get_item(
        TableName=TABLE, Key={"pk": {"S": profile_pk("dentist")}, "sk": {"S": version_sk(DENTIST.version)}}
    )
    assert TTL_ATTRIBUTE in old["Item"]
    current = client.get_item(
        TableName=TABLE, Key={"pk": {"S": profile_pk("dentist")}, "sk": {"S": version_sk(DENTIST_LATER.version)}}
    )
    assert TTL_ATTRIBUTE not in current["Item"]


def test_a_repeated_event_publishes_nothing_new(client):
    first = handle(create(BISTRO, DENTIST), publisher(client))
    before = items(client)

    again = handle(create(BISTRO, DENTIST), publisher(client))

    assert again == first
    after = items(client)
    versions = [item for item in after if item["sk"]["S"].startswith("VERSION#")]
    assert len(versions) == 2
    assert [item for item in after if item["sk"]["S"] != "CATALOG"] == [
        item for item in before if item["sk"]["S"] != "CATALOG"
    ]


def test_delete_leaves_the_profiles_in_the_table(client):
    handle(create(BISTRO, DENTIST), publisher(client))
    before = items(client)

    response = handle(
        {
            "RequestType": "Delete",
            "LogicalResourceId": "ReceptionistProfiles",
            "PhysicalResourceId": PHYSICAL_ID,
            "ResourceProperties": properties(BISTRO, DENTIST),
        },
        publisher(client),
    )

    assert response == {"PhysicalResourceId": PHYSICAL_ID}
    assert items(client) == before
    assert reader(client).for_number("+15550100002") == DENTIST


def test_a_document_whose_version_does_not_match_its_content_is_refused(client):
    tampered = {**DENTIST.document(), "version": BISTRO.version}
    event = create(BISTRO)
    event["ResourceProperties"]["Profiles"].append(json.dumps(tampered))

    with pytest.raises(PublishingError, match=r"Profiles\[1\]: profile 'dentist': version .* does not match"):
        handle(event, publisher(client))
    assert items(client) == []  # nothing half-published


def test_profiles_that_claim_one_number_are_refused_naming_it(client):
    rival = PublishedProfile.of("rival", profile("Rival", ["+15550100002"]), None)

    with pytest.raises(PublishingError, match=r"\+15550100002 is listed by profiles 'dentist' and 'rival'"):
        handle(create(DENTIST, rival), publisher(client))


def test_the_entry_point_publishes_into_the_table_its_environment_names(client, monkeypatch):
    monkeypatch.setenv("CALLS_TABLE", TABLE)

    response = on_event(create(BISTRO), None)

    assert response["Data"] == {"Versions": f"bistro={BISTRO.version}"}
    assert reader(client).for_number("+15550100001") == BISTRO
