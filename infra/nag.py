"""cdk-nag (AwsSolutions) on every synth, and the one way this app acknowledges a finding: with a written reason.

cdk-nag 3 runs as a CDK policy-validation plugin: `app.synth()` fails when a finding is not acknowledged, so neither
`cdk synth` nor the infrastructure tests can produce a template that skipped the checks.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_security_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def acknowledge(scope: IConstruct, rule: str, reason: str, *findings: str) -> None:
    """Acknowledge `rule` on `scope` and everything under it.

    Rules that report one finding per offending value (IAM4/IAM5) take those values as `findings`, e.g.
    `acknowledge(role, "AwsSolutions-IAM5", "why", "Resource::*")`; each one is acknowledged on its own so a new
    wildcard added later still fails the synth.
    """
    if not reason.strip():
        raise ValueError(f"{rule}: an acknowledgment needs a reason")
    ids = [f"{rule}[{finding}]" for finding in findings] if findings else [rule]
    Validations.of(scope).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in ids))


def _render(value: Any) -> str:
    """A resolved CloudFormation value written the way cdk-nag names findings: `<Logical.Attr>`, `<Ref>`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(_render(part) for part in parts)
        if function == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
        if function == "Ref":
            return f"<{argument}>"
    raise ValueError(f"cannot name a cdk-nag finding for {value!r}")


def resource_finding(scope: IConstruct, arn: str) -> str:
    """`Resource::...` finding ID for an ARN that contains tokens, as cdk-nag reports it (for IAM5)."""
    return f"Resource::{_render(Stack.of(scope).resolve(arn))}"
