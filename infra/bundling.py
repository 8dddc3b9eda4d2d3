"""Lambda code and dependencies, built on the machine running `cdk synth`: no Docker, ever.

Choice: *pre-staging* rather than `ILocalBundling`. Synth copies `callcore/` and `lambdas/` into a content-addressed
directory under `build/` and hands CDK that directory with our own hash. With no jsii callback into Python during
synth, the result is the same for `cdk synth`, `cdk deploy` and the tests, and a repeated synth of unchanged code
re-hashes a few hundred kilobytes instead of re-bundling.

Dependencies (`lambdas/requirements.txt`) go into ONE layer, installed by pip for the Lambda platform
(`manylinux2014_<arch>`, CPython 3.12, wheels only, so compiled packages such as pydantic-core are the Linux builds
whatever machine synthesizes). The layer is cached under `build/lambda-layer/`, keyed by a hash of the requirements,
the architecture and the build recipe: pip runs once per checkout, not once per synth or per test.

Powertools is bundled in that layer rather than taken from AWS's public Powertools layer: its version is then the one
our tests ran against (the requirements pin the range), and there is no region- and version-specific layer ARN to
keep in step with the deploy region.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from infra.constants import LAMBDA_PYTHON_VERSION
from infra.settings import Architecture

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "build"
LAMBDA_CODE_PACKAGES = ("callcore", "lambdas")
LAMBDA_REQUIREMENTS = REPO_ROOT / "lambdas" / "requirements.txt"
# Bump when the way the layer is built changes, so every cached layer is rebuilt once.
LAYER_RECIPE_VERSION = "1"
# The Lambda Python runtime ships boto3/botocore/s3transfer (matched to each other). Dependencies pull botocore in
# (aws-xray-sdk); a second copy in the layer would shadow the runtime's and mismatch its boto3, and it is 80 MB.
RUNTIME_PROVIDED_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer")
_IGNORED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
_STALE_AFTER_SECONDS = 3600


class BundlingError(Exception):
    """The Lambda code or the dependency layer could not be built. The message says what to do."""


@dataclass(frozen=True, slots=True)
class StagedAsset:
    """A directory ready to be a Lambda asset, and the hash CDK should use for it."""

    path: Path
    asset_hash: str


def _source_files(root: Path, packages: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for package in packages:
        base = root / package
        if not base.is_dir():
            raise BundlingError(f"{base} does not exist: the Lambda asset needs the folders {packages}")
        for directory, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS and not d.endswith(_IGNORED_SUFFIXES))
            files.extend(
                Path(directory, name).relative_to(root)
                for name in sorted(filenames)
                if not name.endswith(_IGNORED_SUFFIXES)
            )
    return files


def _publish(staging: Path, target: Path) -> None:
    """Move a finished build into place atomically; a concurrent process that got there first wins."""
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _prune(parent: Path, keep: Path) -> None:
    """Drop builds of older sources so build/ does not grow without bound (leaving recent ones to other runs)."""
    now = time.time()
    for entry in parent.iterdir():
        if entry != keep and entry.is_dir() and now - entry.stat().st_mtime > _STALE_AFTER_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)


def stage_lambda_code(root: Path = REPO_ROOT, build_dir: Path = BUILD_DIR) -> StagedAsset:
    """Copy `callcore/` and `lambdas/` (no caches, no bytecode) into `build/lambda-code/<content hash>/`."""
    files = _source_files(root, LAMBDA_CODE_PACKAGES)
    digest = hashlib.sha256()
    for relative in files:
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update((root / relative).read_bytes() + b"\0")
    asset_hash = digest.hexdigest()
    parent = build_dir / "lambda-code"
    target = parent / asset_hash[:24]
    if not target.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
        for relative in files:
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, staging / relative)
        _publish(staging, target)
    os.utime(target)  # in use: keep it out of another run's pruning
    _prune(parent, keep=target)
    return StagedAsset(target, asset_hash)


def layer_cache_key(requirements: bytes, architecture: Architecture, python_version: str) -> str:
    digest = hashlib.sha256(requirements)
    digest.update(f"\0{architecture.value}\0{python_version}\0{LAYER_RECIPE_VERSION}".encode())
    return digest.hexdigest()


def _pip_install(requirements: Path, target: Path, architecture: Architecture, python_version: str) -> None:
    machine = architecture.pip_platform_machine
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # bytecode for the synthesizing Python would be useless on the Lambda's
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        # Lambda's Python 3.12 runs on Amazon Linux 2023 (glibc 2.34): manylinux2014 and 2_28 wheels both load.
        "--platform",
        f"manylinux2014_{machine}",
        "--platform",
        f"manylinux_2_28_{machine}",
        "--requirement",
        str(requirements),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    if result.returncode != 0:
        raise BundlingError(
            f"pip could not build the Lambda dependency layer ({architecture.value}, Python {python_version}).\n"
            "It needs PyPI or a wheelhouse (PIP_INDEX_URL / PIP_FIND_LINKS). pip said:\n"
            f"{result.stderr.strip() or result.stdout.strip()}"
        )


def _remove_runtime_provided(site: Path) -> None:
    for entry in site.iterdir():
        distribution = entry.name.split("-", 1)[0].lower() if entry.name.endswith(".dist-info") else entry.name
        if distribution in RUNTIME_PROVIDED_DISTRIBUTIONS:
            shutil.rmtree(entry)
    # Console scripts carry the synthesizing interpreter's shebang; nothing on Lambda runs them.
    shutil.rmtree(site / "bin", ignore_errors=True)


def build_dependency_layer(
    architecture: Architecture,
    requirements: Path = LAMBDA_REQUIREMENTS,
    build_dir: Path = BUILD_DIR,
    python_version: str = LAMBDA_PYTHON_VERSION,
) -> StagedAsset:
    """`build/lambda-layer/<arch>-<key>/python/...`, built by pip on the first call and reused afterwards."""
    key = layer_cache_key(requirements.read_bytes(), architecture, python_version)
    parent = build_dir / "lambda-layer"
    target = parent / f"{architecture.value}-{key[:24]}"
    if not target.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
        try:
            _pip_install(requirements, staging / "python", architecture, python_version)
            _remove_runtime_provided(staging / "python")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _publish(staging, target)
    return StagedAsset(target, key)
