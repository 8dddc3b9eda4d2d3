"""The data: one DynamoDB table (call records, transcript turns, fleet state) and the transcripts bucket.

The table's key names, index and TTL attribute come from `callcore.store`, the module that reads and writes them,
so the schema has exactly one definition. Both stores are encrypted with the stack's customer managed key and are
retained when the stack is deleted: call records and transcripts are the business's data.

Nothing personal is kept for ever: the table deletes each item its TTL attribute says (the Lambdas and the relay write
it from the `*RetentionDays` context keys), and the bucket expires transcripts, call summaries and recordings by
prefix. The bucket is versioned (an overwrite or a delete keeps the old version), so an expired object's last version
is deleted NONCURRENT_VERSIONS_EXPIRE_DAYS later.
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
from callcore.transcripts import CALLS_PREFIX, RECORDINGS_PREFIX, TRANSCRIPTS_PREFIX
from infra.constants import (
    ACCESS_LOGS_EXPIRE_DAYS,
    NONCURRENT_VERSIONS_EXPIRE_DAYS,
    TRANSCRIPTS_GLACIER_AFTER_DAYS,
    TRANSCRIPTS_IA_AFTER_DAYS,
)
from infra.settings import DeploySettings


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: DeploySettings) -> None:
        super().__init__(scope, construct_id)
        self._settings = settings
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
            lifecycle_rules=self._transcripts_lifecycle(),
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _transcripts_lifecycle(self) -> list[s3.LifecycleRule]:
        """Cheaper storage as objects age (only the steps before they expire), then expiry by prefix, then the last
        (noncurrent) versions and the delete markers left behind."""
        keep_transcripts = self._settings.transcript_retention_days
        steps = [
            (s3.StorageClass.INFREQUENT_ACCESS, TRANSCRIPTS_IA_AFTER_DAYS),
            (s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, TRANSCRIPTS_GLACIER_AFTER_DAYS),
        ]
        transitions = [
            s3.Transition(storage_class=storage_class, transition_after=Duration.days(days))
            for storage_class, days in steps
            if days < keep_transcripts
        ]
        expiring = (
            ("expire-transcripts", TRANSCRIPTS_PREFIX, keep_transcripts),
            ("expire-call-summaries", CALLS_PREFIX, keep_transcripts),
            ("expire-recordings", RECORDINGS_PREFIX, self._settings.recording_retention_days),
        )
        return [
            s3.LifecycleRule(
                id="cheaper-storage-as-transcripts-age",
                transitions=transitions or None,
                noncurrent_version_expiration=Duration.days(NONCURRENT_VERSIONS_EXPIRE_DAYS),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            ),
            *(
                s3.LifecycleRule(id=rule_id, prefix=f"{prefix}/", expiration=Duration.days(days))
                for rule_id, prefix, days in expiring
            ),
            s3.LifecycleRule(id="remove-expired-delete-markers", expired_object_delete_marker=True),
        ]
