"""The REST API: every contract route, its auth type, one function and one least-privilege role per route."""

from __future__ import annotations

import json

import pytest

from infra.constants import API_STAGE, ROUTES, RouteAuth
from tests.infra.synth import CLOUDFRONT_CONTEXT, Synthesized, synthesize
from tests.infra.template_queries import (
    actions_of_role,
    api_routes,
    as_list,
    identity_statements,
    integration_function,
    statements_of_role,
)

CONTRACT_ROUTES = {
    ("POST", "/twilio/incoming"): ("lambdas.handlers.incoming_call.handler", "NONE"),
    ("POST", "/twilio/status"): ("lambdas.handlers.call_status.handler", "NONE"),
    ("POST", "/twilio/stream-status"): ("lambdas.handlers.stream_status.handler", "NONE"),
    ("POST", "/twilio/fallback"): ("lambdas.handlers.fallback.handler", "NONE"),
    ("POST", "/twilio/recording-status"): ("lambdas.handlers.recording_status.handler", "NONE"),
    ("GET", "/twilio/whisper"): ("lambdas.handlers.whisper.handler", "NONE"),
    ("POST", "/twilio/whisper"): ("lambdas.handlers.whisper.handler", "NONE"),
    ("POST", "/calls"): ("lambdas.handlers.outbound_call.handler", "AWS_IAM"),
    ("POST", "/calls/{callSid}/transfer"): ("lambdas.handlers.transfer.handler", "AWS_IAM"),
    ("POST", "/calls/{callSid}/hangup"): ("lambdas.handlers.hangup.handler", "AWS_IAM"),
}
LAMBDA_ENVIRONMENT_CONTRACT = {
    "CALLS_TABLE",
    "TRANSCRIPTS_BUCKET",
    "RELAY_PUBLIC_URL",
    "TWILIO_AUTH_TOKEN_ARN",
    "TWILIO_ACCOUNT_SID_ARN",
    "CALLER_HASH_SECRET_ARN",
    "MAX_CONCURRENT_CALLS",
    "MAX_LIVE_CALLS_PER_CALLER",
    "MAX_LIVE_WITHHELD_CALLS",
    "MAX_CALL_SECONDS",
    "RAW_NUMBER_RETENTION_HOURS",
    "CALL_RECORD_RETENTION_DAYS",
    "TURN_RETENTION_DAYS",
    "BOOKING_RETENTION_DAYS",
    "ANSWERING_MACHINE_DETECTION",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
}


def test_every_contract_route_exists_with_its_auth_type_and_handler(any_stack: Synthesized):
    routes = api_routes(any_stack)
    functions = any_stack.resources("AWS::Lambda::Function")
    assert set(routes) == set(CONTRACT_ROUTES)
    for key, (handler, auth) in CONTRACT_ROUTES.items():
        method = routes[key]
        assert method["AuthorizationType"] == auth, key
        assert method["Integration"]["Type"] == "AWS_PROXY"
        function = functions[integration_function(method)]["Properties"]
        assert function["Handler"] == handler, key
        assert function["Runtime"] == "python3.12"


def test_twilio_routes_leave_the_signature_check_to_the_handler(any_stack: Synthesized):
    # A gateway-level header requirement would answer a missing X-Twilio-Signature with a 400 that no Lambda sees:
    # no 403, no RejectedSignatures metric. The handler checks presence and validity.
    validators = any_stack.resources("AWS::ApiGateway::RequestValidator")
    (validator,) = validators.values()
    assert validator["Properties"]["ValidateRequestParameters"] is True
    for (verb, path), method in api_routes(any_stack).items():
        if path.startswith("/twilio/"):
            assert "RequestParameters" not in method, (verb, path)
            assert "RequestValidatorId" not in method, (verb, path)
        else:
            assert method["RequestValidatorId"] == {"Ref": next(iter(validators))}, (verb, path)


def test_one_function_and_one_role_per_route(any_stack: Synthesized):
    routes = api_routes(any_stack)
    function_ids = {integration_function(method) for method in routes.values()}
    assert len(function_ids) == len(ROUTES)
    functions = any_stack.resources("AWS::Lambda::Function")
    roles = [functions[f]["Properties"]["Role"]["Fn::GetAtt"][0] for f in function_ids]
    assert len(set(roles)) == len(ROUTES)


def test_functions_get_the_contract_environment_architecture_and_layer(any_stack: Synthesized):
    architecture = "arm64" if any_stack.context.get("architecture", "arm64") == "arm64" else "x86_64"
    layer_id = any_stack.logical_id(any_stack.stack.lambda_package.layer)
    for function in any_stack.stack.api.functions.values():
        properties = any_stack.json["Resources"][any_stack.logical_id(function)]["Properties"]
        assert set(properties["Environment"]["Variables"]) >= LAMBDA_ENVIRONMENT_CONTRACT
        namespace = any_stack.context.get("stackName", "PhoneVoiceAgent")
        assert properties["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == namespace
        # No pydantic plugin scan during a cold start (the bundle has no plugins).
        assert properties["Environment"]["Variables"]["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
        assert properties["Architectures"] == [architecture]
        assert properties["Layers"] == [{"Ref": layer_id}]
        assert properties["TracingConfig"] == {"Mode": "Active"}


def test_optional_lambda_settings_follow_the_context(cloudfront_stack: Synthesized, custom_domain_stack: Synthesized):
    default_env = cloudfront_stack.json["Resources"][
        cloudfront_stack.logical_id(cloudfront_stack.stack.api.functions["IncomingCall"])
    ]["Properties"]["Environment"]["Variables"]
    custom_env = custom_domain_stack.json["Resources"][
        custom_domain_stack.logical_id(custom_domain_stack.stack.api.functions["IncomingCall"])
    ]["Properties"]["Environment"]["Variables"]
    assert default_env["MAX_CONCURRENT_CALLS"] == "50"
    assert custom_env["MAX_CONCURRENT_CALLS"] == "120"
    assert custom_env["ANSWERING_MACHINE_DETECTION"] == "hangup"


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.construct_id)
def test_each_role_holds_only_its_routes_data_access(cloudfront_stack: Synthesized, route):
    function = cloudfront_stack.stack.api.functions[route.construct_id]
    role_id = cloudfront_stack.logical_id(function.role)
    actions = actions_of_role(cloudfront_stack, role_id)
    dynamodb = {a for a in actions if a.startswith("dynamodb:")}
    assert dynamodb == set(route.table_actions)
    s3 = {a for a in actions if a.startswith("s3:")}
    expected_s3 = {"s3:PutObject", "s3:GetObject", "s3:ListBucket"} if route.writes_archive else set()
    if route.writes_recordings:
        expected_s3.add("s3:PutObject")
    assert s3 == expected_s3
    secret_resources = [
        statement["Resource"]
        for statement in statements_of_role(cloudfront_stack, role_id)
        if statement["Action"] == "secretsmanager:GetSecretValue"
    ]
    secrets = cloudfront_stack.stack.secrets
    openai_key_id = cloudfront_stack.logical_id(secrets.openai_api_key)
    token_secret = {"Ref": cloudfront_stack.logical_id(secrets.stream_token_secret)}
    assert len(secret_resources) == 1
    assert {"Ref": openai_key_id} not in secret_resources[0]
    # Auth token, account SID, caller-hash secret; the token secret only where tokens are minted.
    assert len(secret_resources[0]) == (4 if route.mints_stream_tokens else 3)
    assert (token_secret in secret_resources[0]) is route.mints_stream_tokens
    environment = cloudfront_stack.json["Resources"][cloudfront_stack.logical_id(function)]["Properties"]
    assert ("STREAM_TOKEN_SECRET_ARN" in environment["Environment"]["Variables"]) is route.mints_stream_tokens


def test_only_the_voice_webhook_and_the_relay_can_read_the_stream_token_secret(cloudfront_stack: Synthesized):
    token_secret = {"Ref": cloudfront_stack.logical_id(cloudfront_stack.stack.secrets.stream_token_secret)}
    readers = {
        logical_id
        for logical_id, statement in identity_statements(cloudfront_stack)
        if "secretsmanager:GetSecretValue" in as_list(statement["Action"]) and token_secret in as_list(
            statement["Resource"]
        )
    }  # fmt: skip
    stack = cloudfront_stack.stack
    incoming_role = cloudfront_stack.logical_id(stack.api.functions["IncomingCall"].role)
    execution_role = cloudfront_stack.logical_id(stack.relay.task_definition.execution_role)
    owners = {
        policy_id
        for policy_id in readers
        for role in cloudfront_stack.json["Resources"][policy_id]["Properties"].get("Roles", [])
        if role["Ref"] in {incoming_role, execution_role}
    }
    assert readers == owners
    assert len(owners) == 2  # the voice webhook's role, and ECS injecting it into the relay container
    assert [route.construct_id for route in ROUTES if route.mints_stream_tokens] == ["IncomingCall"]


def test_stage_throttles_logs_access_and_traces(any_stack: Synthesized):
    stage = any_stack.only("AWS::ApiGateway::Stage")["Properties"]
    assert stage["StageName"] == API_STAGE
    assert stage["TracingEnabled"] is True
    assert stage["AccessLogSetting"]["DestinationArn"]
    assert '"status":$context.status' in stage["AccessLogSetting"]["Format"]
    for settings in stage["MethodSettings"]:
        assert settings["ThrottlingRateLimit"] > 0
        assert settings["ThrottlingBurstLimit"] > 0
        assert settings["DataTraceEnabled"] is False  # request bodies carry caller numbers
        assert settings["LoggingLevel"] == "ERROR"
        assert settings["MetricsEnabled"] is False


def test_every_route_has_its_own_throttle_and_twilios_callbacks_the_largest(any_stack: Synthesized):
    settings = any_stack.only("AWS::ApiGateway::Stage")["Properties"]["MethodSettings"]
    # "/~1twilio~1status": the resource path escaped, after the "/" that starts every method setting path
    by_route = {(s["HttpMethod"], s["ResourcePath"][1:].replace("~1", "/")): s for s in settings}
    for route in ROUTES:
        for method in route.methods:
            throttle = by_route[(method, route.path)]
            assert (throttle["ThrottlingRateLimit"], throttle["ThrottlingBurstLimit"]) == (
                route.throttle.rate_per_second,
                route.throttle.burst,
            ), route.construct_id
    status = by_route[("POST", "/twilio/status")]
    assert status["ThrottlingBurstLimit"] == max(s["ThrottlingBurstLimit"] for s in settings)
    assert by_route[("POST", "/calls")]["ThrottlingRateLimit"] < status["ThrottlingRateLimit"]
    assert by_route[("POST", "/calls/{callSid}/transfer")]["ThrottlingRateLimit"] < status["ThrottlingRateLimit"]


def test_a_waf_web_acl_with_a_per_ip_rate_rule_guards_the_stage(any_stack: Synthesized):
    acl = any_stack.only("AWS::WAFv2::WebACL")["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    (rule,) = acl["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP"
    assert rate["Limit"] == any_stack.context.get("apiWafRequestsPerIp", 1500)
    assert rate["EvaluationWindowSec"] == 300
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    association = any_stack.only("AWS::WAFv2::WebACLAssociation")["Properties"]
    stage_id = next(iter(any_stack.resources("AWS::ApiGateway::Stage")))
    assert {"Ref": stage_id} in association["ResourceArn"]["Fn::Join"][1]
    acl_id = next(iter(any_stack.resources("AWS::WAFv2::WebACL")))
    assert association["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}


def test_the_waf_can_be_turned_off_and_its_limit_set(tmp_path):
    without = synthesize({**CLOUDFRONT_CONTEXT, "apiWaf": "false"}, tmp_path / "no-waf")
    assert without.resources("AWS::WAFv2::WebACL") == {}
    assert without.resources("AWS::WAFv2::WebACLAssociation") == {}
    report = json.loads((without.outdir / "validation-report.json").read_text())
    assert report["pluginReports"] == []  # cdk-nag's APIG3 is acknowledged with a reason there, and only there
    stricter = synthesize({**CLOUDFRONT_CONTEXT, "apiWafRequestsPerIp": 300}, tmp_path / "stricter")
    (rule,) = stricter.only("AWS::WAFv2::WebACL")["Properties"]["Rules"]
    assert rule["Statement"]["RateBasedStatement"]["Limit"] == 300


def test_call_control_routes_are_iam_and_twilio_routes_are_signature_checked():
    for route in ROUTES:
        expected = RouteAuth.AWS_IAM if route.path.startswith("/calls") else RouteAuth.TWILIO_SIGNATURE
        assert route.auth is expected, route.construct_id


def test_only_the_twiml_route_skips_the_xray_sdk(cloudfront_stack: Synthesized):
    """The caller waits on the TwiML webhook's cold start: it runs without the X-Ray SDK (Lambda still traces it)."""
    skipping = set()
    for construct_id, function in cloudfront_stack.stack.api.functions.items():
        properties = cloudfront_stack.json["Resources"][cloudfront_stack.logical_id(function)]["Properties"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        if properties["Environment"]["Variables"].get("POWERTOOLS_TRACE_DISABLED") == "true":
            skipping.add(construct_id)
    assert skipping == {"IncomingCall"}
