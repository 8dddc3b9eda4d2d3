"""Lambda code and dependencies, built on the machine running `cdk synth`: no Docker, ever.

Choice: *pre-staging* rather than `ILocalBundling`. Synth copies `callcore/` and `lambdas/` into a content-addressed
directory under `build/` and hands CDK that directory with our own hash. With no jsii callback into Python during
synth, the result is the same for `cdk synth`, `cdk deploy` and the tests, and a repeated synth of unchanged code
re-hashes a few hundred kilobytes instead of re-bundling.

Dependencies (`lambdas/requirements.txt`) go into ONE layer, installed by pip for the Lambda platform
(`manylinux2014_<arch>`, CPython 3.12, wheels only, so compiled packages such as pydantic-core are the Linux builds
whatever machine synthesizes). The layer is cached under `build/lambda-layer/`, keyed by a hash of the requirements,
the architecture and the build recipe: pip runs once per checkout, not once per synth or per test. The post-call
analysis function has a second layer on top of it (`lambdas/analysis-requirements.txt`: the OpenAI SDK), built the
same way but leaving out every package the shared layer already holds, so the SDK reaches that function only.

Both are shipped with bytecode when the synthesizing machine has a CPython of the runtime's version (3.12; found as
`python3.12` on PATH, or named by LAMBDA_BYTECODE_PYTHON): Lambda's /var/task and /opt are read-only, so without it
every cold start compiles every module it imports from source (hundreds of milliseconds for pydantic, Powertools and
twilio). The bytecode is `unchecked-hash`: the asset never changes under it, and zip timestamps would defeat the
default mtime check. Without such an interpreter synth says so and ships source only; it never compiles with another
version (a 3.11 .pyc is ignored by 3.12).

The layer holds the versions the tests ran against: pip resolves the requirements under constraints taken from the
synthesizing environment (every distribution installed beside aws-cdk-lib, `name==version`), and those versions are
part of the layer's cache key, so upgrading a package in the venv rebuilds the layer with it. A requirement the venv
does not hold resolves to the newest release in its range.

Powertools is bundled in that layer rather than taken from AWS's public Powertools layer: its version is then the one
our tests ran against, and there is no region- and version-specific layer ARN to keep in step with the deploy region.

The first synth of a checkout downloads the layer's wheels (PyPI, or the index and wheelhouse pip is configured with:
PIP_INDEX_URL / PIP_FIND_LINKS); every later synth reuses `build/` and needs no network.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from infra.constants import LAMBDA_PYTHON_VERSION
from infra.settings import Architecture

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "build"
LAMBDA_CODE_PACKAGES = ("callcore", "lambdas")
LAMBDA_REQUIREMENTS = REPO_ROOT / "lambdas" / "requirements.txt"
# What only the post-call analysis function needs (the `openai` SDK and what it pulls in): a layer of its own, so no
# other function loads or ships it.
ANALYSIS_REQUIREMENTS = REPO_ROOT / "lambdas" / "analysis-requirements.txt"
# Bump when the way the layer is built changes, so every cached layer is rebuilt once.
LAYER_RECIPE_VERSION = "3"
BYTECODE_PYTHON_ENV = "LAMBDA_BYTECODE_PYTHON"
# The Lambda Python runtime ships boto3/botocore/s3transfer (matched to each other). Dependencies pull botocore in
# (aws-xray-sdk); a second copy in the layer would shadow the runtime's and mismatch its boto3, and it is 80 MB.
RUNTIME_PROVIDED_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer")
_IGNORED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
_STALE_AFTER_SECONDS = 3600


class BundlingError(Exception):
    """The Lambda code or the dependency layer could not be built. The message says what to do."""


def find_bytecode_python(python_version: str = LAMBDA_PYTHON_VERSION) -> str | None:
    """An interpreter of exactly the Lambda runtime's minor version, or None (the assets then ship source only)."""
    explicit = os.environ.get(BYTECODE_PYTHON_ENV)
    candidates = [explicit] if explicit else [sys.executable, shutil.which(f"python{python_version}")]
    for candidate in candidates:
        if candidate and _python_version(candidate) == python_version:
            return candidate
    if explicit:
        raise BundlingError(f"{BYTECODE_PYTHON_ENV}={explicit} is not a working Python {python_version}")
    return None


@functools.cache
def bytecode_interpreter() -> str | None:
    """`find_bytecode_python()` once per synth, saying once when the bundle will ship source only."""
    interpreter = find_bytecode_python()
    if interpreter is None:
        print(
            f"note: no Python {LAMBDA_PYTHON_VERSION} found to precompile the Lambda bundle"
            f" (set {BYTECODE_PYTHON_ENV}); it ships source only, and Lambda compiles it on every cold start",
            file=sys.stderr,
        )
    return interpreter


def _python_version(interpreter: str) -> str | None:
    try:
        result = subprocess.run(  # noqa: S603 - an interpreter path, fixed arguments
            [interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def compile_bytecode(directory: Path, interpreter: str) -> None:
    """Precompile every module under `directory` for the Lambda runtime (see the module docstring)."""
    result = subprocess.run(  # noqa: S603 - fixed argv
        [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        # Some distributions carry files that are not valid for this version (examples, py2 leftovers) and are never
        # imported; those stay source-only. Everything else is compiled, so this is a note, not a failure.
        failed = sum("Error" in line for line in result.stdout.splitlines())
        print(
            f"note: {failed} file(s) under {directory.name} could not be precompiled; they ship as source",
            file=sys.stderr,
        )


def _bytecode_flavour(interpreter: str | None) -> bytes:
    return b"bytecode:" + (LAMBDA_PYTHON_VERSION.encode() if interpreter else b"none")


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


def stage_lambda_code(
    root: Path = REPO_ROOT, build_dir: Path = BUILD_DIR, *, bytecode_python: str | None = None
) -> StagedAsset:
    """Copy `callcore/` and `lambdas/` (no caches, no local bytecode) into `build/lambda-code/<content hash>/`, and
    precompile them with `bytecode_python` (see `find_bytecode_python`) when given."""
    interpreter = bytecode_python
    files = _source_files(root, LAMBDA_CODE_PACKAGES)
    digest = hashlib.sha256(_bytecode_flavour(interpreter))
    for relative in files:
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update((root / relative).read_bytes() + b"\0")
    asset_hash = digest.hexdigest()
    parent = build_dir / "lambda-code"
    target = parent / asset_hash[:24]
    if not target.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
        try:
            for relative in files:
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / relative, staging / relative)
            if interpreter:
                compile_bytecode(staging, interpreter)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _publish(staging, target)
    os.utime(target)  # in use: keep it out of another run's pruning
    _prune(parent, keep=target)
    return StagedAsset(target, asset_hash)


def tested_versions() -> bytes:
    """`name==version` of every distribution in the synthesizing environment: the layer's pip constraints.

    One pin per name, the one imported (the first on sys.path; a stale copy further down would make the constraints
    contradict each other). Versions pip cannot parse (distribution packages such as `1.2ubuntu1` visible to a venv
    with system site-packages) are left out: pip refuses the whole file over one of them."""
    pins: dict[str, str] = {}
    for distribution in distributions():
        name = distribution.metadata["Name"]
        if not name or not distribution.version:
            continue
        try:
            Version(distribution.version)
        except InvalidVersion:
            continue
        pins.setdefault(canonicalize_name(name), distribution.version)
    return "".join(sorted(f"{name}=={version}\n" for name, version in pins.items())).encode()


def layer_cache_key(
    requirements: bytes,
    architecture: Architecture,
    python_version: str,
    *,
    bytecode: bool = False,
    constraints: bytes = b"",
) -> str:
    digest = hashlib.sha256(requirements)
    digest.update(f"\0{architecture.value}\0{python_version}\0{LAYER_RECIPE_VERSION}\0{bytecode}\0".encode())
    digest.update(constraints)
    return digest.hexdigest()


def _pip_install(
    requirements: Path, target: Path, architecture: Architecture, python_version: str, constraints: Path
) -> None:
    machine = architecture.pip_platform_machine
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # the synthesizing Python's bytecode is useless on Lambda's; compile_bytecode does it right
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
        "--constraint",
        str(constraints),
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


def _remove_provided_by(site: Path, base: StagedAsset) -> None:
    """Leave out what the base layer already holds (the same versions: both resolve under the same constraints),
    so a function with both layers loads one copy of each package."""
    provided = base.path / "python"
    for entry in list(site.iterdir()):
        if (provided / entry.name).exists():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def build_dependency_layer(
    architecture: Architecture,
    requirements: Path = LAMBDA_REQUIREMENTS,
    build_dir: Path = BUILD_DIR,
    python_version: str = LAMBDA_PYTHON_VERSION,
    *,
    bytecode_python: str | None = None,
    on_top_of: StagedAsset | None = None,
) -> StagedAsset:
    """`build/lambda-layer/<arch>-<key>/python/...`, built by pip on the first call and reused afterwards; its
    modules precompiled with `bytecode_python` when given. `on_top_of`: a layer the functions also have; what it
    holds is left out of this one."""
    interpreter = bytecode_python
    constraints = tested_versions()
    key = layer_cache_key(
        requirements.read_bytes() + (b"\0on-top-of:" + on_top_of.asset_hash.encode() if on_top_of else b""),
        architecture,
        python_version,
        bytecode=interpreter is not None,
        constraints=constraints,
    )
    parent = build_dir / "lambda-layer"
    target = parent / f"{architecture.value}-{key[:24]}"
    if not target.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
        try:
            constraints_file = staging / "constraints.txt"
            constraints_file.write_bytes(constraints)
            _pip_install(requirements, staging / "python", architecture, python_version, constraints_file)
            constraints_file.unlink()
            _remove_runtime_provided(staging / "python")
            if on_top_of is not None:
                _remove_provided_by(staging / "python", on_top_of)
            if interpreter:
                compile_bytecode(staging / "python", interpreter)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _publish(staging, target)
    return StagedAsset(target, key)
