"""Alarms, dashboard, and the Glue/Athena layer over the archive."""

from __future__ import annotations

import json

import pytest

from callcore.metric_names import LambdaMetric, RelayMetric
from callcore.transcripts import CallSummaryLine, TranscriptLine
from infra.constants import CALL_CONTROL_5XX_METRIC, STATUS_CALLBACK_4XX_METRIC
from infra.constructs.analytics import CALLS_TABLE, TRANSCRIPTS_TABLE, calls_column, saved_queries
from infra.glue_schema import SchemaError, glue_columns
from tests.infra.synth import Synthesized
from tests.infra.template_queries import container_environment


def alarms_by_metric(stack: Synthesized) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = {}
    for alarm in stack.resources("AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        found.setdefault(str(properties.get("MetricName")), []).append(properties)
    return found


def test_the_alarms_come_with_the_stack(any_stack: Synthesized):
    alarms = alarms_by_metric(any_stack)
    assert len(alarms["Errors"]) == len(any_stack.stack.api.functions) + 1  # one per Lambda, the sweep included
    (api_5xx,) = alarms["5XXError"]
    assert api_5xx["Namespace"] == "AWS/ApiGateway"
    (call_control,) = alarms[CALL_CONTROL_5XX_METRIC]
    assert call_control["Namespace"] == any_stack.context.get("stackName", "PhoneVoiceAgent")
    (healthy,) = alarms["HealthyHostCount"]
    assert healthy["ComparisonOperator"] == "LessThanThreshold"
    assert healthy["Threshold"] == 1
    assert healthy["TreatMissingData"] == "breaching"
    (model,) = alarms[RelayMetric.MODEL_ERRORS.value]
    assert model["Dimensions"] == [{"Name": "Service", "Value": "relay"}]
    (greeting,) = alarms[RelayMetric.GREETING_LATENCY.value]
    assert greeting["ExtendedStatistic"] == "p95"
    assert greeting["Threshold"] == any_stack.context.get("greetingLatencyAlarmMs", 500)
    topic_id = next(iter(any_stack.resources("AWS::SNS::Topic")))
    for alarm in any_stack.resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]


def access_log_filters(stack: Synthesized) -> dict[str, str]:
    """Metric name -> the filter pattern that counts it from the API's access log."""
    return {
        f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]["FilterPattern"]
        for f in stack.resources("AWS::Logs::MetricFilter").values()
    }


def test_call_control_5xx_comes_from_the_access_log(any_stack: Synthesized):
    pattern = access_log_filters(any_stack)[CALL_CONTROL_5XX_METRIC]
    assert '$.resourcePath = "/calls*"' in pattern
    assert "$.status >= 500" in pattern


def test_refused_status_callbacks_are_counted_and_alarmed(any_stack: Synthesized):
    pattern = access_log_filters(any_stack)[STATUS_CALLBACK_4XX_METRIC]
    assert '$.resourcePath = "/twilio/status"' in pattern
    assert "$.status >= 400" in pattern
    assert "$.status < 500" in pattern
    (alarm,) = alarms_by_metric(any_stack)[STATUS_CALLBACK_4XX_METRIC]
    assert alarm["Namespace"] == any_stack.context.get("stackName", "PhoneVoiceAgent")
    assert alarm["Statistic"] == "Sum"
    assert alarm["Period"] == 300
    assert alarm["TreatMissingData"] == "notBreaching"


def test_seat_drift_and_the_daily_cost_are_alarmed(any_stack: Synthesized):
    alarms = alarms_by_metric(any_stack)
    (drift,) = alarms[LambdaMetric.SEAT_DRIFT.value]
    assert drift["Dimensions"] == [{"Name": "service", "Value": "phone-agent"}]
    assert (drift["Statistic"], drift["Threshold"], drift["ComparisonOperator"]) == (
        "Sum",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    (cost,) = alarms[RelayMetric.CALL_COST.value]
    assert cost["Dimensions"] == [{"Name": "Service", "Value": "relay"}]
    assert (cost["Statistic"], cost["Period"]) == ("Sum", 86400)
    assert cost["Threshold"] == any_stack.context.get("dailyCostBudgetUsd", 50)
    assert cost["ComparisonOperator"] == "GreaterThanThreshold"


def test_alarm_email_only_when_given(cloudfront_stack: Synthesized, custom_domain_stack: Synthesized):
    assert not cloudfront_stack.resources("AWS::SNS::Subscription")
    subscription = custom_domain_stack.only("AWS::SNS::Subscription")["Properties"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ops@example.com")


def test_the_alarm_topic_is_encrypted_and_cloudwatch_may_use_its_key(any_stack: Synthesized):
    topic = any_stack.only("AWS::SNS::Topic")["Properties"]
    key_id = any_stack.logical_id(any_stack.stack.storage.key)
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key_policy = any_stack.json["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in key_policy)


def test_dashboard_shows_the_contract_metrics(any_stack: Synthesized):
    body = json.dumps(any_stack.only("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    missing = [m.value for m in (*RelayMetric, *LambdaMetric) if f'\\"{m.value}\\"' not in body]
    assert missing == []


# ---- analytics -------------------------------------------------------------------------------------------------------
def test_glue_columns_are_derived_from_the_archive_line_models(any_stack: Synthesized):
    tables = {
        t["Properties"]["TableInput"]["Name"]: t["Properties"] for t in any_stack.resources("AWS::Glue::Table").values()
    }
    assert set(tables) == {TRANSCRIPTS_TABLE, CALLS_TABLE}
    for name, model, prefix in (
        (TRANSCRIPTS_TABLE, TranscriptLine, "transcripts"),
        (CALLS_TABLE, CallSummaryLine, "calls"),
    ):
        table_input = tables[name]["TableInput"]
        columns = [(c["Name"], c["Type"]) for c in table_input["StorageDescriptor"]["Columns"]]
        assert columns == glue_columns(model)
        assert [c["Name"] for c in table_input["PartitionKeys"]] == ["year", "month", "day"]
        parameters = table_input["Parameters"]
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.month.digits"] == "2"
        template = json.dumps(parameters["storage.location.template"])
        assert f"/{prefix}/year=${{year}}/month=${{month}}/day=${{day}}/" in template
        assert (
            table_input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
            == "org.openx.data.jsonserde.JsonSerDe"
        )


def test_glue_types_of_nested_and_optional_fields():
    columns = dict(glue_columns(TranscriptLine))
    assert columns["heard_ms"] == "bigint"  # int | None
    assert columns["tool_calls"].startswith("array<struct<call_id:string,name:string,")
    assert dict(glue_columns(CallSummaryLine))["estimated_cost_usd"] == "double"

    from pydantic import BaseModel

    class Ambiguous(BaseModel):
        value: int | str

    with pytest.raises(SchemaError, match=r"Ambiguous\.value"):
        glue_columns(Ambiguous)


def test_saved_queries_target_the_workgroup_and_known_columns(any_stack: Synthesized):
    queries = any_stack.resources("AWS::Athena::NamedQuery")
    database = any_stack.stack.analytics.database_name
    assert {q["Properties"]["Name"] for q in queries.values()} == set(saved_queries(database))
    workgroup_id = next(iter(any_stack.resources("AWS::Athena::WorkGroup")))
    for query in queries.values():
        assert query["Properties"]["WorkGroup"] == {"Ref": workgroup_id}
        assert query["Properties"]["Database"] == database
        assert f'"{database}"."calls"' in query["Properties"]["QueryString"]
    with pytest.raises(ValueError, match="no field"):
        calls_column("caller_number")


def test_each_stack_emits_and_watches_its_own_metrics_namespace(any_stack: Synthesized):
    """Two stacks in one account and region (staging, production) must not share scaling, alarms or dashboards."""
    namespace = any_stack.context.get("stackName", "PhoneVoiceAgent")
    assert container_environment(any_stack)["METRICS_NAMESPACE"] == namespace
    for function in any_stack.stack.api.functions.values():
        variables = any_stack.json["Resources"][any_stack.logical_id(function)]["Properties"]["Environment"][
            "Variables"
        ]
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == namespace
    custom = [
        alarm["Properties"]["Namespace"]
        for alarm in any_stack.resources("AWS::CloudWatch::Alarm").values()
        if "Namespace" in alarm["Properties"] and not alarm["Properties"]["Namespace"].startswith("AWS/")
    ]
    assert custom
    assert set(custom) == {namespace}
    for metric_filter in any_stack.resources("AWS::Logs::MetricFilter").values():
        assert {t["MetricNamespace"] for t in metric_filter["Properties"]["MetricTransformations"]} == {namespace}
