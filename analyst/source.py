"""Where the calls are: the table and the bucket (flags, `CALLS_TABLE` / `TRANSCRIPTS_BUCKET`, or a stack's outputs),
and AWS failures turned into one line a person can act on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from callcore.aws import cloudformation_client, dynamodb_client, s3_client
from callcore.store import CallStore
from callcore.transcripts import TranscriptArchive
from infra.constants import Output

# The analysts' command never hashes a number (the key is the deployment's secret): summaries it writes nothing to.
NO_HASH_KEY = b""


class UserError(Exception):
    """Something the person running the command can fix; printed as one line, exit code 2."""


@dataclass(frozen=True)
class DataSource:
    table: str
    bucket: str | None

    @property
    def store(self) -> CallStore:
        return CallStore(self.table, client=dynamodb_client())

    @property
    def archive(self) -> TranscriptArchive:
        if not self.bucket:
            raise UserError("no transcripts bucket: set TRANSCRIPTS_BUCKET, or pass --bucket or --stack")
        return TranscriptArchive(self.bucket, hash_key=NO_HASH_KEY, client=s3_client())


def resolve_source(*, table: str | None, bucket: str | None, stack: str | None) -> DataSource:
    """Flags first, then a stack's outputs (`--stack`), then the environment the rest of the product uses."""
    if stack:
        with aws_errors(f"stack {stack}"):
            outputs = stack_outputs(stack)
        table = table or outputs.get(Output.CALLS_TABLE_NAME.value)
        bucket = bucket or outputs.get(Output.TRANSCRIPTS_BUCKET_NAME.value)
        if not table:
            raise UserError(f"stack {stack} has no {Output.CALLS_TABLE_NAME.value} output: is it this product's stack?")
    table = table or os.environ.get("CALLS_TABLE")
    bucket = bucket or os.environ.get("TRANSCRIPTS_BUCKET")
    if not table:
        raise UserError("no call table: set CALLS_TABLE, or pass --table or --stack NAME")
    return DataSource(table=table, bucket=bucket)


def stack_outputs(stack: str) -> dict[str, str]:
    stacks = cloudformation_client().describe_stacks(StackName=stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", []) if "OutputKey" in o}


_NOT_FOUND = {
    "ResourceNotFoundException": "{what} does not exist (or not in this region)",
    "NoSuchBucket": "{what} does not exist",
    "ValidationError": "{what}: {message}",  # CloudFormation: "Stack with id X does not exist"
}
_REFUSED = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
}


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Run AWS requests about `what` (e.g. "table calls"); failures a person can fix become a UserError."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise UserError("no AWS credentials: set AWS_PROFILE, or run `aws configure` / `aws sso login`") from None
    except NoRegionError:
        raise UserError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)") from None
    except EndpointConnectionError as error:
        raise UserError(f"cannot reach AWS at {error.kwargs.get('endpoint_url', 'its endpoint')}") from None
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        message = str(error.response.get("Error", {}).get("Message", "")).strip()
        if code in _NOT_FOUND:
            raise UserError(_NOT_FOUND[code].format(what=what, message=message)) from None
        if code in _REFUSED:
            raise UserError(f"AWS refused the credentials or the access for {what} ({code}): {message}") from None
        raise
    except BotoCoreError as error:
        raise UserError(f"AWS request for {what} failed: {error}") from None
