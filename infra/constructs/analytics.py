"""SQL over the archive: a Glue database with two tables (transcript turns, call summaries) and an Athena workgroup
whose results are KMS-encrypted (enforced), with a few saved queries to start from.

Columns come from the archive's own line models (infra.glue_schema); partitions (year/month/day, as the archive lays
the files out) are computed by partition projection, so no crawler and no `MSCK REPAIR` is ever needed.
"""

from __future__ import annotations

import re

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct
from pydantic import BaseModel

from callcore.transcripts import (
    ANALYSIS_PREFIX,
    CALLS_PREFIX,
    TRANSCRIPTS_PREFIX,
    AnalysisLine,
    CallSummaryLine,
    TranscriptLine,
)
from infra.constants import (
    ATHENA_BYTES_SCANNED_CUTOFF,
    ATHENA_PROJECTION_FIRST_YEAR,
    ATHENA_PROJECTION_LAST_YEAR,
    ATHENA_RESULTS_EXPIRE_DAYS,
)
from infra.glue_schema import glue_columns

TRANSCRIPTS_TABLE = "transcripts"
CALLS_TABLE = "calls"
ANALYSIS_TABLE = "analysis"
PARTITION_COLUMNS = ("year", "month", "day")
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"


def glue_database_name(stack_name: str) -> str:
    """Athena identifiers: lower case, letters, digits and underscores."""
    return re.sub(r"[^a-z0-9_]", "_", stack_name.lower()) + "_analytics"


def calls_column(name: str) -> str:
    """A column of the calls table, checked against CallSummaryLine at synth: a renamed field fails the synth."""
    if name not in CallSummaryLine.model_fields:
        raise ValueError(f"CallSummaryLine has no field {name!r}; update the saved queries")
    return name


def _last_30_days(table: str) -> str:
    # The year predicate prunes projected partitions; the timestamp one is exact.
    created = calls_column("created_at")
    return (
        f"FROM {table}\n"
        f"WHERE \"year\" >= date_format(current_date - interval '30' day, '%Y')\n"
        f"  AND date(from_iso8601_timestamp({created})) >= current_date - interval '30' day"
    )


def _day() -> str:
    return 'concat("year", \'-\', "month", \'-\', "day")'  # quoted: partition columns named like functions


def saved_queries(database: str) -> dict[str, tuple[str, str]]:
    """name -> (description, SQL) over the calls table of `database`."""
    calls = f'"{database}"."{CALLS_TABLE}"'
    outcome, duration = calls_column("outcome"), calls_column("duration_seconds")
    transferred, cost = calls_column("transferred"), calls_column("estimated_cost_usd")
    greeting, turn50, turn95 = calls_column("greeting_ms"), calls_column("turn_p50_ms"), calls_column("turn_p95_ms")
    return {
        "calls-per-day-by-outcome": (
            "Calls per day over the last 30 days, by outcome, with their average length",
            f"SELECT {_day()} AS call_day, coalesce({outcome}, 'unknown') AS outcome, count(*) AS calls,\n"
            f"       round(avg({duration}), 1) AS avg_seconds\n"
            f"{_last_30_days(calls)}\n"
            "GROUP BY 1, 2\nORDER BY 1 DESC, 3 DESC",
        ),
        "transfer-rate-per-day": (
            "Share of calls handed to a human, per day, over the last 30 days",
            f"SELECT {_day()} AS call_day, count(*) AS calls, count_if({transferred}) AS transferred,\n"
            f"       round(100.0 * count_if({transferred}) / count(*), 1) AS transfer_rate_pct\n"
            f"{_last_30_days(calls)}\n"
            "GROUP BY 1\nORDER BY 1 DESC",
        ),
        "latency-percentiles-per-day": (
            "Greeting and turn latency percentiles (ms) per day over the last 30 days",
            f"SELECT {_day()} AS call_day, count(*) AS calls,\n"
            f"       approx_percentile({greeting}, 0.5) AS greeting_p50_ms,\n"
            f"       approx_percentile({greeting}, 0.95) AS greeting_p95_ms,\n"
            f"       approx_percentile({turn50}, 0.5) AS median_call_turn_p50_ms,\n"
            f"       approx_percentile({turn95}, 0.95) AS p95_call_turn_p95_ms\n"
            f"{_last_30_days(calls)}\n"
            "GROUP BY 1\nORDER BY 1 DESC",
        ),
        "model-cost-per-day": (
            "Estimated OpenAI cost per day and per call minute over the last 30 days",
            f"SELECT {_day()} AS call_day, count(*) AS calls,\n"
            f"       round(sum({duration}) / 60.0, 1) AS call_minutes,\n"
            f"       round(sum({cost}), 2) AS model_cost_usd,\n"
            f"       round(sum({cost}) / nullif(sum({duration}) / 60.0, 0), 4) AS usd_per_call_minute\n"
            f"{_last_30_days(calls)}\n"
            "GROUP BY 1\nORDER BY 1 DESC",
        ),
    }


class Analytics(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stack_name: str,
        transcripts_bucket: s3.IBucket,
        access_logs_bucket: s3.IBucket,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = glue_database_name(stack_name)
        self.workgroup_name = f"{stack_name}-analytics"
        self._transcripts_bucket = transcripts_bucket
        self.results_bucket = self._build_results_bucket(access_logs_bucket, key)
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="Phone voice agent: call summaries and transcripts (S3)"
            ),
        )
        self.tables = {
            TRANSCRIPTS_TABLE: self._build_table(
                TRANSCRIPTS_TABLE, TRANSCRIPTS_PREFIX, TranscriptLine, "One row per conversation turn"
            ),
            CALLS_TABLE: self._build_table(
                CALLS_TABLE, CALLS_PREFIX, CallSummaryLine, "One row per call (numbers masked and hashed)"
            ),
            ANALYSIS_TABLE: self._build_table(
                ANALYSIS_TABLE, ANALYSIS_PREFIX, AnalysisLine, "One row per analyzed call: the post-call analysis"
            ),
        }
        self.workgroup = self._build_workgroup(key)
        self._build_saved_queries()

    def _build_results_bucket(self, access_logs_bucket: s3.IBucket, key: kms.IKey) -> s3.Bucket:
        return s3.Bucket(
            self,
            "QueryResultsBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=access_logs_bucket,
            server_access_logs_prefix="s3/athena-results/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-query-results",
                    expiration=Duration.days(ATHENA_RESULTS_EXPIRE_DAYS),
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _build_table(self, name: str, prefix: str, model: type[BaseModel], description: str) -> glue.CfnTable:
        location = f"s3://{self._transcripts_bucket.bucket_name}/{prefix}/"
        projection = {
            "projection.enabled": "true",
            "projection.year.type": "integer",
            "projection.year.range": f"{ATHENA_PROJECTION_FIRST_YEAR},{ATHENA_PROJECTION_LAST_YEAR}",
            "projection.month.type": "integer",
            "projection.month.range": "1,12",
            "projection.month.digits": "2",
            "projection.day.type": "integer",
            "projection.day.range": "1,31",
            "projection.day.digits": "2",
            "storage.location.template": location + "year=${year}/month=${month}/day=${day}/",
        }
        table = glue.CfnTable(
            self,
            f"{name.capitalize()}Table",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=name,
                description=description,
                table_type="EXTERNAL_TABLE",
                parameters={"classification": "json", "EXTERNAL": "TRUE", **projection},
                partition_keys=[
                    glue.CfnTable.ColumnProperty(name=column, type="string") for column in PARTITION_COLUMNS
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=JSON_SERDE),
                    columns=[
                        glue.CfnTable.ColumnProperty(name=column, type=glue_type)
                        for column, glue_type in glue_columns(model)
                    ],
                ),
            ),
        )
        table.node.add_dependency(self.database)
        return table

    def _build_workgroup(self, key: kms.IKey) -> athena.CfnWorkGroup:
        return athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=self.workgroup_name,
            description="Queries over the phone voice agent's calls and transcripts",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,  # nobody can write unencrypted results elsewhere
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=ATHENA_BYTES_SCANNED_CUTOFF,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.results_bucket.bucket_name}/results/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=key.key_arn
                    ),
                ),
            ),
        )

    def _build_saved_queries(self) -> None:
        for name, (description, sql) in saved_queries(self.database_name).items():
            query = athena.CfnNamedQuery(
                self,
                "".join(part.capitalize() for part in name.split("-")) + "Query",
                name=name,
                description=description,
                database=self.database_name,
                work_group=self.workgroup.ref,
                query_string=sql,
            )
            query.node.add_dependency(self.database)
