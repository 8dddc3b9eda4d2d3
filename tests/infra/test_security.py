"""What holds in every deployment: cdk-nag and cfn-lint clean, no wildcard actions, data encrypted and private."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
from cfnlint.api import ManualArgs, lint_file

import infra.application
from callcore.store import BY_DAY_INDEX, TTL_ATTRIBUTE
from infra.constants import SECRET_PLACEHOLDER
from infra.nag import acknowledge, add_security_checks
from tests.infra.synth import Synthesized
from tests.infra.template_queries import (
    as_list,
    container_environment,
    identity_statements,
    resolves_to,
    resource_policy_statements,
)


# ---- cdk-nag ---------------------------------------------------------------------------------------------------------
def test_cdk_nag_finds_nothing_unacknowledged(any_stack: Synthesized):
    # The synth in the fixture raises on any unacknowledged AwsSolutions finding; the report it writes is empty.
    report = json.loads((any_stack.outdir / "validation-report.json").read_text())
    assert report["pluginReports"] == []


def test_build_app_always_adds_the_cdk_nag_checks(monkeypatch):
    checked: list[App] = []
    monkeypatch.setattr(infra.application, "add_security_checks", checked.append)
    app, _stack = infra.application.build_app({"region": "us-east-1", "aws:cdk:disable-asset-staging": True})
    assert checked == [app]


def test_cdk_nag_fails_the_synth_on_a_finding_and_an_acknowledgment_needs_a_reason(tmp_path):
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "NagProbe")
    s3.Bucket(stack, "PlainBucket")
    add_security_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules
    with pytest.raises(ValueError, match="reason"):
        acknowledge(stack, "AwsSolutions-S1", "  ")


# ---- cfn-lint --------------------------------------------------------------------------------------------------------
def test_cfn_lint_reports_no_errors(any_stack: Synthesized):
    region = str(any_stack.context["region"])
    matches = lint_file(any_stack.template_path, config=ManualArgs(regions=[region]))
    errors = [f"{m.rule.id} {m.message} ({m.path_string})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


# ---- IAM -------------------------------------------------------------------------------------------------------------
def test_no_identity_policy_has_a_wildcard_action(any_stack: Synthesized):
    offenders = [
        (logical_id, action)
        for logical_id, statement in identity_statements(any_stack)
        for action in as_list(statement.get("Action", []))
        if "*" in action
    ]
    assert offenders == []
    assert all("NotAction" not in statement for _, statement in identity_statements(any_stack))


def test_resource_policies_allow_no_wildcard_action_except_the_key_admin(any_stack: Synthesized):
    offenders = []
    for logical_id, resource_type, statement in resource_policy_statements(any_stack):
        if statement["Effect"] != "Allow":
            continue  # TLS-only denials use s3:* / sns:* on purpose
        wildcards = [a for a in as_list(statement["Action"]) if "*" in a]
        is_key_admin = (
            resource_type == "AWS::KMS::Key" and wildcards == ["kms:*"] and "root" in json.dumps(statement["Principal"])
        )
        if wildcards and not is_key_admin:
            offenders.append((logical_id, wildcards))
    assert offenders == []


# ---- data at rest ----------------------------------------------------------------------------------------------------
def test_every_bucket_is_encrypted_private_and_tls_only(any_stack: Synthesized):
    buckets = any_stack.resources("AWS::S3::Bucket")
    assert len(buckets) == 3  # transcripts, Athena results, access logs
    policies = any_stack.resources("AWS::S3::BucketPolicy").values()
    for logical_id, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        tls_denials = [
            s
            for p in policies
            if resolves_to(p["Properties"]["Bucket"], logical_id)
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert tls_denials, f"{logical_id} accepts plain HTTP"


def test_transcripts_bucket_uses_the_stack_key_logs_access_and_ages_into_cheaper_storage(any_stack: Synthesized):
    bucket_id = any_stack.logical_id(any_stack.stack.storage.transcripts_bucket)
    key_id = any_stack.logical_id(any_stack.stack.storage.key)
    logs_id = any_stack.logical_id(any_stack.stack.storage.access_logs_bucket)
    properties = any_stack.json["Resources"][bucket_id]["Properties"]
    rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert resolves_to(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"], key_id)
    assert resolves_to(properties["LoggingConfiguration"]["DestinationBucketName"], logs_id)
    transitions = properties["LifecycleConfiguration"]["Rules"][0]["Transitions"]
    expected = (
        ["STANDARD_IA", "GLACIER_IR"]
        if any_stack.context.get("transcriptRetentionDays", 365) > 180
        else ["STANDARD_IA"]
    )
    assert [t["StorageClass"] for t in transitions] == expected
    assert any_stack.json["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True


def test_transcripts_summaries_and_recordings_expire_by_prefix(any_stack: Synthesized):
    bucket_id = any_stack.logical_id(any_stack.stack.storage.transcripts_bucket)
    rules = any_stack.json["Resources"][bucket_id]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = {rule["Prefix"]: rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule}
    transcripts = any_stack.context.get("transcriptRetentionDays", 365)
    assert expiring == {
        "transcripts/": transcripts,
        "calls/": transcripts,
        "recordings/": any_stack.context.get("recordingRetentionDays", 90),
    }
    for rule in rules:
        assert rule["Status"] == "Enabled"
        for transition in rule.get("Transitions", []):
            assert transition["TransitionInDays"] < transcripts  # no step past the end
    (ageing,) = [rule for rule in rules if "NoncurrentVersionExpiration" in rule]
    assert ageing["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30  # the last copy of an expired object
    assert any(rule.get("ExpiredObjectDeleteMarker") for rule in rules)


def test_a_short_transcript_retention_drops_the_storage_steps_it_would_never_reach(
    custom_domain_stack: Synthesized,
):
    bucket_id = custom_domain_stack.logical_id(custom_domain_stack.stack.storage.transcripts_bucket)
    rules = custom_domain_stack.json["Resources"][bucket_id]["Properties"]["LifecycleConfiguration"]["Rules"]
    steps = [t["StorageClass"] for rule in rules for t in rule.get("Transitions", [])]
    assert steps == ["STANDARD_IA"]  # 120 days: infrequent access after 30, never Glacier after 180


def test_the_retention_context_reaches_the_lambdas_and_the_relay(custom_domain_stack: Synthesized):
    expected = {
        "CALL_RECORD_RETENTION_DAYS": "730",
        "TURN_RETENTION_DAYS": "14",
        "BOOKING_RETENTION_DAYS": "60",
    }
    relay = container_environment(custom_domain_stack)
    assert {name: relay[name] for name in expected} == expected
    assert relay["CALLER_PROFILE_RETENTION_DAYS"] == "180"
    assert relay["MASK_CALLER_DIGITS"] == "false"
    for function in (*custom_domain_stack.stack.api.functions.values(), custom_domain_stack.stack.sweep.function):
        resource = custom_domain_stack.json["Resources"][custom_domain_stack.logical_id(function)]
        variables = resource["Properties"]["Environment"]["Variables"]
        assert {name: variables[name] for name in expected} == expected
        assert variables["RAW_NUMBER_RETENTION_HOURS"] == "6"
        assert (variables["MAX_LIVE_CALLS_PER_CALLER"], variables["MAX_LIVE_WITHHELD_CALLS"]) == ("3", "0")


def test_call_table_schema_comes_from_callcore_and_is_encrypted_with_pitr(any_stack: Synthesized):
    table = any_stack.only("AWS::DynamoDB::Table")["Properties"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == BY_DAY_INDEX
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["SSESpecification"]["SSEType"] == "KMS"
    assert resolves_to(table["SSESpecification"]["KMSMasterKeyId"], any_stack.logical_id(any_stack.stack.storage.key))
    assert table["DeletionProtectionEnabled"] is True


def test_data_survives_a_stack_delete(any_stack: Synthesized):
    storage = any_stack.stack.storage
    for construct in (storage.table, storage.transcripts_bucket, storage.key):
        resource = any_stack.json["Resources"][any_stack.logical_id(construct)]
        assert resource["DeletionPolicy"] == "Retain"


# ---- secrets ---------------------------------------------------------------------------------------------------------
def test_operator_secrets_start_as_a_placeholder_and_the_token_secret_is_generated(any_stack: Synthesized):
    secrets = any_stack.stack.secrets
    resources = any_stack.json["Resources"]
    for secret in secrets.operator_filled:
        properties = resources[any_stack.logical_id(secret)]["Properties"]
        assert properties["SecretString"] == SECRET_PLACEHOLDER
        assert "GenerateSecretString" not in properties
    for generated in (secrets.stream_token_secret, secrets.caller_hash_secret):
        properties = resources[any_stack.logical_id(generated)]["Properties"]
        assert properties["GenerateSecretString"]["PasswordLength"] >= 32
        assert "SecretString" not in properties


def test_athena_results_are_kms_encrypted_and_the_setting_is_enforced(any_stack: Synthesized):
    configuration = any_stack.only("AWS::Athena::WorkGroup")["Properties"]["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    encryption = configuration["ResultConfiguration"]["EncryptionConfiguration"]
    assert encryption["EncryptionOption"] == "SSE_KMS"
    assert resolves_to(encryption["KmsKey"], any_stack.logical_id(any_stack.stack.storage.key))
