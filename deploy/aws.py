"""The AWS side of the deploy command: the stack's outputs before a deploy (CloudFormation), the team's keys into
their secrets (Secrets Manager), and the relay's service (ECS): restart it on new secrets, wait until it runs.

Endpoints are botocore's: AWS_ENDPOINT_URL points every client at a local moto server in tests."""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from deploy.errors import DeployError
from infra.constants import Output

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import ServiceTypeDef
    from mypy_boto3_secretsmanager import SecretsManagerClient

# An operator's command, not a phone call: patient retries, ordinary timeouts.
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=5, read_timeout=30)
# Which output holds which .env key's secret.
SECRET_OUTPUTS: dict[str, Output] = {
    "TWILIO_ACCOUNT_SID": Output.TWILIO_ACCOUNT_SID_SECRET_ARN,
    "TWILIO_AUTH_TOKEN": Output.TWILIO_AUTH_TOKEN_SECRET_ARN,
    "OPENAI_API_KEY": Output.OPENAI_API_KEY_SECRET_ARN,
}
REQUIRED_OUTPUTS = (*SECRET_OUTPUTS.values(), Output.RELAY_CLUSTER_NAME, Output.RELAY_SERVICE_NAME)
# A stack in one of these holds its resources and outputs; any other (none yet, rolled back on create, being deleted)
# gets the first, unwired deploy.
SETTLED_STATUSES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
)


@contextlib.contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """AWS failures become a DeployError saying what was being done. AWS error messages name resources, never a
    secret's value."""
    try:
        yield
    except NoCredentialsError:
        raise DeployError(
            f"{doing}: no AWS credentials (set AWS_PROFILE, or run `aws configure` / `aws sso login`)"
        ) from None
    except NoRegionError:
        raise DeployError(f"{doing}: no AWS region (pass -c region=... or set AWS_REGION)") from None
    except ClientError as error:
        details = error.response.get("Error", {})
        raise DeployError(f"{doing}: {details.get('Code', 'error')}: {details.get('Message', '')}") from None
    except BotoCoreError as error:
        raise DeployError(f"{doing}: {error}") from None


def require_outputs(outputs: Mapping[str, str], stack_name: str) -> None:
    missing = [output.value for output in REQUIRED_OUTPUTS if not outputs.get(output.value)]
    if missing:
        raise DeployError(f"stack {stack_name} has no output {', '.join(missing)}: is it this project's stack?")


class Aws:
    def __init__(self, region: str) -> None:
        session = boto3.session.Session(region_name=region)
        self.cloudformation: CloudFormationClient = session.client("cloudformation", config=BOTO_CONFIG)
        self.secretsmanager: SecretsManagerClient = session.client("secretsmanager", config=BOTO_CONFIG)
        self.ecs: ECSClient = session.client("ecs", config=BOTO_CONFIG)

    def settled_outputs(self, stack_name: str) -> dict[str, str] | None:
        """The outputs of a deployed stack; None when there is none yet (or only one that failed to create), which the
        first, unwired deploy creates. A deployed stack without the outputs the command needs is refused rather than
        deployed unwired: that would un-wire numbers it may be answering."""
        with aws_errors(f"reading stack {stack_name}"):
            try:
                stacks = self.cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ValidationError":  # "Stack with id X does not exist"
                    return None
                raise
        if not stacks or stacks[0]["StackStatus"] not in SETTLED_STATUSES:
            return None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", []) if "OutputKey" in o}
        require_outputs(outputs, stack_name)
        return outputs

    def store_secrets(self, values: Mapping[str, str], outputs: Mapping[str, str]) -> list[str]:
        """Put each value whose secret holds something else; return the names (never the values) that changed."""
        changed = []
        for name, output in SECRET_OUTPUTS.items():
            arn = outputs[output.value]
            with aws_errors(f"storing {name} in its secret ({output.value})"):
                current = self.secretsmanager.get_secret_value(SecretId=arn).get("SecretString", "")
                if hmac.compare_digest(current.encode(), values[name].encode()):
                    continue
                self.secretsmanager.put_secret_value(SecretId=arn, SecretString=values[name])
            changed.append(name)
        return changed

    def restart_relay(self, cluster: str, service: str) -> None:
        """ECS injects secrets when a task starts: new tasks read the new values, the old ones drain."""
        with aws_errors(f"restarting the relay service {service}"):
            self.ecs.update_service(cluster=cluster, service=service, forceNewDeployment=True)

    def wait_for_relay(
        self,
        cluster: str,
        service: str,
        *,
        timeout_seconds: float,
        poll_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RelayState:
        """Until the service runs a task and its latest deployment has rolled out (the only one left); a DeployError
        when the rollout failed or the time is up."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            state = self.relay_state(cluster, service)
            if state.healthy:
                return state
            if state.rollout == "FAILED":
                raise DeployError(f"the relay's deployment failed: {state.reason}. {LOOK_AT_THE_RELAY}")
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"the relay did not become healthy within {timeout_seconds:g} s ({state.describe()}). "
                    f"{LOOK_AT_THE_RELAY} Once fixed, run this command again: it waits again."
                )
            sleep(poll_seconds)

    def relay_state(self, cluster: str, service: str) -> RelayState:
        with aws_errors(f"reading the relay service {service}"):
            services = self.ecs.describe_services(cluster=cluster, services=[service])["services"]
        if not services:
            raise DeployError(f"the relay service {service} is not in cluster {cluster}")
        return RelayState.of(services[0])


LOOK_AT_THE_RELAY = (
    "Look at the relay's log group and the service's events (`aws ecs describe-services --cluster <RelayClusterName> "
    "--services <RelayServiceName> --query 'services[0].events[:5]'`); infra/DEPLOY.md, 'When something goes wrong'."
)


@dataclass(frozen=True)
class RelayState:
    running: int
    desired: int
    deployments: int
    rollout: str  # the primary deployment's rolloutState; "" when ECS does not report one
    reason: str
    last_event: str

    @classmethod
    def of(cls, service: ServiceTypeDef) -> RelayState:
        deployments = service.get("deployments", [])
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        events = service.get("events", [])
        return cls(
            running=service.get("runningCount", 0),
            desired=service.get("desiredCount", 0),
            deployments=len(deployments),
            rollout=str(primary.get("rolloutState", "")) if primary else "",
            reason=str(primary.get("rolloutStateReason", "")) if primary else "",
            last_event=events[0].get("message", "") if events else "",
        )

    @property
    def healthy(self) -> bool:
        # One deployment left means the previous tasks are gone: every running task has the current secrets.
        return self.running >= 1 and self.deployments == 1 and self.rollout in {"COMPLETED", ""}

    def describe(self) -> str:
        text = f"{self.running} of {self.desired} tasks running, {self.deployments} deployment(s)"
        if self.rollout:
            text += f", rollout {self.rollout}"
        if self.last_event:
            text += f"; last event: {self.last_event}"
        return text
