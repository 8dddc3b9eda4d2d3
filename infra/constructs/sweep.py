"""The sweep (`lambdas.handlers.sweep`): a scheduled Lambda that finishes ended calls whose end-of-call work failed
(agent seat, outcome, transcript recovery, summary), asks Twilio's REST API about calls whose final status callback
was lost, corrects the agent seat counter from the records, and masks the numbers of finished calls. Without it a
lost message keeps a seat taken, and the fleet's capacity shrinks one lost message at a time."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constants import TABLE_UPDATE_AND_QUERY
from infra.constructs.functions import LambdaPackage
from infra.constructs.secrets import Secrets
from infra.constructs.storage import Storage
from infra.policies import acknowledge_archive_objects, archive_statements, secrets_statement, table_statements

SWEEP_HANDLER = "lambdas.handlers.sweep.handler"
SWEEP_INTERVAL = Duration.minutes(5)
# Finishing a call is a few DynamoDB and S3 requests (and a Twilio REST request for a lost callback); a sweep after
# an outage may have a backlog of them. The seat recount may wait up to 15 s for seats to stop moving.
SWEEP_TIMEOUT = Duration.minutes(2)


class EndOfCallSweep(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: LambdaPackage,
        storage: Storage,
        secrets: Secrets,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        bucket = storage.transcripts_bucket
        self.function: lambda_.Function = package.function(
            self,
            "Function",
            handler=SWEEP_HANDLER,
            description="Every 5 minutes: finishes ended calls, reconciles lost callbacks and seats, masks numbers",
            environment=environment,
            timeout=SWEEP_TIMEOUT,
            memory_mib=512,
            statements=[
                # Lists the last three days' calls through the by-day index, then the status route's own work; Twilio's
                # REST API is reached with the account's credentials from the settings secrets.
                *table_statements(storage.table, storage.key, TABLE_UPDATE_AND_QUERY, include_by_day_index=True),
                *archive_statements(bucket, storage.key, read=True),
                secrets_statement(secrets.lambda_settings),
            ],
        )
        if self.function.role is not None:
            acknowledge_archive_objects(self.function.role, bucket)
        self.rule = events.Rule(
            self,
            "Schedule",
            description="Runs the end-of-call sweep",
            schedule=events.Schedule.rate(SWEEP_INTERVAL),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],  # the next run is the retry
        )
