"""The README documents every setting exactly as the settings models define it, and names its commands."""

from __future__ import annotations

from pathlib import Path

from infra.settings import DeploySettings
from local.settings_doc import README, TABLES, render

ROOT = Path(__file__).resolve().parents[3]


def test_settings_tables_are_current() -> None:
    text = README.read_text()
    assert render(text) == text, "README settings tables are stale: run `python -m local.settings_doc --write`"


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text()
    for _, model, _ in TABLES:
        for name, field in model.model_fields.items():
            assert f"`{field.alias or name}`" in text


def test_the_readme_commands_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("call", "test", "setup", "synth", "bench"):
        assert f"\n{target}:" in makefile or makefile.startswith(f"{target}:")
    assert "make setup" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_deploy_context_key_is_in_the_readme_and_the_deploy_guide() -> None:
    readme = README.read_text()
    guide = (ROOT / "infra" / "DEPLOY.md").read_text()
    for name, field in DeploySettings.model_fields.items():
        key = field.alias or name
        assert f"`{key}`" in readme, f"README's deploy steps do not name the context key {key}"
        assert f"| `{key}` |" in guide, f"DEPLOY.md's context table has no row for {key}"
