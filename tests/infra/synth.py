"""The two variants of the CDK app the infrastructure tests synthesize, and how (conftest.py shares them per session).

* `cloudfront_stack`: a team's first deploy: defaults (CloudFront in front of the load balancer, the repository's
  `profiles/`) with `wireNumbers=false`, as `make deploy`'s first pass runs it while the secrets hold placeholders.
* `custom_domain_stack`: every context key set to a non-default value: custom domain, a `profilesDir` of two
  receptionist profiles with three numbers (all wired), alarm e-mail, x86_64, other scaling numbers, another region
  and stack name.

Asset staging is off in tests (`aws:cdk:disable-asset-staging`): the templates are identical, but the 50 MB
dependency layer is not copied into every test's cloud assembly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from infra.application import build_app
from infra.stack import PhoneAgentStack

TEST_ONLY_CONTEXT = {"aws:cdk:disable-asset-staging": True}
# bistro.toml (+15551230001, the fallback line, 2400 s calls) and dentist.toml (+15551230002, +15551230003).
TWO_PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

CLOUDFRONT_CONTEXT: dict[str, Any] = {"region": "us-east-1", "wireNumbers": False}

CUSTOM_DOMAIN_CONTEXT: dict[str, Any] = {
    "stackName": "VoiceAgentProd",
    "region": "eu-west-1",
    "domainName": "voice.example.com",
    "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    "hostedZoneName": "example.com",
    "profilesDir": str(TWO_PROFILES_DIR),
    "alarmEmail": "ops@example.com",
    "architecture": "x86_64",
    "callsPerTask": 15,
    "relayMinTasks": 3,
    "relayMaxTasks": 12,
    "relayCpu": 2048,
    "relayMemoryMiB": 4096,
    "maxConcurrentCalls": 120,
    "natGateways": 2,
    "greetingLatencyAlarmMs": 800,
    "answeringMachineDetection": "hangup",
    "apiWafRequestsPerIp": 900,
    "maxLiveCallsPerCaller": 3,
    "maxLiveWithheldCalls": 0,
    "dailyCostBudgetUsd": 200,
    "callRecordRetentionDays": 730,
    "turnRetentionDays": 14,
    "bookingRetentionDays": 60,
    "callerProfileRetentionDays": 180,
    "transcriptRetentionDays": 120,
    "recordingRetentionDays": 30,
    "rawNumberRetentionHours": 6,
    "maskCallerDigits": False,
    "callAnalysis": False,
    "analysisModel": "gpt-5",
}


@dataclass(frozen=True)
class Synthesized:
    stack: PhoneAgentStack
    template: Template
    outdir: Path
    context: Mapping[str, Any]

    @cached_property
    def json(self) -> dict[str, Any]:
        return dict(self.template.to_json())  # one jsii round trip per variant, not per assertion

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{self.stack.stack_name}.template.json"

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.json["Resources"].items()
            if resource["Type"] == resource_type
        }

    def only(self, resource_type: str) -> dict[str, Any]:
        found = list(self.resources(resource_type).values())
        assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
        return found[0]

    def logical_id(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)


def synthesize(context: Mapping[str, Any], outdir: Path) -> Synthesized:
    """Synthesize through the app's own builder: cdk.json flags, context validation, cdk-nag (synth fails on any
    unacknowledged finding)."""
    app, stack = build_app({**TEST_ONLY_CONTEXT, **context}, outdir=str(outdir))
    app.synth()
    return Synthesized(stack=stack, template=Template.from_stack(stack), outdir=outdir, context=context)
