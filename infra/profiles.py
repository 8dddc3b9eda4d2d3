"""The receptionist profiles a deploy serves (`profiles/`, or `-c profilesDir=PATH`), read and checked at synth.

Every profile is validated (a bad one stops the synth naming the file, the key and the rule), then stamped with its
content version (`PublishedProfile`): the publishing custom resource carries those documents, so a changed profile is a
changed resource and CloudFormation publishes it again. What the stack derives from the profiles is here too: which
numbers it answers (each wired to the stack by the Twilio number custom resource) and the longest call any line
allows (the load balancer must drain a stopping relay task at least that long).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from callcore.profiles import DEFAULT_PROFILES_DIR, LoadedProfile, ProfileError, PublishedProfile, load_profiles
from infra.constants import ALB_MAX_DEREGISTRATION_SECONDS, DEREGISTRATION_MARGIN_SECONDS
from infra.settings import ContextError

# A call may last no longer than the load balancer can drain a stopping task (its deregistration delay has a maximum).
LONGEST_DEPLOYABLE_CALL_SECONDS = ALB_MAX_DEREGISTRATION_SECONDS - DEREGISTRATION_MARGIN_SECONDS


@dataclass(frozen=True)
class DeployedProfiles:
    loaded: tuple[LoadedProfile, ...]
    published: tuple[PublishedProfile, ...]

    @classmethod
    def read(cls, profiles_dir: str | None) -> DeployedProfiles:
        """Load and check every profile; a problem is a ContextError naming `profilesDir`, the file and the key."""
        directory = Path(profiles_dir) if profiles_dir else DEFAULT_PROFILES_DIR
        try:
            loaded = load_profiles(directory)
        except ProfileError as error:
            raise ContextError([f"profilesDir: {error}"]) from None
        too_long = [
            f"profilesDir: {item.path}: key limits.max_call_seconds: {item.profile.limits.max_call_seconds} is more "
            f"than a deployed call may last ({LONGEST_DEPLOYABLE_CALL_SECONDS}: the load balancer drains a stopping "
            "relay task at most one hour)"
            for item in loaded
            if item.profile.limits.max_call_seconds > LONGEST_DEPLOYABLE_CALL_SECONDS
        ]
        if too_long:
            raise ContextError(too_long)
        return cls(tuple(loaded), tuple(PublishedProfile.from_loaded(item) for item in loaded))

    @property
    def business_api_secrets(self) -> tuple[str, ...]:
        """The Secrets Manager secrets (names) holding the profiles' business API credentials: what the relay reads."""
        names = {
            item.profile.business_api.credentials_secret
            for item in self.published
            if item.profile.business_api and item.profile.business_api.credentials_secret
        }
        return tuple(sorted(names))

    @property
    def answered_numbers(self) -> dict[str, str]:
        """Every number some profile answers -> that profile's id, sorted by number (a number has one line)."""
        numbers = {number: item.profile_id for item in self.published for number in item.profile.numbers}
        return dict(sorted(numbers.items()))

    @property
    def longest_call_seconds(self) -> int:
        return max(item.profile.limits.max_call_seconds for item in self.published)

    @property
    def deregistration_delay_seconds(self) -> int:
        """Longer than the longest call: a stopping task keeps its calls until they end on their own."""
        return self.longest_call_seconds + DEREGISTRATION_MARGIN_SECONDS
