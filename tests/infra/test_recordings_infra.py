"""Recordings as synthesized: the signed route and its least-privilege role, the lifecycle rule of the recordings
prefix. Whether a line records is its receptionist profile's `recording.enabled` (published with the profiles)."""

from __future__ import annotations

from infra.constants import ROUTES_BY_ID
from tests.infra.synth import Synthesized
from tests.infra.template_queries import api_routes, as_list, statements_of_role

ROUTE = ROUTES_BY_ID["RecordingStatus"]


def test_the_recording_status_route_is_a_signed_twilio_webhook(any_stack: Synthesized):
    method = api_routes(any_stack)[("POST", ROUTE.path)]
    assert method["AuthorizationType"] == "NONE"  # the handler checks X-Twilio-Signature


def test_the_recording_route_may_write_recordings_and_nothing_else_in_the_bucket(any_stack: Synthesized):
    function = any_stack.logical_id(any_stack.stack.api.functions["RecordingStatus"])
    role = any_stack.json["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    writes = [
        resource
        for statement in statements_of_role(any_stack, role)
        if "s3:PutObject" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]
    assert writes
    assert all("recordings/*" in str(resource) for resource in writes)
    actions = {a for s in statements_of_role(any_stack, role) for a in as_list(s["Action"])}
    assert "s3:GetObject" not in actions
    assert "s3:DeleteObject" not in actions


def test_recordings_expire_by_their_own_rule(cloudfront_stack: Synthesized, custom_domain_stack: Synthesized):
    for stack, days in ((cloudfront_stack, 90), (custom_domain_stack, 30)):
        buckets = stack.resources("AWS::S3::Bucket").values()
        rules = [
            rule
            for bucket in buckets
            for rule in bucket["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
            if rule.get("Id") == "expire-recordings"
        ]
        [rule] = rules
        assert rule["Prefix"] == "recordings/"
        assert rule["ExpirationInDays"] == days
