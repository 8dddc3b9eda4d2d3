"""IAM statements written out action by action (no wildcard actions anywhere in this app), shared by the Lambda roles
and the relay's task role so "may write transcripts" means the same thing for both.

CDK's `grant*` helpers are not used for data access: they add wildcard actions (`s3:Abort*`, `kms:GenerateDataKey*`,
`kms:ReEncrypt*`) and operations our code never calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import IConstruct

from callcore.store import BY_DAY_INDEX
from callcore.store.receptionist_profiles import CATALOG_PK, profile_pk
from callcore.transcripts import CALLS_PREFIX, TRANSCRIPTS_PREFIX
from infra.nag import acknowledge, resource_finding

ARCHIVE_PREFIXES = (TRANSCRIPTS_PREFIX, CALLS_PREFIX)
# DynamoDB with a customer managed key: callers need the key for reads and writes (DynamoDB calls KMS on their behalf).
TABLE_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")


def table_statements(
    table: dynamodb.ITable, key: kms.IKey, actions: Sequence[str], *, include_by_day_index: bool = False
) -> list[iam.PolicyStatement]:
    if not actions:
        return []
    resources = [table.table_arn]
    if include_by_day_index:
        resources.append(f"{table.table_arn}/index/{BY_DAY_INDEX}")
    return [
        iam.PolicyStatement(sid="CallTable", actions=list(actions), resources=resources),
        table_key_statement(key),
    ]


def table_key_statement(key: kms.IKey) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="CallTableKey", actions=list(TABLE_KEY_ACTIONS), resources=[key.key_arn])


# The receptionist profiles' items in the call table (the catalog, every version of every profile), by partition key.
PROFILE_PARTITIONS = (CATALOG_PK, profile_pk("*"))
PROFILE_READ_ACTIONS = ("dynamodb:GetItem",)
PROFILE_PUBLISH_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query")


def profile_items_statement(table: dynamodb.ITable, actions: Sequence[str], *, sid: str) -> iam.PolicyStatement:
    """`actions` on the receptionist profiles' items only (`dynamodb:LeadingKeys`); the role needs the table key too."""
    return iam.PolicyStatement(
        sid=sid,
        actions=list(actions),
        resources=[table.table_arn],
        conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(PROFILE_PARTITIONS)}},
    )


def archive_statements(bucket: s3.IBucket, key: kms.IKey, *, read: bool) -> list[iam.PolicyStatement]:
    """Write (and optionally read) transcripts and call summaries, nothing else in the bucket."""
    object_arns = archive_object_arns(bucket)
    statements = [
        iam.PolicyStatement(
            sid="ArchiveObjects",
            actions=["s3:PutObject", *(["s3:GetObject"] if read else [])],
            resources=object_arns,
        ),
        iam.PolicyStatement(
            sid="ArchiveKey",
            actions=["kms:GenerateDataKey", *(["kms:Decrypt"] if read else [])],
            resources=[key.key_arn],
        ),
    ]
    if read:
        # Without ListBucket, S3 answers 403 instead of 404 for a missing key, and "is the transcript there yet?"
        # cannot be told apart from "access denied".
        statements.append(
            iam.PolicyStatement(sid="ArchiveList", actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )
    return statements


def archive_object_arns(bucket: s3.IBucket) -> list[str]:
    return [bucket.arn_for_objects(f"{prefix}/*") for prefix in ARCHIVE_PREFIXES]


ARCHIVE_WILDCARD_REASON = (
    "Objects under the archive prefixes only (transcripts/, calls/): one object per call, keys unknown in advance."
)


def acknowledge_archive_objects(role: IConstruct, bucket: s3.IBucket) -> None:
    """The cdk-nag IAM5 acknowledgement every role given `archive_statements` needs (object ARNs by prefix)."""
    findings = [resource_finding(role, arn) for arn in archive_object_arns(bucket)]
    acknowledge(role, "AwsSolutions-IAM5", ARCHIVE_WILDCARD_REASON, *findings)


def secrets_statement(secrets: Iterable[secretsmanager.ISecret]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="ReadSecrets", actions=["secretsmanager:GetSecretValue"], resources=[s.secret_arn for s in secrets]
    )


def prefix_object_arns(bucket: s3.IBucket, prefixes: Iterable[str]) -> list[str]:
    return [bucket.arn_for_objects(f"{prefix}/*") for prefix in prefixes]


def prefix_statements(
    bucket: s3.IBucket, key: kms.IKey, *, read: Sequence[str] = (), write: Sequence[str] = ()
) -> list[iam.PolicyStatement]:
    """Read objects under the `read` prefixes and write objects under the `write` prefixes of the bucket, nothing
    else (with the KMS actions each needs, and ListBucket so a missing object is a 404, not a 403)."""
    statements = []
    if read:
        statements.append(
            iam.PolicyStatement(sid="ReadObjects", actions=["s3:GetObject"], resources=prefix_object_arns(bucket, read))
        )
        statements.append(
            iam.PolicyStatement(sid="ListObjects", actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )
    if write:
        statements.append(
            iam.PolicyStatement(
                sid="WriteObjects", actions=["s3:PutObject"], resources=prefix_object_arns(bucket, write)
            )
        )
    key_actions = [*(["kms:Decrypt"] if read else []), *(["kms:GenerateDataKey"] if write else [])]
    statements.append(iam.PolicyStatement(sid="ObjectsKey", actions=key_actions, resources=[key.key_arn]))
    return statements


def acknowledge_prefix_objects(role: IConstruct, bucket: s3.IBucket, prefixes: Iterable[str]) -> None:
    """The cdk-nag IAM5 acknowledgement of `prefix_statements`' object ARNs (one object per call, keys unknown)."""
    findings = [resource_finding(role, arn) for arn in prefix_object_arns(bucket, sorted(set(prefixes)))]
    reason = f"Objects under the prefixes {', '.join(sorted(set(prefixes)))} only: one object per call, keys unknown."
    acknowledge(role, "AwsSolutions-IAM5", reason, *findings)
