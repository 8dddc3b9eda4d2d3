"""Lambda code staging and the dependency layer cache, without Docker and (here) without pip."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from infra import bundling
from infra.bundling import BundlingError, build_dependency_layer, layer_cache_key, stage_lambda_code
from infra.settings import Architecture


def make_sources(root: Path) -> None:
    for relative, text in {
        "callcore/__init__.py": "",
        "callcore/store.py": "TABLE = 1\n",
        "callcore/__pycache__/store.cpython-311.pyc": "bytecode",
        "lambdas/__init__.py": "",
        "lambdas/handlers/incoming_call.py": "def handler(event, context): ...\n",
        "lambdas/handlers/stale.pyc": "bytecode",
        "lambdas/.mypy_cache/x.json": "{}",
        "relay_container/relay/__init__.py": "",
        "tests/test_x.py": "",
    }.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def staged_files(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}


def test_code_asset_holds_exactly_callcore_and_lambdas_without_caches(tmp_path):
    make_sources(tmp_path / "repo")
    staged = stage_lambda_code(tmp_path / "repo", tmp_path / "build")
    assert staged_files(staged.path) == {
        "callcore/__init__.py",
        "callcore/store.py",
        "lambdas/__init__.py",
        "lambdas/handlers/incoming_call.py",
    }


def test_code_asset_is_content_addressed(tmp_path):
    repo, build = tmp_path / "repo", tmp_path / "build"
    make_sources(repo)
    first = stage_lambda_code(repo, build)
    assert stage_lambda_code(repo, build) == first
    (repo / "callcore" / "__pycache__" / "other.pyc").write_text("ignored")
    assert stage_lambda_code(repo, build).asset_hash == first.asset_hash
    (repo / "callcore" / "store.py").write_text("TABLE = 2\n")
    changed = stage_lambda_code(repo, build)
    assert changed.asset_hash != first.asset_hash
    assert (changed.path / "callcore" / "store.py").read_text() == "TABLE = 2\n"


def test_code_asset_needs_both_packages(tmp_path):
    (tmp_path / "repo" / "callcore").mkdir(parents=True)
    with pytest.raises(BundlingError, match="lambdas"):
        stage_lambda_code(tmp_path / "repo", tmp_path / "build")


def test_layer_is_built_once_per_requirements_and_architecture(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydantic>=2.7,<3\n")
    installs: list[tuple[str, Path]] = []
    pinned: list[str] = []

    def fake_pip(
        requirements_path: Path, target: Path, architecture: Architecture, python_version: str, constraints: Path
    ) -> None:
        installs.append((architecture.value, target))
        pinned.append(constraints.read_text())
        for name in ("pydantic", "pydantic-2.9.dist-info", "botocore", "botocore-1.35.dist-info", "boto3", "bin"):
            (target / name).mkdir(parents=True)

    monkeypatch.setattr(bundling, "_pip_install", fake_pip)
    build = tmp_path / "build"

    arm = build_dependency_layer(Architecture.ARM64, requirements, build)
    assert build_dependency_layer(Architecture.ARM64, requirements, build) == arm
    x86 = build_dependency_layer(Architecture.X86_64, requirements, build)
    assert [arch for arch, _ in installs] == ["arm64", "x86_64"]
    assert x86.asset_hash != arm.asset_hash
    # The runtime's own boto3/botocore stay the runtime's; console scripts are dropped.
    assert {p.name for p in (arm.path / "python").iterdir()} == {"pydantic", "pydantic-2.9.dist-info"}

    requirements.write_text("pydantic>=2.8,<3\n")
    assert build_dependency_layer(Architecture.ARM64, requirements, build).asset_hash != arm.asset_hash
    assert len(installs) == 3
    # pip resolved under the versions this environment runs (and tests) with; none of it ships in the layer.
    assert all(f"pydantic=={version('pydantic')}\n" in constraints for constraints in pinned)
    assert not (arm.path / "constraints.txt").exists()


def test_a_package_upgraded_in_the_environment_rebuilds_the_layer(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydantic>=2.7,<3\n")

    def fake_pip(
        requirements_path: Path, target: Path, architecture: Architecture, python_version: str, constraints: Path
    ) -> None:
        target.mkdir(parents=True)

    monkeypatch.setattr(bundling, "_pip_install", fake_pip)
    first = build_dependency_layer(Architecture.ARM64, requirements, tmp_path / "build")
    monkeypatch.setattr(bundling, "tested_versions", lambda: b"pydantic==2.99.0\n")
    assert build_dependency_layer(Architecture.ARM64, requirements, tmp_path / "build").path != first.path


def test_tested_versions_pin_this_environment():
    pins = bundling.tested_versions().decode().splitlines()
    assert f"pydantic=={version('pydantic')}" in pins
    assert f"aws-lambda-powertools=={version('aws-lambda-powertools')}" in pins
    assert pins == sorted(pins)


def test_a_failed_layer_build_leaves_nothing_behind(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydantic\n")

    def failing_pip(
        requirements_path: Path, target: Path, architecture: Architecture, python_version: str, constraints: Path
    ) -> None:
        target.mkdir(parents=True)
        raise BundlingError("pip could not build the Lambda dependency layer")

    monkeypatch.setattr(bundling, "_pip_install", failing_pip)
    with pytest.raises(BundlingError):
        build_dependency_layer(Architecture.ARM64, requirements, tmp_path / "build")
    assert list((tmp_path / "build" / "lambda-layer").iterdir()) == []


def test_layer_key_covers_requirements_architecture_and_python():
    base = layer_cache_key(b"twilio\n", Architecture.ARM64, "3.12")
    assert layer_cache_key(b"twilio\n", Architecture.ARM64, "3.12") == base
    assert (
        len(
            {
                base,
                layer_cache_key(b"twilio>=9\n", Architecture.ARM64, "3.12"),
                layer_cache_key(b"twilio\n", Architecture.X86_64, "3.12"),
                layer_cache_key(b"twilio\n", Architecture.ARM64, "3.13"),
            }
        )
        == 4
    )


def test_pip_is_asked_for_lambda_platform_wheels(tmp_path, monkeypatch):
    calls: list[list[str]] = []

    class Finished:
        returncode = 1
        stderr = "No matching distribution found"
        stdout = ""

    def fake_run(command: list[str], **kwargs: object) -> Finished:
        calls.append(command)
        return Finished()

    monkeypatch.setattr("infra.bundling.subprocess.run", fake_run)
    with pytest.raises(BundlingError, match="No matching distribution"):
        bundling._pip_install(tmp_path / "r.txt", tmp_path / "t", Architecture.ARM64, "3.12", tmp_path / "c.txt")
    (command,) = calls
    joined = " ".join(command)
    assert "--only-binary=:all:" in command
    assert "--platform manylinux2014_aarch64" in joined
    assert "--python-version 3.12" in joined
    assert f"--constraint {tmp_path / 'c.txt'}" in joined
    assert "--implementation cp" in joined


def test_code_asset_ships_runtime_bytecode_when_an_interpreter_of_that_version_is_given(tmp_path):
    """Lambda's code directory is read-only: without shipped bytecode every cold start compiles every module."""
    import importlib.util
    import sys

    repo, build = tmp_path / "repo", tmp_path / "build"
    make_sources(repo)
    source_only = stage_lambda_code(repo, build)
    compiled = stage_lambda_code(repo, build, bytecode_python=sys.executable)
    assert compiled.asset_hash != source_only.asset_hash  # a cached source-only build is never reused for it
    tag = sys.implementation.cache_tag
    pyc = compiled.path / "callcore" / "__pycache__" / f"store.{tag}.pyc"
    header = pyc.read_bytes()[:8]
    assert header[:4] == importlib.util.MAGIC_NUMBER
    # PEP 552 flags: hash-based (bit 0) and unchecked (bit 1 clear): zip timestamps cannot invalidate it.
    assert int.from_bytes(header[4:8], "little") == 0b01
    assert not list(source_only.path.rglob("*.pyc"))


def test_the_bytecode_interpreter_must_match_the_runtime_version(monkeypatch):
    import sys

    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.delenv(bundling.BYTECODE_PYTHON_ENV, raising=False)
    assert bundling.find_bytecode_python(current) == sys.executable
    assert bundling.find_bytecode_python("9.9") is None
    monkeypatch.setenv(bundling.BYTECODE_PYTHON_ENV, sys.executable)
    with pytest.raises(BundlingError, match=bundling.BYTECODE_PYTHON_ENV):
        bundling.find_bytecode_python("9.9")


def test_tested_versions_skip_what_pip_cannot_parse_and_pin_each_name_once(monkeypatch):
    class Dist:
        def __init__(self, name: str, version: str) -> None:
            self.metadata = {"Name": name}
            self.version = version

    found = [Dist("Pydantic_Core", "2.50.5"), Dist("distro-info", "0.23ubuntu1"), Dist("pydantic-core", "2.1.0")]
    monkeypatch.setattr(bundling, "distributions", lambda: found)
    # The first copy on sys.path is the one imported; a Debian-style version would make pip refuse the whole file.
    assert bundling.tested_versions() == b"pydantic-core==2.50.5\n"


def test_a_layer_on_top_of_another_leaves_out_what_that_one_holds(tmp_path, monkeypatch):
    base_requirements, extra_requirements = tmp_path / "base.txt", tmp_path / "extra.txt"
    base_requirements.write_text("pydantic>=2.7,<3\n")
    extra_requirements.write_text("openai>=2.0,<4\n")

    def fake_pip(requirements_path: Path, target: Path, *_: object) -> None:
        names = ["pydantic", "pydantic-2.9.dist-info", "typing_extensions.py"]
        if requirements_path == extra_requirements:
            names += ["openai", "openai-3.0.dist-info", "jiter"]
        for name in names:
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".py"):
                path.write_text("")
            else:
                path.mkdir()

    monkeypatch.setattr(bundling, "_pip_install", fake_pip)
    build = tmp_path / "build"
    base = build_dependency_layer(Architecture.ARM64, base_requirements, build)
    extra = build_dependency_layer(Architecture.ARM64, extra_requirements, build, on_top_of=base)

    assert {p.name for p in (extra.path / "python").iterdir()} == {"openai", "openai-3.0.dist-info", "jiter"}
    alone = build_dependency_layer(Architecture.ARM64, extra_requirements, build)
    assert alone.asset_hash != extra.asset_hash, "the base layer is part of the stacked layer's cache key"
