"""Small readers over a synthesized template: policy documents, API routes, environments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.infra.synth import Synthesized

IDENTITY_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
RESOURCE_POLICY_PROPERTIES = {
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::SecretsManager::ResourcePolicy": "ResourcePolicy",
}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def identity_statements(stack: Synthesized) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy: standalone policies, managed policies, roles' inline policies."""
    for logical_id, resource in stack.json["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] in IDENTITY_POLICY_TYPES:
            for statement in properties["PolicyDocument"]["Statement"]:
                yield logical_id, statement
        elif resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield logical_id, statement


def resource_policy_statements(stack: Synthesized) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for logical_id, resource in stack.json["Resources"].items():
        key = RESOURCE_POLICY_PROPERTIES.get(resource["Type"])
        if key:
            for statement in resource["Properties"][key]["Statement"]:
                yield logical_id, resource["Type"], statement


def statements_of_role(stack: Synthesized, role_logical_id: str) -> list[dict[str, Any]]:
    statements = []
    for resource in stack.resources("AWS::IAM::Policy").values():
        roles = resource["Properties"].get("Roles", [])
        if {"Ref": role_logical_id} in roles:
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def actions_of_role(stack: Synthesized, role_logical_id: str) -> set[str]:
    return {action for s in statements_of_role(stack, role_logical_id) for action in as_list(s["Action"])}


def api_routes(stack: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    """`(HTTP method, path)` -> the AWS::ApiGateway::Method's properties, paths rebuilt from the resource tree."""
    resources = stack.resources("AWS::ApiGateway::Resource")

    def path_of(reference: Any) -> str:
        if isinstance(reference, dict) and "Ref" in reference and reference["Ref"] in resources:
            properties = resources[reference["Ref"]]["Properties"]
            return f"{path_of(properties['ParentId'])}/{properties['PathPart']}"
        return ""  # the root resource (Fn::GetAtt RestApi.RootResourceId)

    return {
        (method["Properties"]["HttpMethod"], path_of(method["Properties"]["ResourceId"])): method["Properties"]
        for method in stack.resources("AWS::ApiGateway::Method").values()
    }


def integration_function(method_properties: dict[str, Any]) -> str:
    """Logical ID of the Lambda a proxy integration invokes."""
    uri = method_properties["Integration"]["Uri"]
    parts = uri["Fn::Join"][1]
    for part in parts:
        if isinstance(part, dict) and "Fn::GetAtt" in part:
            return str(part["Fn::GetAtt"][0])
    raise AssertionError(f"no function in integration URI {uri}")


def container(stack: Synthesized) -> dict[str, Any]:
    task_definition = stack.only("AWS::ECS::TaskDefinition")
    definitions = task_definition["Properties"]["ContainerDefinitions"]
    assert len(definitions) == 1
    result: dict[str, Any] = definitions[0]
    return result


def container_environment(stack: Synthesized) -> dict[str, Any]:
    return {item["Name"]: item["Value"] for item in container(stack)["Environment"]}


def resolves_to(value: Any, logical_id: str) -> bool:
    """True when a template value refers to `logical_id` (Ref, GetAtt, or inside a Join)."""
    if isinstance(value, dict):
        if value.get("Ref") == logical_id:
            return True
        if "Fn::GetAtt" in value and value["Fn::GetAtt"][0] == logical_id:
            return True
        return any(resolves_to(v, logical_id) for v in value.values())
    if isinstance(value, list):
        return any(resolves_to(v, logical_id) for v in value)
    return False


def ingress_rules(template: dict[str, Any], group_logical_id: str) -> list[dict[str, Any]]:
    """A security group's ingress rules, inline or as separate AWS::EC2::SecurityGroupIngress resources."""
    resources = template["Resources"]
    rules = list(resources[group_logical_id]["Properties"].get("SecurityGroupIngress", []))
    rules.extend(
        resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::EC2::SecurityGroupIngress"
        and resolves_to(resource["Properties"]["GroupId"], group_logical_id)
    )
    return rules
