"""Each variant of the CDK app is synthesized once per test session (with cdk-nag, as every synth is) and shared by
every test that needs it; see tests/infra/synth.py for the variants."""

from __future__ import annotations

import pytest

from tests.infra.synth import CLOUDFRONT_CONTEXT, CUSTOM_DOMAIN_CONTEXT, Synthesized, synthesize


@pytest.fixture(scope="session")
def cloudfront_stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(CLOUDFRONT_CONTEXT, tmp_path_factory.mktemp("cloudfront"))


@pytest.fixture(scope="session")
def custom_domain_stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(CUSTOM_DOMAIN_CONTEXT, tmp_path_factory.mktemp("custom-domain"))


@pytest.fixture(scope="session", params=["cloudfront", "custom-domain"])
def any_stack(request: pytest.FixtureRequest) -> Synthesized:
    """Both variants, for what must hold in every deployment."""
    name = "cloudfront_stack" if request.param == "cloudfront" else "custom_domain_stack"
    stack: Synthesized = request.getfixturevalue(name)
    return stack
