"""`calls export`: rows (one per call or one per turn) to CSV, JSON Lines or Parquet, a batch at a time, so a long
range never sits in memory whole. CSV and JSON Lines go to stdout or a file; Parquet needs a file (it is binary and
written with a footer at the end)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from analyst.source import UserError

BATCH_ROWS = 500


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class _Sink:
    def __init__(self, fmt: ExportFormat, schema: pa.Schema, stream: IO[bytes] | None, path: Path | None) -> None:
        self._format = fmt
        self._schema = schema
        self._stream = stream
        self._csv: pa_csv.CSVWriter | None = None
        self._parquet: pq.ParquetWriter | None = None
        if fmt is ExportFormat.PARQUET:
            self._parquet = pq.ParquetWriter(str(path), schema)
        elif fmt is ExportFormat.CSV:
            assert stream is not None
            self._csv = pa_csv.CSVWriter(stream, schema)

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self._format is ExportFormat.JSONL:
            assert self._stream is not None
            self._stream.write(b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in rows))
            return
        batch = pa.RecordBatch.from_pylist(rows, schema=self._schema)
        if self._parquet is not None:
            self._parquet.write_batch(batch)
        elif self._csv is not None:
            self._csv.write_batch(batch)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def write_rows(
    rows: Iterable[dict[str, Any]],
    *,
    fmt: ExportFormat,
    schema: pa.Schema,
    output: Path | None,
    stdout: IO[bytes],
) -> int:
    """Write every row; returns how many. A file is written whole or not at all (written beside, then renamed)."""
    if fmt is ExportFormat.PARQUET and output is None:
        raise UserError("Parquet is binary: give --output FILE.parquet")
    count = 0
    with contextlib.ExitStack() as stack:
        partial = output.with_name(f".{output.name}.partial") if output else None
        stream: IO[bytes] | None = stdout
        if partial is not None and fmt is not ExportFormat.PARQUET:
            stream = stack.enter_context(partial.open("wb"))
        sink = _Sink(fmt, schema, stream, partial)
        try:
            for batch in _batches(rows):
                sink.write(batch)
                count += len(batch)
            if count == 0 and fmt is not ExportFormat.JSONL:
                sink.write([])  # a header (CSV) or a schema (Parquet) even for no rows
        except BaseException:
            sink.close()
            if partial is not None:
                partial.unlink(missing_ok=True)
            raise
        sink.close()
    if partial is not None and output is not None:
        partial.replace(output)
    return count
