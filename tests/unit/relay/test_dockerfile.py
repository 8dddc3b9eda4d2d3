"""No Docker engine here: the Dockerfile is checked as text against the contracts it must keep."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "relay_container" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    lines = []
    for raw in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            lines.append((keyword.upper(), rest.strip()))
    return lines


def test_base_image_is_public_ecr_python_312_pinned_to_a_minor() -> None:
    images = [rest for keyword, rest in _instructions() if keyword == "FROM"]
    assert len(images) == 1
    assert re.fullmatch(r"public\.ecr\.aws/docker/library/python:3\.12(\.\d+)?-slim", images[0])


def test_copy_sources_exist_relative_to_the_repository_root() -> None:
    copies = [rest.split() for keyword, rest in _instructions() if keyword == "COPY"]
    assert copies
    sources = {part for args in copies for part in args[:-1] if not part.startswith("--")}
    for source in sources:
        assert (ROOT / source).exists(), source
    assert {"callcore/", "relay_container/"} <= sources


def test_cmd_is_the_documented_start_command_and_user_is_not_root() -> None:
    instructions = _instructions()
    cmds = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert cmds == [["python", "-m", "relay"]]
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}
    assert ("EXPOSE", "8080") in instructions


def test_requirements_cover_the_relay_imports() -> None:
    requirements = (ROOT / "relay_container" / "requirements.txt").read_text()
    names = {re.split(r"[<>=\[]", line)[0].strip() for line in requirements.splitlines() if line and line[0].isalpha()}
    # orjson and uvloop: the image runs the loop and JSON library `make bench-load` measured.
    assert {"aiohttp", "boto3", "pydantic", "twilio", "orjson", "uvloop"} <= names
    for line in requirements.splitlines():
        # Libraries get an upper bound (their next major may break the relay); tzdata is data, released yearly.
        if line and line[0].isalpha() and not line.startswith("tzdata"):
            assert "<" in line, f"{line}: give an upper bound"
