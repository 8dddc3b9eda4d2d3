"""A stand-in for the CDK CLI's `cdk deploy`, run as its own process the way `make deploy` runs the real one.

It records each run (one JSON line in $FAKE_CDK_RECORD: its arguments, and the relay service's deployment id as the
run leaves it), and does what a deploy of this stack leaves
behind, against whatever AWS_ENDPOINT_URL points at (a moto server):

- the three operator-filled secrets, created once with the stack's placeholder (a later deploy never overwrites them,
  as CloudFormation does not);
- the relay's ECS cluster and service; $FAKE_CDK_RELAY_TASKS tasks run (default 1; 0 = the relay never starts);
- the CloudFormation stack with its outputs (AnsweredNumbers lists every profile's numbers from `-c profilesDir`);
- the outputs file (`--outputs-file`) as CDK writes it: {"<stack>": {"<output>": "<value>"}}.

Like the stack's Twilio number custom resource, a deploy that wires numbers (no `-c wireNumbers=false`) fails while
a Twilio secret still holds the placeholder.

    python -P tests/fakes/cdk_cli.py deploy STACK --require-approval never --outputs-file PATH [-c key=value ...]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from callcore.profiles import DEFAULT_PROFILES_DIR, load_profiles
from infra.constants import SECRET_PLACEHOLDER, Output

SECRET_OUTPUTS = {
    Output.TWILIO_ACCOUNT_SID_SECRET_ARN: "TwilioAccountSid",
    Output.TWILIO_AUTH_TOKEN_SECRET_ARN: "TwilioAuthToken",
    Output.OPENAI_API_KEY_SECRET_ARN: "OpenAiApiKey",
}
TWILIO_OUTPUTS = (Output.TWILIO_ACCOUNT_SID_SECRET_ARN, Output.TWILIO_AUTH_TOKEN_SECRET_ARN)


def main(argv: list[str]) -> int:
    relay: dict[str, str] = {}
    try:
        return _deploy(argv, relay)
    finally:
        _record(argv, relay)


def _deploy(argv: list[str], relay: dict[str, str]) -> int:
    if not argv or argv[0] != "deploy":
        print(f"fake cdk: only `deploy` is faked, got {argv[:1]}", file=sys.stderr)
        return 2
    stack, outputs_file, context = _parse(argv[1:])
    wire_numbers = context.get("wireNumbers", "true") != "false"
    outputs = {output.value: _secret(stack, name) for output, name in SECRET_OUTPUTS.items()}
    if wire_numbers and any(_holds_placeholder(outputs[output.value]) for output in TWILIO_OUTPUTS):
        print(
            "TwilioNumber: the Twilio secrets still hold the placeholder: fill them, then deploy again", file=sys.stderr
        )
        return 1
    relay |= _relay(stack)
    outputs |= relay
    if answered := _answered_numbers(context.get("profilesDir")):  # as the stack: no output without a number
        outputs[Output.ANSWERED_NUMBERS.value] = answered
    _stack(stack, outputs)
    Path(outputs_file).write_text(json.dumps({stack: outputs}, indent=2))
    print(f"fake cdk: {stack} deployed", file=sys.stderr)
    return 0


def _record(argv: list[str], relay: dict[str, str]) -> None:
    record = os.environ.get("FAKE_CDK_RECORD")
    if not record:
        return
    deployment = None
    if relay:
        ecs = boto3.client("ecs")
        cluster, service = relay[Output.RELAY_CLUSTER_NAME.value], relay[Output.RELAY_SERVICE_NAME.value]
        deployment = ecs.describe_services(cluster=cluster, services=[service])["services"][0]["deployments"][0]["id"]
    with Path(record).open("a") as file:
        file.write(json.dumps({"argv": argv, "relay_deployment": deployment}) + "\n")


def _parse(arguments: list[str]) -> tuple[str, str, dict[str, str]]:
    stack, outputs_file, context = "", "", {}
    items = iter(arguments)
    for item in items:
        if item in {"-c", "--context"}:
            key, _, value = next(items).partition("=")
            context[key] = value  # the last -c of a key wins, as with the CDK CLI
        elif item == "--outputs-file":
            outputs_file = next(items)
        elif item == "--require-approval":
            next(items)
        elif not item.startswith("-"):
            stack = item
    assert stack, f"fake cdk: no stack in {arguments}"
    assert outputs_file, f"fake cdk: no --outputs-file in {arguments}"
    return stack, outputs_file, context


def _secret(stack: str, name: str) -> str:
    client = boto3.client("secretsmanager")
    secret_name = f"{stack}-{name}"
    try:
        return client.describe_secret(SecretId=secret_name)["ARN"]
    except ClientError:
        return client.create_secret(Name=secret_name, SecretString=SECRET_PLACEHOLDER)["ARN"]


def _holds_placeholder(arn: str) -> bool:
    return boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"] == SECRET_PLACEHOLDER


def _relay(stack: str) -> dict[str, str]:
    ecs = boto3.client("ecs")
    cluster, service = f"{stack}-RelayCluster", f"{stack}-RelayService"
    if not ecs.describe_clusters(clusters=[cluster])["clusters"]:
        ecs.create_cluster(clusterName=cluster)
    existing = ecs.describe_services(cluster=cluster, services=[service])["services"]
    if not existing or existing[0]["status"] != "ACTIVE":
        ecs.register_task_definition(
            family=f"{stack}-Relay", containerDefinitions=[{"name": "relay", "image": "relay", "memory": 2048}]
        )
        # Created with no task, then scaled: the fake reports a service's running count as its desired count.
        ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=f"{stack}-Relay", desiredCount=0)
        tasks = int(os.environ.get("FAKE_CDK_RELAY_TASKS", "1"))
        if tasks:
            ecs.update_service(cluster=cluster, service=service, desiredCount=tasks)
    return {Output.RELAY_CLUSTER_NAME.value: cluster, Output.RELAY_SERVICE_NAME.value: service}


def _answered_numbers(profiles_dir: str | None) -> str:
    profiles = load_profiles(Path(profiles_dir) if profiles_dir else DEFAULT_PROFILES_DIR)
    return ",".join(f"{number}={loaded.profile_id}" for loaded in profiles for number in loaded.profile.numbers)


def _stack(stack: str, outputs: dict[str, str]) -> None:
    cloudformation = boto3.client("cloudformation")
    template = json.dumps({
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    })  # fmt: skip
    try:
        cloudformation.describe_stacks(StackName=stack)
    except ClientError:
        cloudformation.create_stack(StackName=stack, TemplateBody=template)
        return
    cloudformation.update_stack(StackName=stack, TemplateBody=template)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
