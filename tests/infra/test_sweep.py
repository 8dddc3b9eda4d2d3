"""The end-of-call sweep: scheduled, with the status route's data access plus listing calls by day."""

from __future__ import annotations

import json

from infra.constants import TABLE_UPDATE_AND_QUERY
from tests.infra.synth import Synthesized
from tests.infra.template_queries import actions_of_role, as_list, statements_of_role


def test_the_sweep_runs_every_five_minutes(any_stack: Synthesized):
    function_id = any_stack.logical_id(any_stack.stack.sweep.function)
    function = any_stack.json["Resources"][function_id]["Properties"]
    assert function["Handler"] == "lambdas.handlers.sweep.handler"
    (rule,) = any_stack.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    invoke_permissions = [
        p["Properties"]
        for p in any_stack.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    assert [p["FunctionName"] for p in invoke_permissions] == [{"Fn::GetAtt": [function_id, "Arn"]}]


def test_the_sweep_may_list_calls_by_day_and_do_the_status_routes_work_nothing_more(any_stack: Synthesized):
    function = any_stack.json["Resources"][any_stack.logical_id(any_stack.stack.sweep.function)]["Properties"]
    role_id = function["Role"]["Fn::GetAtt"][0]
    actions = actions_of_role(any_stack, role_id)
    assert {a for a in actions if a.startswith("dynamodb:")} == set(TABLE_UPDATE_AND_QUERY)
    assert {a for a in actions if a.startswith("s3:")} == {"s3:PutObject", "s3:GetObject", "s3:ListBucket"}
    assert "secretsmanager:GetSecretValue" in actions
    table_statement = next(s for s in statements_of_role(any_stack, role_id) if s.get("Sid") == "CallTable")
    resources = json.dumps(as_list(table_statement["Resource"]))
    assert "/index/by_day" in resources  # the one index it reads, by name
    assert "/index/*" not in resources
