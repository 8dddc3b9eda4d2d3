"""The saved Athena queries, run by DuckDB over a local copy of the archive (the bucket's files as laid out in S3).

Used by the tests that prove the saved queries on generated data, and by anyone who wants the same figures without
Athena (`aws s3 sync s3://<bucket>/calls ./archive/calls`, then `run_saved_query`). One word of the SQL text is
rewritten (`round`); everything else that makes it run on DuckDB is set up around it. The translation, all of it:

- A Glue table (JSON SerDe, partition projection on year/month/day) is a view over `read_json` of the files under
  the table's prefix, each column typed as the Glue table declares it (`infra.glue_schema.glue_columns`, the same
  function), the partition columns taken from the Hive path as strings (as Glue declares them).
- `"database"."table"`: a schema named like the Glue database holds that view.
- `date_format(ts, fmt)` is a macro for `strftime(ts, fmt)` (the same `%Y`-style formats).
- `from_iso8601_timestamp(s)` is a macro for `CAST(s AS TIMESTAMPTZ)`.
- `approx_percentile(x, p)` is a macro for `quantile_disc(x, p)`: the exact nearest-rank value Athena's estimate
  approximates (Athena's is within about 1 % of rank).
- `round(x, n)`: Athena divides DECIMAL literals exactly (`sum(seconds) / 60.0` with 627 seconds is exactly 10.45,
  which rounds to 10.5); DuckDB divides them into DOUBLE (10.4499..., which rounds to 10.4). The SQL text's `round(`
  becomes `athena_round(`, a macro that rounds through DECIMAL(38, 10).
- The session time zone is UTC, as Athena's is.

`count_if`, `concat`, `coalesce`, `round`, `nullif`, `current_date`, `interval '30' day` and `date(...)` mean the same
in both and are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel

from infra.glue_schema import glue_columns

ATHENA_MACROS = (
    "CREATE OR REPLACE MACRO date_format(ts, fmt) AS strftime(ts, fmt)",
    "CREATE OR REPLACE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)",
    "CREATE OR REPLACE MACRO approx_percentile(x, p) AS quantile_disc(x, p)",
    "CREATE OR REPLACE MACRO athena_round(x, n) AS round(CAST(x AS DECIMAL(38, 10)), n)",
)
_ROUND = re.compile(r"\bround\(", re.IGNORECASE)
_SCALARS = {"string": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN"}
_IDENTIFIER = re.compile(r"^[a-z0-9_]+$")


def duckdb_type(glue_type: str) -> str:
    """A Glue (Hive) column type as DuckDB writes it: `array<struct<a:string>>` -> `STRUCT("a" VARCHAR)[]`."""
    if glue_type in _SCALARS:
        return _SCALARS[glue_type]
    if glue_type.startswith("array<") and glue_type.endswith(">"):
        return duckdb_type(glue_type[len("array<") : -1]) + "[]"
    if glue_type.startswith("struct<") and glue_type.endswith(">"):
        fields = [field.split(":", 1) for field in _split_top_level(glue_type[len("struct<") : -1])]
        return "STRUCT(" + ", ".join(f'"{name}" {duckdb_type(kind)}' for name, kind in fields) + ")"
    raise ValueError(f"no DuckDB type for the Glue type {glue_type!r}")


def _split_top_level(fields: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in fields:
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current else parts


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def register_table(
    db: duckdb.DuckDBPyConnection, *, database: str, table: str, root: Path, prefix: str, model: type[BaseModel]
) -> None:
    """`"database"."table"` as a view over `root/prefix/year=*/month=*/day=*/*` typed like the Glue table."""
    if not _IDENTIFIER.match(database) or not _IDENTIFIER.match(table):
        raise ValueError("Glue database and table names are lower-case letters, digits and underscores")
    columns = (
        "{" + ", ".join(f"{_quoted(name)}: {_quoted(duckdb_type(kind))}" for name, kind in glue_columns(model)) + "}"
    )
    files = _quoted(str(root / prefix / "year=*" / "month=*" / "day=*" / "*"))
    db.execute(f'CREATE SCHEMA IF NOT EXISTS "{database}"')
    # Names checked above, paths quoted: nothing from outside reaches this text unescaped.
    view = (
        f'CREATE OR REPLACE VIEW "{database}"."{table}" AS SELECT * FROM read_json({files}, '  # noqa: S608
        f"format = 'newline_delimited', columns = {columns}, hive_partitioning = true, hive_types_autocast = false)"
    )
    db.execute(view)


def athena_session() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that speaks the few Athena functions the saved queries use (see the module docstring)."""
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    for macro in ATHENA_MACROS:
        db.execute(macro)
    return db


def translate(sql: str) -> str:
    """The one textual change (see the module docstring): Athena's exact-decimal `round`."""
    return _ROUND.sub("athena_round(", sql)


def run_saved_query(db: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = db.execute(translate(sql))
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
