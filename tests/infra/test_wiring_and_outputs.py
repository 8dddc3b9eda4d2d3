"""The receptionist profiles as deployed: published into the call table by a custom resource of least privilege,
every number of every profile wired to the stack (one Twilio number resource each, unless `wireNumbers=false`), the
settings a profile owns no longer set by the stack; and the stack outputs (fixed logical IDs)."""

from __future__ import annotations

import json
from typing import Any

from callcore.profiles import PublishedProfile
from infra.constants import CUSTOM_RESOURCE_HANDLER, PROFILES_PUBLISHER_HANDLER, Output
from infra.profiles import DeployedProfiles
from tests.infra.synth import TWO_PROFILES_DIR, Synthesized
from tests.infra.template_queries import actions_of_role, as_list, container_environment, statements_of_role

WIRING_TYPE = "Custom::TwilioNumberWiring"
PUBLISHING_TYPE = "Custom::ReceptionistProfiles"
# Settings each receptionist profile holds now: the stack must not set one value for every line.
PROFILE_OWNED_ENVIRONMENT = (
    "TWILIO_PHONE_NUMBER",
    "HUMAN_TRANSFER_NUMBER",
    "OPENAI_VOICE",
    "BUSINESS_API_BASE",
    "DTMF_TRANSFER_DIGIT",
    "CALL_RECORDING_ENABLED",
)


def handlers(stack: Synthesized) -> list[str]:
    return [
        f["Properties"]["Handler"]
        for f in stack.resources("AWS::Lambda::Function").values()
        if "Handler" in f["Properties"]
    ]


def published_documents(stack: Synthesized) -> list[dict[str, Any]]:
    publishing = stack.only(PUBLISHING_TYPE)["Properties"]
    return [json.loads(document) for document in publishing["Profiles"]]


def test_the_first_pass_publishes_the_profiles_and_wires_no_number(cloudfront_stack: Synthesized):
    assert cloudfront_stack.context["wireNumbers"] is False
    assert not cloudfront_stack.resources(WIRING_TYPE)
    assert CUSTOM_RESOURCE_HANDLER not in handlers(cloudfront_stack)
    assert [document["profile_id"] for document in published_documents(cloudfront_stack)] == ["example"]
    # The numbers to wire on the next pass are named all the same.
    assert cloudfront_stack.json["Outputs"][Output.ANSWERED_NUMBERS.value]["Value"] == "+15550100000=example"


def test_every_number_of_every_profile_is_wired_to_the_stack_webhooks(custom_domain_stack: Synthesized):
    wirings = custom_domain_stack.resources(WIRING_TYPE)
    assert sorted(w["Properties"]["PhoneNumber"] for w in wirings.values()) == [
        "+15551230001",  # bistro
        "+15551230002",  # dentist
        "+15551230003",  # dentist
    ]
    api_id = custom_domain_stack.logical_id(custom_domain_stack.stack.api.rest_api)
    publishing_id = custom_domain_stack.logical_id(custom_domain_stack.stack.profiles_publisher.resource)
    for wiring in wirings.values():
        properties = wiring["Properties"]
        for key, path in (
            ("VoiceUrl", "/twilio/incoming"),
            ("FallbackUrl", "/twilio/fallback"),
            ("StatusCallbackUrl", "/twilio/status"),
        ):
            parts = properties[key]["Fn::Join"][1]
            assert parts[0] == "https://"
            assert {"Ref": api_id} in parts
            assert parts[-1].endswith(path), key
        # A number answers only once the profile answering it is in the table.
        assert publishing_id in as_list(wiring["DependsOn"])
    outputs = custom_domain_stack.json["Outputs"]
    assert outputs[Output.ANSWERED_NUMBERS.value]["Value"] == (
        "+15551230001=bistro,+15551230002=dentist,+15551230003=dentist"
    )


def test_a_number_keeps_its_resource_whichever_profile_lists_it(custom_domain_stack: Synthesized):
    """The logical ID follows the number, not the profile: moving a number to another line re-points it in place
    instead of creating a second resource that would remember the stack's own webhooks as the ones to restore."""
    wiring = custom_domain_stack.stack.twilio_numbers
    assert wiring is not None
    ids = {number: custom_domain_stack.logical_id(resource) for number, resource in wiring.resources.items()}
    assert all(number.removeprefix("+") in logical_id for number, logical_id in ids.items())
    assert not any(profile in logical_id for logical_id in ids.values() for profile in ("bistro", "dentist"))


def test_the_wiring_handler_reads_only_the_twilio_secrets(custom_domain_stack: Synthesized):
    wiring = custom_domain_stack.stack.twilio_numbers
    assert wiring is not None
    handler = custom_domain_stack.json["Resources"][custom_domain_stack.logical_id(wiring.handler)]["Properties"]
    assert handler["Handler"] == CUSTOM_RESOURCE_HANDLER
    assert handlers(custom_domain_stack).count(CUSTOM_RESOURCE_HANDLER) == 1  # one handler for every number
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


def test_the_publishing_resource_carries_every_profile_document(custom_domain_stack: Synthesized):
    documents = published_documents(custom_domain_stack)
    expected = DeployedProfiles.read(str(TWO_PROFILES_DIR)).published
    assert documents == [published.document() for published in expected]
    # Each document comes back whole, its version matching its content (a changed profile changes the resource).
    profiles = {p.profile_id: p for p in map(PublishedProfile.from_document, documents)}
    assert profiles["bistro"].profile.transfer.human_number == "+15551239999"
    assert profiles["bistro"].profile.recording.enabled is True
    assert profiles["bistro"].profile.limits.max_call_seconds == 2400
    assert profiles["dentist"].profile.numbers == ["+15551230002", "+15551230003"]
    assert profiles["dentist"].prompt_template is not None
    assert "dental practice" in profiles["dentist"].prompt_template


def test_the_publisher_may_write_and_read_the_profile_items_only(any_stack: Synthesized):
    publisher = any_stack.stack.profiles_publisher
    function = any_stack.json["Resources"][any_stack.logical_id(publisher.handler)]["Properties"]
    assert function["Handler"] == PROFILES_PUBLISHER_HANDLER
    table_id = any_stack.logical_id(any_stack.stack.storage.table)
    assert function["Environment"]["Variables"]["CALLS_TABLE"] == {"Ref": table_id}
    statements = statements_of_role(any_stack, any_stack.logical_id(publisher.handler.role))
    (items,) = [s for s in statements if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    assert sorted(as_list(items["Action"])) == [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ]
    assert as_list(items["Resource"]) == [{"Fn::GetAtt": [table_id, "Arn"]}]  # no index, no other table
    assert items["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["RECEPTIONISTS", "RECEPTIONIST#*"]}
    }
    assert actions_of_role(any_stack, any_stack.logical_id(publisher.handler.role)) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:DescribeKey",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


def test_settings_a_profile_owns_are_not_set_by_the_stack(any_stack: Synthesized):
    environments = [container_environment(any_stack)] + [
        any_stack.json["Resources"][any_stack.logical_id(function)]["Properties"]["Environment"]["Variables"]
        for function in any_stack.stack.api.functions.values()
    ]
    for environment in environments:
        assert not set(PROFILE_OWNED_ENVIRONMENT) & set(environment)
        # The deployment-wide ceiling the load balancer drains for: the longest call any line allows.
        if "MAX_CALL_SECONDS" in environment:
            assert environment["MAX_CALL_SECONDS"] == str(any_stack.stack.profiles.longest_call_seconds)


def test_outputs_have_fixed_logical_ids(any_stack: Synthesized):
    outputs = any_stack.json["Outputs"]
    conditional = {Output.ANALYSIS_DEAD_LETTER_QUEUE_ARN.value}
    always = {o.value for o in Output} - conditional
    assert always <= set(outputs)
    incoming = outputs[Output.INCOMING_WEBHOOK_URL.value]["Value"]["Fn::Join"][1]
    assert incoming[-1].endswith("/twilio/incoming")
    assert outputs[Output.CALLS_TABLE_NAME.value]["Value"] == {
        "Ref": any_stack.logical_id(any_stack.stack.storage.table)
    }
    assert "dashboards:name=" in str(outputs[Output.DASHBOARD_URL.value]["Value"])
