"""Builds the CDK app the same way for `cdk synth` (app.py) and for the tests: cdk.json's feature flags, the context
validated into DeploySettings, the receptionist profiles checked, one stack, cdk-nag on the synth."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App

from infra.nag import add_security_checks
from infra.profiles import DeployedProfiles
from infra.settings import DeploySettings
from infra.stack import PhoneAgentStack

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The context block of cdk.json (feature flags and defaults), so a synth outside the CDK CLI matches it."""
    context: dict[str, Any] = json.loads(path.read_text()).get("context", {})
    return context


def build_app(context: Mapping[str, Any] | None = None, *, outdir: str | None = None) -> tuple[App, PhoneAgentStack]:
    """`context` adds to cdk.json's; the CLI's `-c key=value` (CDK_CONTEXT_JSON) wins over both."""
    app = App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    settings = DeploySettings.from_context(app.node.try_get_context)
    profiles = DeployedProfiles.read(settings.profiles_dir)
    stack = PhoneAgentStack(app, settings.stack_name, settings=settings, profiles=profiles)
    add_security_checks(app)
    return app, stack
