"""`make deploy`: the first deploy from a .env, running it again, and each way it stops with a clear message."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import boto3
import pytest

from infra.constants import SECRET_PLACEHOLDER
from tests.integration.deploy.conftest import FAKE_CDK, Deployment

SECRETS = {
    "OPENAI_API_KEY": "OpenAiApiKey",
    "TWILIO_ACCOUNT_SID": "TwilioAccountSid",
    "TWILIO_AUTH_TOKEN": "TwilioAuthToken",
}


def test_first_deploy_fills_the_secrets_restarts_the_relay_wires_the_numbers_and_prints_them(
    deployment: Deployment,
) -> None:
    run = deployment.run("-c", "alarmEmail=ops@example.com")

    assert run.code == 0, run.err
    unwired, wired = deployment.cdk_runs()
    for cdk_run in (unwired, wired):
        assert cdk_run.argv[:2] == ["deploy", deployment.stack]
        assert "--outputs-file" in cdk_run.argv
        assert f"profilesDir={deployment.profiles_dir}" in cdk_run.context()
        assert "alarmEmail=ops@example.com" in cdk_run.context()
    assert unwired.context()[-1] == "wireNumbers=false"
    assert not any(item.startswith("wireNumbers=") for item in wired.context())
    keys = deployment.keys
    assert deployment.secret("OpenAiApiKey") == keys.openai_api_key
    assert deployment.secret("TwilioAccountSid") == keys.twilio_account_sid
    assert deployment.secret("TwilioAuthToken") == keys.twilio_auth_token
    assert wired.relay_deployment != unwired.relay_deployment, "the relay was not restarted on the new secrets"
    assert "+15550100001  (bistro)" in run.out
    assert "+15550100002  (dentist)" in run.out


def test_running_it_again_with_nothing_changed_deploys_once_and_stores_and_restarts_nothing(
    deployment: Deployment,
) -> None:
    assert deployment.run().code == 0
    versions = {name: deployment.secret_versions(name) for name in SECRETS.values()}
    relay_deployment = deployment.relay_deployment_id()

    again = deployment.run()

    assert again.code == 0, again.err
    assert len(deployment.cdk_runs()) == 3, "the second run deployed more than once"
    assert not any(item.startswith("wireNumbers=") for item in deployment.cdk_runs()[-1].context())
    assert {name: deployment.secret_versions(name) for name in SECRETS.values()} == versions
    assert deployment.relay_deployment_id() == relay_deployment
    for name in SECRETS:
        assert f"{name}: unchanged" in again.out
    assert "+15550100001  (bistro)" in again.out


def test_a_rotated_key_is_stored_and_restarts_the_relay_before_the_one_deploy(deployment: Deployment) -> None:
    assert deployment.run().code == 0
    relay_deployment = deployment.relay_deployment_id()
    deployment.keys.openai_api_key = "sk-rotated-" + "b" * 32
    deployment.write_env()

    run = deployment.run()

    assert run.code == 0, run.err
    assert len(deployment.cdk_runs()) == 3
    assert deployment.secret("OpenAiApiKey") == deployment.keys.openai_api_key
    assert "OPENAI_API_KEY: stored in Secrets Manager" in run.out
    assert "TWILIO_AUTH_TOKEN: unchanged" in run.out
    assert deployment.relay_deployment_id() != relay_deployment


def test_profiles_that_list_no_number_deploy_and_say_where_numbers_go(deployment: Deployment) -> None:
    for profile in deployment.profiles_dir.glob("*.toml"):
        text = profile.read_text()
        profile.write_text(text.replace(text.split("numbers = ")[1].split("\n")[0], "[]"))

    run = deployment.run()

    assert run.code == 0, run.err
    assert "no number is wired: list the Twilio numbers in a profile's `numbers`" in run.out


def test_a_stack_deployed_by_hand_with_placeholder_secrets_is_filled_before_its_numbers_are_wired(
    deployment: Deployment,
) -> None:
    """The manual procedure's step 4 was done; `make deploy` takes over without another unwired deploy."""
    env = {**os.environ, "FAKE_CDK_RECORD": ""}
    by_hand = [sys.executable, "-P", str(FAKE_CDK), "deploy", deployment.stack, "--outputs-file", os.devnull]
    subprocess.run([*by_hand, "-c", "wireNumbers=false"], check=True, env=env)
    assert deployment.secret("TwilioAuthToken") == SECRET_PLACEHOLDER

    run = deployment.run()

    assert run.code == 0, run.err
    (wired,) = deployment.cdk_runs()
    assert not any(item.startswith("wireNumbers=") for item in wired.context())
    assert deployment.secret("TwilioAuthToken") == deployment.keys.twilio_auth_token


def test_a_stack_of_the_same_name_that_is_not_this_projects_is_refused_and_left_alone(deployment: Deployment) -> None:
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"Website": {"Value": "x"}}}
    boto3.client("cloudformation").create_stack(StackName=deployment.stack, TemplateBody=json.dumps(template))

    run = deployment.run()

    assert run.code == 1
    assert f"stack {deployment.stack} has no output TwilioAccountSidSecretArn" in run.err
    assert deployment.cdk_runs() == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("TWILIO_AUTH_TOKEN=", "# TWILIO_AUTH_TOKEN="), "TWILIO_AUTH_TOKEN is missing"),
        (
            lambda text: text.replace('TWILIO_ACCOUNT_SID="AC', 'TWILIO_ACCOUNT_SID="XX'),
            "TWILIO_ACCOUNT_SID is malformed",
        ),
        (lambda text: text.replace("OPENAI_API_KEY=sk-", "OPENAI_API_KEY="), "OPENAI_API_KEY is malformed"),
    ],
    ids=["missing", "malformed-sid", "malformed-openai-key"],
)
def test_a_missing_or_malformed_key_in_env_is_named_and_nothing_is_deployed(
    deployment: Deployment, edit, message: str
) -> None:
    deployment.write_env(edit(deployment.keys.env_text()))

    run = deployment.run()

    assert run.code == 1
    assert message in run.err
    assert deployment.cdk_runs() == []
    assert deployment.twilio.requests == [], "Twilio was asked before .env was valid"


def test_a_missing_env_file_says_which_keys_it_needs(deployment: Deployment) -> None:
    deployment.env_file.unlink()

    run = deployment.run()

    assert run.code == 1
    assert "no such file" in run.err
    assert "OPENAI_API_KEY, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN" in run.err
    assert deployment.cdk_runs() == []


def test_a_bad_context_value_is_named_before_anything_is_deployed(deployment: Deployment) -> None:
    run = deployment.run("-c", "relayCpu=3")

    assert run.code == 1
    assert "relayCpu: must be one of 256, 512, 1024, 2048, 4096" in run.err
    assert deployment.cdk_runs() == []


def test_twilio_refusing_the_credentials_stops_the_deploy_before_it_starts(deployment: Deployment) -> None:
    deployment.twilio.auth_token = "f" * 32  # the .env holds a well-formed token of another account (or an old one)

    run = deployment.run()

    assert run.code == 1
    assert "Twilio refused TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN (HTTP 401, Twilio error 20003)" in run.err
    assert deployment.cdk_runs() == []


def test_a_suspended_twilio_account_stops_the_deploy_before_it_starts(deployment: Deployment) -> None:
    deployment.twilio.account_status = "suspended"

    run = deployment.run()

    assert run.code == 1
    assert "is suspended, not active" in run.err
    assert deployment.cdk_runs() == []


def test_a_relay_that_never_runs_a_task_ends_in_a_timeout_that_says_where_to_look(deployment: Deployment) -> None:
    deployment.monkeypatch.setenv("FAKE_CDK_RELAY_TASKS", "0")

    run = deployment.run(healthy_timeout=0.2)

    assert run.code == 1
    assert "the relay did not become healthy within 0.2 s (0 of 0 tasks running" in run.err
    assert "aws ecs describe-services" in run.err
    assert "+15550100001" not in run.out
    assert deployment.secret("OpenAiApiKey") == deployment.keys.openai_api_key  # what was done stays done


def test_a_failing_cdk_deploy_stops_the_command_with_its_exit_code(deployment: Deployment) -> None:
    failing = shlex.join([sys.executable, "-c", "import sys; sys.exit(3)"])

    run = deployment.run("--cdk", failing)

    assert run.code == 1
    assert "cdk deploy failed (exit 3)" in run.err


def test_the_keys_never_reach_the_terminal_of_a_whole_deploy_run_as_a_process(deployment: Deployment) -> None:
    """The command as an operator runs it, its CDK CLI a grandchild: every byte either prints is searched."""
    command = [
        sys.executable, "-m", "deploy", "--env-file", str(deployment.env_file),
        "--cdk", shlex.join([sys.executable, "-P", str(FAKE_CDK)]),
        "-c", f"stackName={deployment.stack}", "-c", f"profilesDir={deployment.profiles_dir}", "--poll-seconds", "0.05",
    ]  # fmt: skip

    completed = subprocess.run(command, capture_output=True, text=True, check=False)

    assert completed.returncode == 0, completed.stderr
    assert "+15550100002  (dentist)" in completed.stdout
    for value in deployment.keys.values():
        assert value not in completed.stdout + completed.stderr
