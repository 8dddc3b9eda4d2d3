"""The local AWS endpoint (a moto server) under concurrent writers, as the load benchmark and a busy local stack
use it: every transaction on one hot item must succeed, as on DynamoDB, and none may be lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

from callcore.local_resources import create_table
from local.moto_endpoint import moto_endpoint

WRITERS = 16
WRITES_EACH = 12


def test_concurrent_transactions_on_one_item_all_succeed_and_all_count() -> None:
    with moto_endpoint() as endpoint:
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 1}, max_pool_connections=WRITERS),
        )
        create_table(client, "seats")
        seat = {"pk": {"S": "SEATS"}, "sk": {"S": "FLEET"}}

        def write(writer: int) -> None:
            for attempt in range(WRITES_EACH):
                call = {"pk": {"S": f"CALL#{writer}-{attempt}"}, "sk": {"S": "RECORD"}, "big": {"S": "x" * 2000}}
                client.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": "seats", "Item": call}},
                        {
                            "Update": {
                                "TableName": "seats",
                                "Key": seat,
                                "UpdateExpression": "ADD taken :one SET #w = :w",
                                "ExpressionAttributeNames": {"#w": f"w{writer}"},
                                "ExpressionAttributeValues": {":one": {"N": "1"}, ":w": {"N": str(attempt)}},
                            }
                        },
                    ]
                )

        with ThreadPoolExecutor(WRITERS) as pool:
            list(pool.map(write, range(WRITERS)))  # re-raises the first failed request

        taken = client.get_item(TableName="seats", Key=seat, ConsistentRead=True)["Item"]["taken"]["N"]
        assert int(taken) == WRITERS * WRITES_EACH
