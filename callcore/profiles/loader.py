"""Reading `profiles/*.toml`: each file validated by `Profile`, every error naming the file, the key and the rule."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from callcore.profiles.model import PROFILE_ID_PATTERN, Profile

DEFAULT_PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the key and the rule."""


@dataclass(frozen=True)
class LoadedProfile:
    profile_id: str  # the file name without .toml
    path: Path
    profile: Profile
    prompt_path: Path | None  # `prompt_file` resolved beside the profile

    def prompt_template(self) -> str | None:
        return self.prompt_path.read_text(encoding="utf-8") if self.prompt_path else None


def _key(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def load_profile(path: Path) -> LoadedProfile:
    profile_id = path.stem
    if not re.match(PROFILE_ID_PATTERN, profile_id):
        raise ProfileError(f"{path}: the file name is the profile id: lower-case letters, digits and '-', at most 40")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from exc
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"key {_key(error['loc'])}: "
            + ("unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, "))
            for error in exc.errors()
        )
        raise ProfileError(f"{path}: {problems}") from exc
    prompt_path = None
    if profile.prompt_file is not None:
        prompt_path = (path.parent / profile.prompt_file).resolve()
        if not prompt_path.is_file():
            raise ProfileError(f"{path}: key prompt_file: {prompt_path} does not exist")
    return LoadedProfile(profile_id=profile_id, path=path, profile=profile, prompt_path=prompt_path)


def load_profiles(directory: Path = DEFAULT_PROFILES_DIR) -> list[LoadedProfile]:
    """Every profile in `directory`, sorted by id. A number answered by two profiles is refused: a call must have one
    line."""
    if not directory.is_dir():
        raise ProfileError(f"{directory}: no such profiles directory")
    loaded = [load_profile(path) for path in sorted(directory.glob("*.toml"))]
    if not loaded:
        raise ProfileError(f"{directory}: holds no profile (<id>.toml); start from profiles/example.toml")
    owner: dict[str, str] = {}
    fallback: str | None = None
    for item in loaded:
        if item.profile.answers_unknown_numbers:
            if fallback is not None:
                raise ProfileError(
                    f"{item.path}: key answers_unknown_numbers: profile {fallback!r} already answers unknown numbers"
                )
            fallback = item.profile_id
        for number in item.profile.numbers:
            if number in owner:
                raise ProfileError(
                    f"{item.path}: key numbers: {number} is already answered by profile {owner[number]!r}"
                )
            owner[number] = item.profile_id
    return loaded
