"""Create the call table and the transcripts bucket on a local AWS endpoint (a moto server) for local runs and tests.

    AWS_ENDPOINT_URL=http://127.0.0.1:5000 python -m callcore.local_resources

The table's keys and index are the ones `infra/` provisions (both read `callcore.store`'s names).
Refuses to run without `AWS_ENDPOINT_URL`, so it can never create resources in a real account by accident.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from callcore.aws import dynamodb_client, s3_client
from callcore.settings import SettingsError, StorageSettings
from callcore.store import BY_DAY_INDEX, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client


def create_table(client: DynamoDBClient, name: str) -> None:
    try:
        client.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "gsi1pk", "gsi1sk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": BY_DAY_INDEX,
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        return
    client.get_waiter("table_exists").wait(TableName=name)
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )


def create_bucket(client: S3Client, name: str) -> None:
    region = client.meta.region_name
    try:
        if region and region != "us-east-1":
            client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
        else:
            client.create_bucket(Bucket=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise


def main() -> int:
    if not os.environ.get("AWS_ENDPOINT_URL"):
        print("AWS_ENDPOINT_URL is not set: this command only creates resources on a local endpoint", file=sys.stderr)
        return 2
    try:
        storage = StorageSettings.from_env()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    create_table(dynamodb_client(), storage.calls_table)
    create_bucket(s3_client(), storage.transcripts_bucket)
    print(
        f"ready: table {storage.calls_table}, bucket {storage.transcripts_bucket} at {os.environ['AWS_ENDPOINT_URL']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
