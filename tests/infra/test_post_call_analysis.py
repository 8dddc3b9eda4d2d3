"""The post-call analysis pipeline as synthesized: S3 events to a queue with a dead-letter queue, the function with
its own OpenAI layer and least privilege, alarms on the dead letters, the analysis Glue table; absent when off."""

from __future__ import annotations

from typing import Any

from callcore.transcripts import AnalysisLine
from infra.constructs.post_call_analysis import ANALYSIS_HANDLER, MAX_RECEIVES
from infra.glue_schema import glue_columns
from tests.infra.synth import Synthesized
from tests.infra.template_queries import as_list, statements_of_role


def analysis_function(stack: Synthesized) -> tuple[str, dict[str, Any]]:
    [(logical_id, function)] = [
        (logical_id, resource)
        for logical_id, resource in stack.resources("AWS::Lambda::Function").items()
        if resource["Properties"].get("Handler") == ANALYSIS_HANDLER
    ]
    return logical_id, function


def test_transcripts_reach_the_analysis_queue_through_s3_events(cloudfront_stack: Synthesized):
    [notifications] = cloudfront_stack.resources("Custom::S3BucketNotifications").values()
    [queue_configuration] = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert queue_configuration["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"]: r["Value"] for r in queue_configuration["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "transcripts/", "suffix": ".jsonl"}


def test_failed_analyses_are_retried_then_dead_lettered_and_alarmed(cloudfront_stack: Synthesized):
    queues = cloudfront_stack.resources("AWS::SQS::Queue")
    [main] = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert main["Properties"]["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES
    dead_letter_id = main["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert queues[dead_letter_id]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    for queue in (main, queues[dead_letter_id]):
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    [mapping] = cloudfront_stack.resources("AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    alarms = [
        a["Properties"]
        for a in cloudfront_stack.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    [alarm] = alarms
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dead_letter_id, "QueueName"]}
    assert alarm["Threshold"] == 1
    assert alarm["AlarmActions"]


def test_the_analysis_function_has_its_own_openai_layer_on_top_of_the_shared_one(cloudfront_stack: Synthesized):
    _, function = analysis_function(cloudfront_stack)
    layers = function["Properties"]["Layers"]
    assert len(layers) == 2  # no package in both (the analysis layer leaves out what the shared one holds)
    others = [
        f
        for f in cloudfront_stack.resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler", "").startswith("lambdas.handlers.")
        and f["Properties"]["Handler"] != ANALYSIS_HANDLER
    ]
    assert others
    [shared] = {str(f["Properties"]["Layers"]) for f in others}
    [analysis_layer] = [layer for layer in layers if str([layer]) != shared]
    assert "Analysis" in analysis_layer["Ref"], "no other function loads the OpenAI SDK"
    environment = function["Properties"]["Environment"]["Variables"]
    assert environment["ANALYSIS_MODEL"] == "gpt-5-mini"
    assert "OPENAI_API_KEY_ARN" in environment
    assert not any(name.startswith("TWILIO") for name in environment)


def test_the_analysis_function_reads_transcripts_and_writes_analyses_only(cloudfront_stack: Synthesized):
    _, function = analysis_function(cloudfront_stack)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = statements_of_role(cloudfront_stack, role)
    by_action: dict[str, list[Any]] = {}
    for statement in statements:
        for action in as_list(statement["Action"]):
            by_action.setdefault(action, []).extend(as_list(statement["Resource"]))
    text = str
    assert all("transcripts/*" in text(r) for r in by_action["s3:GetObject"])
    assert {("analysis/*" in text(r)) or ("calls/*" in text(r)) for r in by_action["s3:PutObject"]} == {True}
    assert "dynamodb:DeleteItem" not in by_action
    assert set(by_action) >= {"dynamodb:GetItem", "dynamodb:UpdateItem", "secretsmanager:GetSecretValue"}
    secrets = [r["Ref"] for r in by_action["secretsmanager:GetSecretValue"]]
    assert len(secrets) == 2
    assert all("OpenAiApiKey" in s or "CallerHashSecret" in s for s in secrets)


def test_the_analysis_table_has_the_analysis_line_columns(cloudfront_stack: Synthesized):
    tables = {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]["TableInput"]
        for t in cloudfront_stack.resources("AWS::Glue::Table").values()
    }
    columns = [(c["Name"], c["Type"]) for c in tables["analysis"]["StorageDescriptor"]["Columns"]]
    assert columns == glue_columns(AnalysisLine)
    assert tables["analysis"]["StorageDescriptor"]["Location"]["Fn::Join"][1][-1] == "/analysis/"


def test_no_analysis_pipeline_when_turned_off(custom_domain_stack: Synthesized):
    assert not custom_domain_stack.resources("AWS::SQS::Queue")
    assert not custom_domain_stack.resources("AWS::Lambda::EventSourceMapping")
    handlers = {f["Properties"].get("Handler") for f in custom_domain_stack.resources("AWS::Lambda::Function").values()}
    assert ANALYSIS_HANDLER not in handlers
