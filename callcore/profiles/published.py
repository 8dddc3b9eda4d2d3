"""A profile as deployed: validated, its prompt read, and stamped with a version derived from its content.

The version is a hash of what the agent will use (the settings with their defaults filled in, and the prompt text),
so deploying the same files twice publishes nothing new, and a call record's `profile_version` names exactly what the
agent used on that call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from callcore.profiles.loader import LoadedProfile
from callcore.profiles.model import Profile

VERSION_CHARS = 16


@dataclass(frozen=True)
class PublishedProfile:
    profile_id: str
    version: str
    profile: Profile
    prompt_template: str | None  # the text of `prompt_file`; None = the relay's built-in prompt

    @classmethod
    def of(cls, profile_id: str, profile: Profile, prompt_template: str | None) -> PublishedProfile:
        return cls(profile_id, content_version(profile, prompt_template), profile, prompt_template)

    @classmethod
    def from_loaded(cls, loaded: LoadedProfile) -> PublishedProfile:
        return cls.of(loaded.profile_id, loaded.profile, loaded.prompt_template())

    def document(self) -> dict[str, Any]:
        """The JSON-ready form stored in the table and passed to the publishing custom resource."""
        return {
            "profile_id": self.profile_id,
            "version": self.version,
            "profile": self.profile.model_dump(mode="json"),
            "prompt_template": self.prompt_template,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> PublishedProfile:
        """Back from `document()`; the version is checked against the content, so a hand-edited item is refused."""
        profile = Profile.model_validate(document["profile"])
        prompt = document.get("prompt_template")
        published = cls(str(document["profile_id"]), str(document["version"]), profile, prompt)
        expected = content_version(profile, prompt)
        if published.version != expected:
            raise ValueError(
                f"profile {published.profile_id!r}: version {published.version} does not match its content "
                f"({expected}); publish profiles with cdk deploy"
            )
        return published


def content_version(profile: Profile, prompt_template: str | None) -> str:
    canonical = json.dumps(
        {"profile": profile.model_dump(mode="json"), "prompt_template": prompt_template},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:VERSION_CHARS]
