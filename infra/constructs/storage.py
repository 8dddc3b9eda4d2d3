"""The data: one DynamoDB table (call records, transcript turns, fleet state) and the transcripts bucket.

The table's key names, index and TTL attribute come from `callcore.store`, the module that reads and writes them,
so the schema has exactly one definition. Both stores are encrypted with the stack's customer managed key and are
retained when the stack is deleted: call records and transcripts are the business's data.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from callcore.store import (
    BY_DAY_INDEX,
    BY_DAY_PARTITION_KEY,
    BY_DAY_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from callcore.transcripts import RECORDINGS_PREFIX
from infra.constants import (
    ACCESS_LOGS_EXPIRE_DAYS,
    NONCURRENT_VERSIONS_EXPIRE_DAYS,
    TRANSCRIPTS_GLACIER_AFTER_DAYS,
    TRANSCRIPTS_IA_AFTER_DAYS,
)


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, recording_retention_days: int) -> None:
        super().__init__(scope, construct_id)
        self._recording_retention = Duration.days(recording_retention_days)
        self.key = self._build_key()
        self.access_logs_bucket = self._build_access_logs_bucket()
        self.table = self._build_table()
        self.transcripts_bucket = self._build_transcripts_bucket()

    def _build_key(self) -> kms.Key:
        return kms.Key(
            self,
            "DataKey",
            description="Phone voice agent: call records, transcripts, query results, alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,  # the retained table and bucket stay readable after a stack delete
        )

    def _build_access_logs_bucket(self) -> s3.Bucket:
        return s3.Bucket(
            self,
            "AccessLogsBucket",
            # S3 server access logs and ALB access logs can only be delivered to SSE-S3 buckets (not SSE-KMS).
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(ACCESS_LOGS_EXPIRE_DAYS),
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _build_table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "CallsTable",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        table.add_global_secondary_index(
            index_name=BY_DAY_INDEX,
            partition_key=dynamodb.Attribute(name=BY_DAY_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=BY_DAY_SORT_KEY, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        return table

    def _build_transcripts_bucket(self) -> s3.Bucket:
        return s3.Bucket(
            self,
            "TranscriptsBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,  # one KMS call per bucket key period instead of one per object
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="s3/transcripts/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="cheaper-storage-as-transcripts-age",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(TRANSCRIPTS_IA_AFTER_DAYS),
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(TRANSCRIPTS_GLACIER_AFTER_DAYS),
                        ),
                    ],
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSIONS_EXPIRE_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                # Voices are kept only as long as the business chose (recordingRetentionDays), old versions a day.
                s3.LifecycleRule(
                    id="expire-call-recordings",
                    prefix=f"{RECORDINGS_PREFIX}/",
                    expiration=self._recording_retention,
                    noncurrent_version_expiration=Duration.days(1),
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
