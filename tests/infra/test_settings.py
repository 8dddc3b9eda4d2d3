"""Context validation: every key documented, defaults that make a working stack, errors that name the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from callcore.profiles import Profile
from infra.application import CDK_JSON, build_app, cdk_json_context
from infra.constants import Output
from infra.profiles import DeployedProfiles
from infra.settings import RETIRED_CONTEXT_KEYS, Architecture, ContextError, DeploySettings


def settings(context: dict[str, Any], environ: dict[str, str] | None = None) -> DeploySettings:
    return DeploySettings.from_context(context.get, environ or {})


def test_defaults_make_the_out_of_the_box_deployment():
    defaults = settings({})
    assert defaults.stack_name == "PhoneVoiceAgent"
    assert defaults.region == "us-east-1"
    assert defaults.architecture is Architecture.ARM64
    assert not defaults.custom_domain
    assert defaults.wire_numbers
    assert defaults.profiles_dir is None  # the repository's profiles/
    assert (defaults.calls_per_task, defaults.relay_min_tasks, defaults.relay_max_tasks) == (20, 2, 10)


def test_every_context_key_is_documented():
    for name, field in DeploySettings.model_fields.items():
        assert field.alias, name
        assert field.description, field.alias
        assert len(field.description) > 10, field.alias


def test_cli_strings_are_coerced_and_aliases_accepted():
    parsed = settings(
        {
            "wireNumbers": "false",
            "architecture": "AMD64",
            "domainName": "Voice.Example.COM.",
            "hostedZoneId": "Z0123456789ABCDEFGHIJ",
            "hostedZoneName": "example.com",
        }
    )
    assert parsed.wire_numbers is False
    assert parsed.architecture is Architecture.X86_64
    assert parsed.domain_name == "voice.example.com"
    assert parsed.custom_domain


def test_region_comes_from_the_cli_profile_then_the_sdk_environment():
    assert settings({}, {"CDK_DEFAULT_REGION": "eu-central-1", "AWS_REGION": "us-west-2"}).region == "eu-central-1"
    assert settings({}, {"AWS_REGION": "us-west-2"}).region == "us-west-2"
    assert settings({"region": "ap-southeast-2"}, {"CDK_DEFAULT_REGION": "eu-central-1"}).region == "ap-southeast-2"


@pytest.mark.parametrize(
    ("context", "key", "hint"),
    [
        ({"domainName": "voice.example.com"}, "(context)", "hostedZoneId"),
        (
            {
                "domainName": "voice.example.org",
                "hostedZoneId": "Z0123456789ABCDEFGHIJ",
                "hostedZoneName": "example.com",
            },
            "(context)",
            "not inside",
        ),
        (
            {"hostedZoneId": "not-a-zone", "domainName": "a.example.com", "hostedZoneName": "example.com"},
            "hostedZoneId",
            "hosted zone ID",
        ),
        ({"relayMinTasks": 5, "relayMaxTasks": 2}, "(context)", "relayMaxTasks"),
        ({"relayCpu": 1000}, "relayCpu", "one of"),
        ({"relayCpu": 256, "relayMemoryMiB": 4096}, "(context)", "relayMemoryMiB"),
        ({"architecture": "sparc"}, "architecture", "arm64"),
        ({"natGateways": 3}, "natGateways", "less than or equal"),
        ({"cloudFrontPrefixListId": "sg-123"}, "cloudFrontPrefixListId", "prefix list"),
        ({"alarmEmail": "ops"}, "alarmEmail", "e-mail"),
        ({"openaiRealtimeUrl": "https://api.openai.com/v1/realtime"}, "openaiRealtimeUrl", "wss"),
        ({"region": "Europe"}, "region", "pattern"),
        ({"stackName": "1bad"}, "stackName", "pattern"),
    ],
)
def test_a_bad_value_fails_naming_its_key(context, key, hint):
    with pytest.raises(ContextError) as raised:
        settings(context)
    problems = raised.value.problems
    assert any(problem.startswith(f"{key}:") and hint in problem for problem in problems), problems


@pytest.mark.parametrize(("key", "profile_key"), sorted(RETIRED_CONTEXT_KEYS.items()))
def test_a_retired_context_key_fails_naming_the_profile_key_to_use_instead(key, profile_key):
    with pytest.raises(ContextError) as raised:
        build_app({key: "+15551230001"})
    (problem,) = raised.value.problems
    assert problem.startswith(f"{key}: retired")
    assert f"`{profile_key}`" in problem
    assert "profiles/<id>.toml" in problem


def test_every_retired_context_key_names_a_key_the_profile_model_has():
    for profile_key in RETIRED_CONTEXT_KEYS.values():
        model: Any = Profile
        for part in profile_key.split("."):
            assert part in model.model_fields, profile_key
            model = model.model_fields[part].annotation
            model = next((arg for arg in getattr(model, "__args__", ()) if arg is not type(None)), model)


def test_cdk_json_carries_the_feature_flags_and_runs_the_venv_python():
    cdk_json = json.loads(CDK_JSON.read_text())
    assert cdk_json["app"] == ".venv/bin/python app.py"  # `make setup` always creates .venv
    context = cdk_json_context()
    assert context["@aws-cdk/aws-iam:minimizePolicies"] is True
    assert context["@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"] is True
    assert not set(DeploySettings.context_keys()) & set(context)  # deployment choices are -c flags, not pinned here


def test_the_deploy_guide_names_every_context_key_and_output():
    guide = (CDK_JSON.parent / "infra" / "DEPLOY.md").read_text()
    assert [key for key in DeploySettings.context_keys() if f"`{key}`" not in guide] == []
    assert [output.value for output in Output if f"`{output.value}`" not in guide] == []
    retired = [f"| `{key}` | `{profile_key}`" for key, profile_key in RETIRED_CONTEXT_KEYS.items()]
    assert [row for row in retired if row not in guide] == []


def test_synth_validates_the_profiles_and_a_bad_one_stops_it_naming_file_and_key(tmp_path):
    good = (CDK_JSON.parent / "profiles" / "example.toml").read_text()
    (tmp_path / "bistro.toml").write_text(good)
    (tmp_path / "dental.toml").write_text(
        good.replace("+15550100000", "+15550100123").replace("max_party_size = 8", "max_party_size = 0")
    )
    with pytest.raises(ContextError) as caught:
        build_app({"profilesDir": str(tmp_path)})
    assert f"profilesDir: {tmp_path / 'dental.toml'}: key booking.max_party_size:" in str(caught.value)

    # The CLI's path: app.py prints the same error and exits 2 before building anything.
    synth = subprocess.run(
        [sys.executable, str(CDK_JSON.parent / "app.py")],
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps({"profilesDir": str(tmp_path)}), "CDK_OUTDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert synth.returncode == 2
    assert "dental.toml: key booking.max_party_size: Input should be greater than or equal to 1" in synth.stderr


def test_two_valid_profiles_pass_the_synth_check(tmp_path):
    good = (CDK_JSON.parent / "profiles" / "example.toml").read_text()
    (tmp_path / "bistro.toml").write_text(good)
    dental = good.replace("+15550100000", "+15550100123").replace("answers_unknown_numbers = true", "")
    (tmp_path / "dental.toml").write_text(dental)
    loaded = DeployedProfiles.read(settings({"profilesDir": str(tmp_path)}).profiles_dir).loaded
    assert [(item.profile_id, item.profile.numbers) for item in loaded] == [
        ("bistro", ["+15550100000"]),
        ("dental", ["+15550100123"]),
    ]


@pytest.mark.parametrize(
    ("dental", "message"),
    [
        ("limits", "key limits.max_call_seconds: 3600 is more than a deployed call may last (3540"),
        ("same number", "key numbers: +15550100000 is already answered by profile 'bistro'"),
    ],
)
def test_profiles_the_deployment_cannot_serve_stop_the_synth_naming_file_and_key(tmp_path, dental, message):
    good = (CDK_JSON.parent / "profiles" / "example.toml").read_text().replace("answers_unknown_numbers = true", "")
    (tmp_path / "bistro.toml").write_text(good)
    if dental == "limits":
        (tmp_path / "dental.toml").write_text(
            good.replace("+15550100000", "+15550100123").replace("max_call_seconds = 1800", "max_call_seconds = 3600")
        )
    else:
        (tmp_path / "dental.toml").write_text(good)
    with pytest.raises(ContextError) as caught:
        build_app({"profilesDir": str(tmp_path)})
    assert f"profilesDir: {tmp_path / 'dental.toml'}: {message}" in str(caught.value)
