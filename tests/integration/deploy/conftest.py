"""`make deploy` end to end on loopback: AWS on a threaded moto server (AWS_ENDPOINT_URL), the fake Twilio REST API
(TWILIO_API_BASE_URL), and the CDK CLI replaced at the process boundary by `tests/fakes/cdk_cli.py`, which records
its arguments and leaves behind what a deploy of the stack would (secrets, the relay service, the stack's outputs)."""

from __future__ import annotations

import json
import logging
import secrets
import shlex
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from deploy.command import main
from tests.fakes.twilio_rest import FakeTwilioRest, TwilioRestServer

FAKE_CDK = Path(__file__).resolve().parents[2] / "fakes" / "cdk_cli.py"
PROFILES = {
    "bistro": ("Harbor Bistro", "+15550100001", "America/New_York"),
    "dentist": ("Lakeside Dental", "+15550100002", "America/Chicago"),
}


@dataclass
class Keys:
    """Values shaped like the real ones, random per test so that finding one in any output means it leaked."""

    openai_api_key: str = field(default_factory=lambda: "sk-test-" + secrets.token_hex(24))
    twilio_account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    twilio_auth_token: str = field(default_factory=lambda: secrets.token_hex(16))

    def env_text(self) -> str:
        return (
            "# the team's keys\n"
            f"OPENAI_API_KEY={self.openai_api_key}\n"
            f'export TWILIO_ACCOUNT_SID="{self.twilio_account_sid}"\n'
            f"TWILIO_AUTH_TOKEN='{self.twilio_auth_token}'  # from the Twilio console\n"
        )

    def values(self) -> list[str]:
        return [self.openai_api_key, self.twilio_account_sid, self.twilio_auth_token]


@dataclass
class Run:
    code: int
    out: str
    err: str
    log: str


@dataclass(frozen=True)
class CdkRun:
    argv: list[str]
    relay_deployment: str | None  # the relay service's deployment id as the run left it

    def context(self) -> list[str]:
        return [self.argv[i + 1] for i, item in enumerate(self.argv) if item == "-c"]


@dataclass
class Deployment:
    """One project checkout about to run `make deploy` against its own stack."""

    stack: str
    env_file: Path
    profiles_dir: Path
    record: Path
    keys: Keys
    twilio: FakeTwilioRest
    capfd: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture
    monkeypatch: pytest.MonkeyPatch

    def write_env(self, text: str | None = None) -> None:
        self.env_file.write_text(self.keys.env_text() if text is None else text)

    def run(self, *extra: str, healthy_timeout: float = 30.0) -> Run:
        """`python -m deploy` in this process (its CDK CLI is a child process, as in production)."""
        self.capfd.readouterr()
        self.caplog.clear()
        code = main([
            "--env-file", str(self.env_file),
            "--cdk", shlex.join([sys.executable, "-P", str(FAKE_CDK)]),
            "-c", f"stackName={self.stack}",
            "-c", f"profilesDir={self.profiles_dir}",
            "--healthy-timeout", str(healthy_timeout),
            "--poll-seconds", "0.05",
            *extra,
        ])  # fmt: skip
        captured = self.capfd.readouterr()
        run = Run(code, captured.out, captured.err, self.caplog.text)
        for value in self.keys.values():
            assert value not in run.out + run.err + run.log, "a key from .env was shown"
        return run

    def cdk_runs(self) -> list[CdkRun]:
        if not self.record.exists():
            return []
        return [CdkRun(**json.loads(line)) for line in self.record.read_text().splitlines()]

    def secret(self, name: str) -> str:
        client = boto3.client("secretsmanager")
        return client.get_secret_value(SecretId=f"{self.stack}-{name}")["SecretString"]

    def secret_versions(self, name: str) -> int:
        client = boto3.client("secretsmanager")
        return len(client.list_secret_version_ids(SecretId=f"{self.stack}-{name}")["Versions"])

    def relay_deployment_id(self) -> str:
        ecs = boto3.client("ecs")
        service = ecs.describe_services(cluster=f"{self.stack}-RelayCluster", services=[f"{self.stack}-RelayService"])
        deployment_id: str = service["services"][0]["deployments"][0]["id"]
        return deployment_id


@pytest.fixture
def deployment(
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Deployment]:
    keys = Keys()
    profiles_dir = tmp_path / "profiles"
    profiles_dir.mkdir()
    for profile_id, (name, number, timezone) in PROFILES.items():
        (profiles_dir / f"{profile_id}.toml").write_text(
            f'business_name = "{name}"\nnumbers = ["{number}"]\ntimezone = "{timezone}"\n'
            'greeting = "Thanks for calling {business_name}."\n'
        )
    fake = FakeTwilioRest(account_sid=keys.twilio_account_sid, auth_token=keys.twilio_auth_token)
    record = tmp_path / "cdk-runs.jsonl"
    with TwilioRestServer(fake) as twilio:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        monkeypatch.setenv("TWILIO_API_BASE_URL", twilio.base_url)
        monkeypatch.setenv("FAKE_CDK_RECORD", str(record))
        caplog.set_level(logging.INFO)
        deployment = Deployment(
            stack=f"Agent-{uuid.uuid4().hex[:8]}",
            env_file=tmp_path / ".env",
            profiles_dir=profiles_dir,
            record=record,
            keys=keys,
            twilio=fake,
            capfd=capfd,
            caplog=caplog,
            monkeypatch=monkeypatch,
        )
        deployment.write_env()
        yield deployment
