"""Glue (Hive) column types derived from the pydantic line models the archive writes, so the Athena tables and the
JSON files have one definition: `callcore.transcripts.TranscriptLine` and `CallSummaryLine`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_SCALARS = {"string": "string", "integer": "bigint", "number": "double", "boolean": "boolean"}


class SchemaError(Exception):
    """A field has a shape the Glue table cannot express; change the model or teach this module."""


def glue_columns(model: type[BaseModel]) -> list[tuple[str, str]]:
    """`[(column, glue type)]` in the model's field order (the JSON keys the archive writes)."""
    schema = model.model_json_schema(mode="serialization")
    definitions: dict[str, Any] = schema.get("$defs", {})
    return [
        (name, _glue_type(node, definitions, f"{model.__name__}.{name}")) for name, node in schema["properties"].items()
    ]


def _resolve(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    resolved: dict[str, Any] = definitions[ref.rsplit("/", 1)[-1]]
    return resolved


def _glue_type(node: dict[str, Any], definitions: dict[str, Any], where: str) -> str:
    node = _resolve(node, definitions)
    if "anyOf" in node:  # Optional[X] -> X (JSON null reads as NULL in any Glue type)
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        if len(options) != 1:
            raise SchemaError(f"{where}: unions of several types have no Glue type")
        return _glue_type(options[0], definitions, where)
    kind = node.get("type")
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        return f"array<{_glue_type(node.get('items', {}), definitions, f'{where}[]')}>"
    if kind == "object" and "properties" in node:
        fields = ",".join(
            f"{name}:{_glue_type(child, definitions, f'{where}.{name}')}" for name, child in node["properties"].items()
        )
        return f"struct<{fields}>"
    raise SchemaError(f"{where}: JSON schema {node!r} has no Glue type")
