"""The CDK CLI as a child process: `cdk deploy` of the one stack, its outputs read from the file CDK writes
(`--outputs-file`). The CLI's own progress goes straight to the terminal. The team's keys are never in its arguments
or its environment: they reach Secrets Manager through the API only (deploy.aws)."""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import DeployError

DEFAULT_CDK_COMMAND = "npx --no-install cdk"
WIRE_NUMBERS_CONTEXT_KEY = "wireNumbers"


@dataclass(frozen=True)
class CdkCli:
    command: tuple[str, ...]  # e.g. ("npx", "--no-install", "cdk")
    context: tuple[str, ...]  # the operator's `-c key=value` arguments, passed to every deploy as given

    @classmethod
    def from_command_line(cls, command: str, context: Sequence[str]) -> CdkCli:
        return cls(tuple(shlex.split(command)), tuple(context))

    def deploy(self, stack_name: str, *, wire_numbers: bool) -> dict[str, str]:
        """Deploy the stack and return its outputs. `wire_numbers=False` adds `-c wireNumbers=false` after the
        operator's context (the later `-c` wins); True leaves the stack's default (wired) or the operator's choice."""
        extra = () if wire_numbers else ("-c", f"{WIRE_NUMBERS_CONTEXT_KEY}=false")
        with tempfile.TemporaryDirectory(prefix="deploy-outputs-") as directory:
            outputs_file = Path(directory) / "outputs.json"
            arguments = [
                *self.command, "deploy", stack_name, "--require-approval", "never",
                "--outputs-file", str(outputs_file), *self.context, *extra,
            ]  # fmt: skip
            try:
                completed = subprocess.run(arguments, check=False)  # noqa: S603 - the operator's own CDK CLI
            except FileNotFoundError:
                raise DeployError(
                    f"the CDK CLI ({shlex.join(self.command)}) was not found: run `make setup` first"
                ) from None
            if completed.returncode != 0:
                raise DeployError(
                    f"cdk deploy failed (exit {completed.returncode}): its messages are above; fix the cause and run "
                    "the same command again (it picks up where it stopped)"
                )
            return read_outputs_file(outputs_file, stack_name)


def read_outputs_file(path: Path, stack_name: str) -> dict[str, str]:
    """CDK's outputs file: `{"<stack name>": {"<output key>": "<value>", ...}}`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"cdk deploy wrote no outputs file ({path.name}): is the CDK CLI 2.x?") from None
    except ValueError:
        raise DeployError(f"cdk deploy's outputs file ({path.name}) is not JSON") from None
    outputs = document.get(stack_name) if isinstance(document, dict) else None
    if not isinstance(outputs, dict):
        raise DeployError(f"cdk deploy's outputs file has no stack {stack_name}")
    return {str(key): str(value) for key, value in outputs.items()}
