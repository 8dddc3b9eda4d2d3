"""Receptionist profiles: one TOML file per business line (`profiles/<id>.toml`), validated by one model."""

from callcore.profiles.loader import DEFAULT_PROFILES_DIR, LoadedProfile, ProfileError, load_profile, load_profiles
from callcore.profiles.model import AfterHours, Profile, TurnDetection, VadEagerness
from callcore.profiles.published import PublishedProfile

__all__ = [
    "DEFAULT_PROFILES_DIR",
    "AfterHours",
    "LoadedProfile",
    "Profile",
    "ProfileError",
    "PublishedProfile",
    "TurnDetection",
    "VadEagerness",
    "load_profile",
    "load_profiles",
]
