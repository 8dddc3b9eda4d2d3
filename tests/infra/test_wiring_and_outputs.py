"""The Twilio number custom resource (only with a number) and the stack outputs (fixed logical IDs)."""

from __future__ import annotations

from infra.constants import CUSTOM_RESOURCE_HANDLER, Output
from tests.infra.synth import Synthesized
from tests.infra.template_queries import actions_of_role, statements_of_role

WIRING_TYPE = "Custom::TwilioNumberWiring"


def test_no_number_no_custom_resource(cloudfront_stack: Synthesized):
    assert not cloudfront_stack.resources(WIRING_TYPE)
    handlers = [
        f["Properties"]["Handler"]
        for f in cloudfront_stack.resources("AWS::Lambda::Function").values()
        if "Handler" in f["Properties"]
    ]
    assert CUSTOM_RESOURCE_HANDLER not in handlers
    assert Output.TWILIO_PHONE_NUMBER_SID.value not in cloudfront_stack.json["Outputs"]


def test_a_number_is_wired_to_the_stack_webhooks(custom_domain_stack: Synthesized):
    wiring = custom_domain_stack.only(WIRING_TYPE)["Properties"]
    assert wiring["PhoneNumber"] == "+15551230001"
    api_id = custom_domain_stack.logical_id(custom_domain_stack.stack.api.rest_api)
    for key, path in (
        ("VoiceUrl", "/twilio/incoming"),
        ("FallbackUrl", "/twilio/fallback"),
        ("StatusCallbackUrl", "/twilio/status"),
    ):
        parts = wiring[key]["Fn::Join"][1]
        assert parts[0] == "https://"
        assert {"Ref": api_id} in parts
        assert parts[-1].endswith(path), key
    outputs = custom_domain_stack.json["Outputs"]
    assert Output.TWILIO_PHONE_NUMBER_SID.value in outputs


def test_the_wiring_handler_reads_only_the_twilio_secrets(custom_domain_stack: Synthesized):
    wiring = custom_domain_stack.stack.twilio_number
    assert wiring is not None
    handler = custom_domain_stack.json["Resources"][custom_domain_stack.logical_id(wiring.handler)]["Properties"]
    assert handler["Handler"] == CUSTOM_RESOURCE_HANDLER
    assert set(handler["Environment"]["Variables"]) == {"TWILIO_ACCOUNT_SID_ARN", "TWILIO_AUTH_TOKEN_ARN"}
    role_id = custom_domain_stack.logical_id(wiring.handler.role)
    assert actions_of_role(custom_domain_stack, role_id) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    (secret_statement,) = [
        s for s in statements_of_role(custom_domain_stack, role_id) if s["Action"] == "secretsmanager:GetSecretValue"
    ]
    secrets = custom_domain_stack.stack.secrets
    expected = [
        {"Ref": custom_domain_stack.logical_id(s)} for s in (secrets.twilio_account_sid, secrets.twilio_auth_token)
    ]
    assert sorted(map(str, secret_statement["Resource"])) == sorted(map(str, expected))


def test_outputs_have_fixed_logical_ids(any_stack: Synthesized):
    outputs = any_stack.json["Outputs"]
    conditional = {Output.TWILIO_PHONE_NUMBER_SID.value, Output.ANALYSIS_DEAD_LETTER_QUEUE_ARN.value}
    always = {o.value for o in Output} - conditional
    assert always <= set(outputs)
    incoming = outputs[Output.INCOMING_WEBHOOK_URL.value]["Value"]["Fn::Join"][1]
    assert incoming[-1].endswith("/twilio/incoming")
    assert outputs[Output.CALLS_TABLE_NAME.value]["Value"] == {
        "Ref": any_stack.logical_id(any_stack.stack.storage.table)
    }
    assert "dashboards:name=" in str(outputs[Output.DASHBOARD_URL.value]["Value"])
