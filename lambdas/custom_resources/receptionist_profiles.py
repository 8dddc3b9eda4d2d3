"""CloudFormation custom resource (CDK Provider framework): publish the deployed receptionist profiles into the call
table, where the Lambdas and the relay read them (`callcore.store.receptionist_profiles`).

Create   publish every profile the properties carry: each version written once, then the catalog (which line answers
Update   which number). A changed profile is a changed property, so CloudFormation sends an Update; the versions no
         longer current are retired (they expire by TTL, long after the calls using them have ended). A repeated
         event publishes nothing new.
Delete   nothing: call records keep pointing at the versions they used, and a version retires by TTL, not by hand.

The properties hold `Profiles`, one JSON string per `PublishedProfile.document()`: CloudFormation turns every number
and boolean of a custom resource's properties into a string, so the documents travel as JSON text, each read back
(and its version checked against its content) by `PublishedProfile.from_document`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from callcore.profiles import PublishedProfile
from callcore.settings import EnvSettings
from callcore.store.receptionist_profiles import ReceptionistProfiles

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

# One fixed ID: an update of the profiles is the same resource, never a replacement (whose delete would follow it).
PHYSICAL_ID = "receptionist-profiles"


class PublishingError(Exception):
    """The profiles cannot be published. The message is what CloudFormation shows the operator."""


class PublishingSettings(EnvSettings):
    calls_table: str = Field(alias="CALLS_TABLE", min_length=1, description="the call table the profiles go into")


def published_profiles(properties: Mapping[str, Any]) -> list[PublishedProfile]:
    documents = properties.get("Profiles")
    if not isinstance(documents, list) or not all(isinstance(document, str) for document in documents):
        raise PublishingError("invalid custom resource properties: Profiles must be a list of JSON documents")
    published = []
    for position, document in enumerate(documents):
        try:
            published.append(PublishedProfile.from_document(json.loads(document)))
        except (ValueError, KeyError, TypeError) as error:
            raise PublishingError(f"invalid custom resource properties: Profiles[{position}]: {error}") from None
    return published


def _publish(event: Mapping[str, Any], profiles: ReceptionistProfiles) -> dict[str, Any]:
    published = published_profiles(event.get("ResourceProperties") or {})
    try:
        catalog = profiles.publish(published)
    except ValueError as error:  # two profiles claiming one number, or two fallback lines
        raise PublishingError(f"the profiles cannot be published together: {error}") from None
    versions = ",".join(f"{profile_id}={version}" for profile_id, version in sorted(catalog.versions.items()))
    logger.info("published receptionist profiles %s (%d numbers)", versions, len(catalog.numbers))
    return {"PhysicalResourceId": PHYSICAL_ID, "Data": {"Versions": versions}}


def handle(event: Mapping[str, Any], profiles: ReceptionistProfiles) -> dict[str, Any]:
    """The Provider framework's onEvent contract: returns PhysicalResourceId (+ Data); raising fails the event."""
    request_type = event.get("RequestType")
    if request_type in ("Create", "Update"):
        return _publish(event, profiles)
    if request_type == "Delete":
        logger.info("profiles left in the table: call records point at their versions, retired ones expire by TTL")
        return {"PhysicalResourceId": str(event.get("PhysicalResourceId") or PHYSICAL_ID)}
    raise PublishingError(f"unknown RequestType {request_type!r}")


def on_event(event: Mapping[str, Any], _context: object) -> dict[str, Any]:
    logger.info("%s %s", event.get("RequestType"), event.get("LogicalResourceId"))
    return handle(event, ReceptionistProfiles(PublishingSettings.from_env().calls_table))
