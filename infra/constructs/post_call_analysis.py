"""Post-call analysis (`lambdas.handlers.post_call_analysis`): each new transcript in the bucket (an S3
object-created event under `transcripts/`) goes to a queue; a Lambda reads batches of them, asks the OpenAI text
model about each call and stores the analysis. A message that keeps failing moves to a dead-letter queue after
MAX_RECEIVES deliveries, and an alarm says so: nothing is lost, and the messages can be moved back (DEPLOY.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3_notifications
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from callcore.transcripts import ANALYSIS_PREFIX, CALLS_PREFIX, TRANSCRIPTS_PREFIX
from infra.constants import TABLE_UPDATE
from infra.constructs.functions import LambdaPackage
from infra.constructs.secrets import Secrets
from infra.constructs.storage import Storage
from infra.nag import acknowledge
from infra.policies import acknowledge_prefix_objects, prefix_statements, secrets_statement, table_statements

ANALYSIS_HANDLER = "lambdas.handlers.post_call_analysis.handler"
# A batch of transcripts, each one request to the text model (the SDK retries twice within it).
ANALYSIS_TIMEOUT = Duration.seconds(120)
ANALYSIS_BATCH_SIZE = 5
# Bounds the requests in flight to OpenAI (and the Lambda concurrency) when many calls end at once.
ANALYSIS_MAX_CONCURRENCY = 5
MAX_RECEIVES = 3
# The id CDK gives the singleton custom-resource handler behind `Bucket.add_event_notification`.
BUCKET_NOTIFICATIONS_HANDLER = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
DEAD_LETTER_RETENTION = Duration.days(14)
# AWS's advice for SQS-fed functions: a visibility timeout of at least six times the function's timeout.
VISIBILITY_TIMEOUT = Duration.seconds(ANALYSIS_TIMEOUT.to_seconds() * 6)


class PostCallAnalysis(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: LambdaPackage,
        storage: Storage,
        secrets: Secrets,
        environment: Mapping[str, str],
        model: str,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            retention_period=DEAD_LETTER_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            visibility_timeout=VISIBILITY_TIMEOUT,
            # S3 cannot send to a queue encrypted with a customer managed key without a key policy for it; SQS's
            # own encryption needs none. The messages hold object keys, never call content.
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVES, queue=self.dead_letter_queue),
        )
        bucket = storage.transcripts_bucket
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3_notifications.SqsDestination(self.queue),
            s3.NotificationKeyFilter(prefix=f"{TRANSCRIPTS_PREFIX}/", suffix=".jsonl"),
        )
        self._acknowledge_notifications_handler()
        self.function = self._build_function(package, storage, secrets, environment, model)
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=ANALYSIS_BATCH_SIZE,
                max_batching_window=Duration.seconds(10),
                report_batch_item_failures=True,
                max_concurrency=ANALYSIS_MAX_CONCURRENCY,
            )
        )
        self.alarms = self._build_alarms(alarm_topic)

    def _acknowledge_notifications_handler(self) -> None:
        """CDK configures bucket notifications through a custom resource of its own (one per stack, inline code)."""
        handler = Stack.of(self).node.try_find_child(BUCKET_NOTIFICATIONS_HANDLER)
        if handler is None:
            raise RuntimeError(f"CDK no longer names its bucket-notifications handler {BUCKET_NOTIFICATIONS_HANDLER}")
        acknowledge(
            handler,
            "AwsSolutions-IAM4",
            "CDK's own bucket-notifications custom resource (runs only during deploys) logs through the AWS "
            "managed basic execution policy; its other permission is PutBucketNotification on this stack's bucket.",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        )

    def _build_function(
        self,
        package: LambdaPackage,
        storage: Storage,
        secrets: Secrets,
        environment: Mapping[str, str],
        model: str,
    ) -> lambda_.Function:
        bucket = storage.transcripts_bucket
        readable, writable = (TRANSCRIPTS_PREFIX,), (ANALYSIS_PREFIX, CALLS_PREFIX)
        function = package.function(
            self,
            "Function",
            handler=ANALYSIS_HANDLER,
            description="Post-call analysis: asks an OpenAI text model about each new transcript",
            environment={
                **environment,
                "OPENAI_API_KEY_ARN": secrets.openai_api_key.secret_arn,
                "ANALYSIS_MODEL": model,
            },
            timeout=ANALYSIS_TIMEOUT,
            memory_mib=512,
            statements=[
                *table_statements(storage.table, storage.key, TABLE_UPDATE),
                *prefix_statements(bucket, storage.key, read=readable, write=writable),
                # The OpenAI key for the model, the caller-hash secret for the call summary it rewrites.
                secrets_statement([secrets.openai_api_key, secrets.caller_hash_secret]),
            ],
            extra_layers=[package.analysis_layer],
        )
        if function.role is not None:
            acknowledge_prefix_objects(function.role, bucket, [*readable, *writable])
        return function

    def _build_alarms(self, topic: sns.ITopic) -> list[cloudwatch.Alarm]:
        action = cloudwatch_actions.SnsAction(topic)
        dead_letters = cloudwatch.Alarm(
            self,
            "DeadLettersAlarm",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Post-call analyses failed three times and wait in the dead-letter queue (the OpenAI "
            "key, quota or model?). Look at the analysis function's log, then redrive the queue (DEPLOY.md).",
        )
        errors = cloudwatch.Alarm(
            self,
            "ErrorsAlarm",
            metric=self.function.metric_errors(period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM),
            threshold=1,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="The post-call analysis Lambda failed a whole batch. Look at its log group.",
        )
        for alarm in (dead_letters, errors):
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the analysis queue; its messages are alarmed and redriven by hand.",
        )
        return [dead_letters, errors]
