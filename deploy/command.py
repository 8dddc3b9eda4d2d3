"""The command line of `make deploy` and the order of its steps (the package docstring says why each exists).

Everything it prints goes to stdout, errors to stderr as one line; the team's keys appear nowhere (only their names)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3

from deploy.aws import Aws, require_outputs
from deploy.cdk import DEFAULT_CDK_COMMAND, CdkCli
from deploy.env_file import read_team_keys
from deploy.errors import DeployError
from deploy.twilio_account import TWILIO_API_ORIGIN, verify_twilio_account
from infra.constants import Output
from infra.settings import ContextError, DeploySettings

DEFAULT_HEALTHY_TIMEOUT_SECONDS = 900.0  # a cold Fargate start, image pull and warm-up, with room to spare
POLL_SECONDS = 10.0
CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        run(arguments)
    except DeployError as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 1
    return 0


def run(arguments: argparse.Namespace) -> None:
    context = _context_pairs(arguments.context)
    settings = _settings(context)
    keys = read_team_keys(arguments.env_file)
    say(f"{arguments.env_file}: OPENAI_API_KEY, TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are well formed")
    verify_twilio_account(keys, base_url=os.environ.get("TWILIO_API_BASE_URL") or TWILIO_API_ORIGIN)
    say("Twilio accepted TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the account is active)")

    aws = Aws(settings.region)
    cdk = CdkCli.from_command_line(arguments.cdk, [item for pair in context for item in ("-c", pair)])
    stack = settings.stack_name
    outputs = aws.settled_outputs(stack)
    if outputs is None:
        say(f"stack {stack} is not deployed yet: first deploy, numbers not wired until the secrets are filled")
        outputs = cdk.deploy(stack, wire_numbers=False)
        require_outputs(outputs, stack)

    changed = aws.store_secrets(keys.by_name(), outputs)
    for name in keys.by_name():
        say(f"{name}: {'stored in Secrets Manager' if name in changed else 'unchanged'}")
    cluster, service = outputs[Output.RELAY_CLUSTER_NAME.value], outputs[Output.RELAY_SERVICE_NAME.value]
    if changed:
        aws.restart_relay(cluster, service)
        say(f"relay service {service}: new deployment started, so its tasks read the new secrets")

    say(f"deploying stack {stack} with every profile's numbers wired")
    outputs = cdk.deploy(stack, wire_numbers=True)
    require_outputs(outputs, stack)
    cluster, service = outputs[Output.RELAY_CLUSTER_NAME.value], outputs[Output.RELAY_SERVICE_NAME.value]

    say(f"waiting for the relay service {service} to run a task of its latest deployment")
    state = aws.wait_for_relay(
        cluster, service, timeout_seconds=arguments.healthy_timeout, poll_seconds=arguments.poll_seconds
    )
    say(f"relay healthy: {state.describe()}")
    _print_numbers(outputs)


def say(line: str) -> None:
    print(line, flush=True)  # flushed: the CDK CLI's output, interleaved, goes straight to the same terminal


def _print_numbers(outputs: Mapping[str, str]) -> None:
    # The stack leaves the output out when no profile lists a number.
    answered = answered_numbers(outputs.get(Output.ANSWERED_NUMBERS.value, ""))
    if not answered:
        say("no number is wired: list the Twilio numbers in a profile's `numbers` (profiles/<id>.toml) and run again")
        return
    say("ready: call")
    for number, profile_id in answered:
        say(f"  {number}  ({profile_id})")


def answered_numbers(value: str) -> list[tuple[str, str]]:
    """The AnsweredNumbers output, `+15550100001=bistro,+15550100002=dentist`, as (number, profile id) pairs."""
    pairs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        number, _, profile_id = item.partition("=")
        pairs.append((number.strip(), profile_id.strip()))
    return pairs


def _context_pairs(values: Sequence[str]) -> list[str]:
    for value in values:
        key, separator, _ = value.partition("=")
        if not separator or not key:
            raise DeployError(f"-c {value}: a context value is key=value (e.g. -c profilesDir=profiles)")
    return list(values)


def _settings(context: Sequence[str]) -> DeploySettings:
    """The deployment's settings as synth will read them (cdk.json, then -c), checked before anything is deployed.
    Without -c region, the region is the AWS profile's, as the CDK CLI picks it."""
    # cdk.json read here, not through infra.application: that import starts the CDK's node runtime (seconds).
    defaults: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    values = {**defaults, **dict(pair.split("=", 1) for pair in context)}
    environ = dict(os.environ)
    profile_region = boto3.session.Session().region_name
    if profile_region and not environ.get("CDK_DEFAULT_REGION"):
        environ["CDK_DEFAULT_REGION"] = profile_region
    try:
        return DeploySettings.from_context(values.get, environ)
    except ContextError as error:
        raise DeployError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy",
        description="Deploy the stack from a .env of the team's keys: deploy, fill the secrets, restart the relay on "
        "new secrets, wire every profile's numbers, wait for the relay, print the numbers to call. Safe to run again.",
    )
    parser.add_argument(
        "--env-file", type=Path, default=Path(".env"),
        help="KEY=value file with OPENAI_API_KEY, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN (default .env)",
    )  # fmt: skip
    parser.add_argument(
        "-c", "--context", action="append", default=[], metavar="KEY=VALUE",
        help="CDK context, passed to every cdk deploy as given (e.g. -c profilesDir=profiles -c alarmEmail=...)",
    )  # fmt: skip
    parser.add_argument(
        "--cdk", default=os.environ.get("CDK_COMMAND") or DEFAULT_CDK_COMMAND,
        help=f"the CDK CLI command (default $CDK_COMMAND, else `{DEFAULT_CDK_COMMAND}`)",
    )  # fmt: skip
    parser.add_argument(
        "--healthy-timeout", type=float, default=DEFAULT_HEALTHY_TIMEOUT_SECONDS, metavar="SECONDS",
        help=f"how long to wait for a healthy relay task (default {DEFAULT_HEALTHY_TIMEOUT_SECONDS:g})",
    )  # fmt: skip
    parser.add_argument(
        "--poll-seconds", type=float, default=POLL_SECONDS, metavar="SECONDS",
        help=f"how often to look at the relay service while waiting (default {POLL_SECONDS:g})",
    )  # fmt: skip
    return parser
