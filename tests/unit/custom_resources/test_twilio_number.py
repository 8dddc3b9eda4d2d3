"""The Twilio number wiring custom resource against an in-process fake of Twilio's IncomingPhoneNumbers API."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws
from twilio.rest import Client

from callcore.settings import SettingsError
from lambdas.custom_resources import twilio_number
from lambdas.custom_resources.twilio_number import (
    MAX_PHYSICAL_ID_LENGTH,
    TwilioCredentials,
    TwilioNumberDirectory,
    VoiceConfig,
    WiringError,
    decode_physical_id,
    encode_physical_id,
    handle,
)
from tests.unit.custom_resources.fake_numbers import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioNumbers

NUMBER = "+15551230001"
OTHER_NUMBER = "+15551230002"
BASE = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
PROPERTIES = {
    "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
    "PhoneNumber": NUMBER,
    "VoiceUrl": f"{BASE}/twilio/incoming",
    "FallbackUrl": f"{BASE}/twilio/fallback",
    "StatusCallbackUrl": f"{BASE}/twilio/status",
}


@pytest.fixture
def twilio() -> FakeTwilioNumbers:
    return FakeTwilioNumbers()


def directory(fake: FakeTwilioNumbers, token: str = AUTH_TOKEN) -> TwilioNumberDirectory:
    return TwilioNumberDirectory(Client(ACCOUNT_SID, token, http_client=fake))


def event(request_type: str, **extra: Any) -> dict[str, Any]:
    return {"RequestType": request_type, "LogicalResourceId": "TwilioNumber", "ResourceProperties": PROPERTIES, **extra}


def create(fake: FakeTwilioNumbers, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    return handle(event("Create", ResourceProperties=properties or PROPERTIES), directory(fake))


def test_create_points_the_number_at_the_stack_and_remembers_what_was_there(twilio):
    number = twilio.add(
        NUMBER,
        voice_url="https://old.example.com/voice",
        voice_method="GET",
        status_callback="https://old.example.com/status",
        voice_application_sid="AP" + "1" * 32,
    )
    twilio.add("+15551230001999")  # the PhoneNumber filter matches it too; it must not be touched

    response = create(twilio)

    assert response["Data"] == {"PhoneNumberSid": number.sid}
    assert number.values["voice_url"] == f"{BASE}/twilio/incoming"
    assert number.values["voice_method"] == "POST"
    assert number.values["voice_fallback_url"] == f"{BASE}/twilio/fallback"
    assert number.values["status_callback"] == f"{BASE}/twilio/status"
    assert number.values["voice_application_sid"] is None  # a TwiML App would override the voice URL
    assert [sid for sid, _ in twilio.updates] == [number.sid]
    remembered = decode_physical_id(response["PhysicalResourceId"])
    assert remembered is not None
    sid, previous = remembered
    assert sid == number.sid
    assert previous.voice_url == "https://old.example.com/voice"
    assert previous.voice_method == "GET"
    assert previous.status_callback == "https://old.example.com/status"
    assert previous.voice_application_sid == "AP" + "1" * 32


def test_delete_restores_the_previous_configuration(twilio):
    number = twilio.add(NUMBER, voice_url="https://old.example.com/voice", voice_application_sid="AP" + "1" * 32)
    created = create(twilio)

    response = handle(event("Delete", PhysicalResourceId=created["PhysicalResourceId"]), directory(twilio))

    assert response == {"PhysicalResourceId": created["PhysicalResourceId"]}
    assert number.values["voice_url"] == "https://old.example.com/voice"
    assert number.values["voice_fallback_url"] is None
    assert number.values["status_callback"] is None
    assert number.values["voice_application_sid"] == "AP" + "1" * 32


def test_delete_leaves_settings_someone_changed_since(twilio):
    number = twilio.add(NUMBER, voice_url="https://old.example.com/voice", status_callback="https://old.example.com/s")
    created = create(twilio)
    number.values["voice_url"] = "https://someone-else.example.com/voice"

    handle(event("Delete", PhysicalResourceId=created["PhysicalResourceId"]), directory(twilio))

    assert number.values["voice_url"] == "https://someone-else.example.com/voice"
    assert number.values["status_callback"] == "https://old.example.com/s"  # still ours at delete: restored


def test_delete_of_a_released_number_succeeds_without_calls(twilio):
    number = twilio.add(NUMBER)
    created = create(twilio)
    del twilio.numbers[number.sid]
    updates_before = len(twilio.updates)

    response = handle(event("Delete", PhysicalResourceId=created["PhysicalResourceId"]), directory(twilio))

    assert response["PhysicalResourceId"] == created["PhysicalResourceId"]
    assert len(twilio.updates) == updates_before


def test_delete_of_an_id_this_handler_did_not_write_does_nothing(twilio):
    twilio.add(NUMBER)
    marker = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"

    response = handle(event("Delete", PhysicalResourceId=marker), directory(twilio))

    assert response == {"PhysicalResourceId": marker}
    assert twilio.updates == []


def test_update_with_new_urls_keeps_the_remembered_configuration(twilio):
    number = twilio.add(NUMBER, voice_url="https://old.example.com/voice")
    created = create(twilio)
    new_base = "https://xyz789.execute-api.us-east-1.amazonaws.com/prod"
    new_properties = {
        **PROPERTIES,
        "VoiceUrl": f"{new_base}/twilio/incoming",
        "FallbackUrl": f"{new_base}/twilio/fallback",
        "StatusCallbackUrl": f"{new_base}/twilio/status",
    }

    response = handle(
        event(
            "Update",
            ResourceProperties=new_properties,
            OldResourceProperties=PROPERTIES,
            PhysicalResourceId=created["PhysicalResourceId"],
        ),
        directory(twilio),
    )

    assert response["PhysicalResourceId"] == created["PhysicalResourceId"]  # same ID: no delete follows
    assert number.values["voice_url"] == f"{new_base}/twilio/incoming"
    handle(
        event("Delete", ResourceProperties=new_properties, PhysicalResourceId=response["PhysicalResourceId"]),
        directory(twilio),
    )
    assert number.values["voice_url"] == "https://old.example.com/voice"


def test_update_to_another_number_wires_it_under_a_new_id_and_the_old_delete_restores_the_old(twilio):
    first = twilio.add(NUMBER, voice_url="https://old.example.com/first")
    second = twilio.add(OTHER_NUMBER, voice_url="https://old.example.com/second")
    created = create(twilio)
    new_properties = {**PROPERTIES, "PhoneNumber": OTHER_NUMBER}

    response = handle(
        event(
            "Update",
            ResourceProperties=new_properties,
            OldResourceProperties=PROPERTIES,
            PhysicalResourceId=created["PhysicalResourceId"],
        ),
        directory(twilio),
    )
    # CloudFormation sees a new physical ID and deletes the old one with the old properties.
    handle(event("Delete", PhysicalResourceId=created["PhysicalResourceId"]), directory(twilio))

    assert response["PhysicalResourceId"] != created["PhysicalResourceId"]
    assert response["Data"] == {"PhoneNumberSid": second.sid}
    assert second.values["voice_url"] == f"{BASE}/twilio/incoming"
    assert first.values["voice_url"] == "https://old.example.com/first"


def test_create_of_a_number_not_in_the_account_fails_with_a_masked_number(twilio):
    with pytest.raises(WiringError, match="not a phone number of this Twilio account") as raised:
        create(twilio)
    assert NUMBER not in str(raised.value)


def test_create_refuses_a_number_on_a_sip_trunk(twilio):
    twilio.add(NUMBER, trunk_sid="TK" + "2" * 32)
    with pytest.raises(WiringError, match="SIP trunk"):
        create(twilio)
    assert twilio.updates == []


def test_wrong_credentials_say_which_secrets_to_fill(twilio):
    twilio.add(NUMBER)
    with pytest.raises(WiringError, match="TwilioAuthToken"):
        handle(event("Create"), directory(twilio, token="wrong-token-value"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("PhoneNumber", "5551230001"), ("VoiceUrl", "http://insecure.example.com/x"), ("FallbackUrl", "")],
)
def test_invalid_properties_fail_before_any_twilio_call(twilio, field, value):
    twilio.add(NUMBER)
    with pytest.raises(WiringError, match="invalid custom resource properties"):
        create(twilio, {**PROPERTIES, field: value})
    assert twilio.updates == []


def test_unknown_request_type_is_refused(twilio):
    with pytest.raises(WiringError, match="RequestType"):
        handle(event("Replace"), directory(twilio))


def test_physical_id_round_trip_and_rejects():
    previous = VoiceConfig(voice_url="https://a.example.com/v", voice_method="GET")
    sid = "PN" + "a" * 32
    assert decode_physical_id(encode_physical_id(sid, previous)) == (sid, previous)
    assert decode_physical_id("twilio-number:PNnot-a-sid:abc") is None
    assert decode_physical_id("twilio-number:" + sid + ":!!!") is None
    assert decode_physical_id("something-else") is None


def test_physical_id_too_long_for_cloudformation_is_refused():
    # Random-looking URLs do not compress: long enough ones cannot be remembered within 1 KB.
    noise = "".join(f"{i:x}" for i in range(2000))
    previous = VoiceConfig(voice_url=f"https://a.example.com/{noise}")
    with pytest.raises(WiringError, match="too long"):
        encode_physical_id("PN" + "a" * 32, previous)
    short = encode_physical_id("PN" + "a" * 32, VoiceConfig(voice_url="https://a.example.com/v"))
    assert len(short) <= MAX_PHYSICAL_ID_LENGTH


def test_credentials_reject_the_placeholder_naming_the_secret():
    placeholder = "REPLACE_ME: aws secretsmanager put-secret-value (see infra/DEPLOY.md)"
    with pytest.raises(SettingsError, match=r"TWILIO_ACCOUNT_SID.*wireNumbers=false"):
        TwilioCredentials.from_env({"TWILIO_ACCOUNT_SID": placeholder, "TWILIO_AUTH_TOKEN": AUTH_TOKEN})


@mock_aws
def test_on_event_reads_the_credentials_from_secrets_manager(monkeypatch, twilio):
    number = twilio.add(NUMBER)
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    sid_arn = secrets.create_secret(Name="test-account-sid", SecretString=ACCOUNT_SID)["ARN"]
    token_arn = secrets.create_secret(Name="test-auth-token", SecretString=AUTH_TOKEN)["ARN"]
    monkeypatch.setenv("TWILIO_ACCOUNT_SID_ARN", sid_arn)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN_ARN", token_arn)
    used: list[TwilioCredentials] = []

    def fake_directory(credentials: TwilioCredentials) -> TwilioNumberDirectory:
        used.append(credentials)
        return directory(twilio, credentials.auth_token.get_secret_value())

    monkeypatch.setattr(twilio_number, "twilio_directory", fake_directory)

    response = twilio_number.on_event(event("Create"), None)

    assert response["Data"] == {"PhoneNumberSid": number.sid}
    assert used[0].account_sid.get_secret_value() == ACCOUNT_SID
