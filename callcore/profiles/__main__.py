"""`python -m callcore.profiles [DIR]` (`make profiles`): validate every profile and print its effective settings,
defaults filled in. Exit 1 with the file, key and rule when one is wrong."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from callcore.profiles.loader import DEFAULT_PROFILES_DIR, ProfileError, load_profiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callcore.profiles", description=__doc__)
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_PROFILES_DIR)
    args = parser.parse_args(argv)
    try:
        loaded = load_profiles(args.directory)
    except ProfileError as exc:
        print(f"invalid profile: {exc}", file=sys.stderr)
        return 1
    for item in loaded:
        settings = item.profile.model_dump(mode="json")
        if item.prompt_path is not None:
            settings["prompt_file"] = str(item.prompt_path)
        print(f"# {item.profile_id} ({item.path})")
        print(json.dumps(settings, indent=2))
    numbers = sum(len(item.profile.numbers) for item in loaded)
    print(f"{len(loaded)} profile(s) valid, answering {numbers} number(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
