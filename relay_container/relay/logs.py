"""The relay's log: one JSON object per line on stderr (stdout carries the EMF metric documents), with `call_sid` on
every line a call's own tasks write, so CloudWatch Logs Insights can follow one call:

    fields @timestamp, level, message | filter call_sid = "CA…" | sort @timestamp

The call's id travels in a context variable: `asyncio.create_task` copies the context, so the call's task and every
task it spawns log under its id without passing it around. A log record factory copies it onto each record as
`record.call_sid` (None outside a call), where every handler sees it. Caller numbers are never logged unmasked
(`callcore.masking`); keypad digits never at all.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

CALL_SID: ContextVar[str | None] = ContextVar("call_sid", default=None)
_base_factory = logging.getLogRecordFactory()


def _record_with_call_sid(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.call_sid = CALL_SID.get()
    return record


logging.setLogRecordFactory(_record_with_call_sid)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_sid = getattr(record, "call_sid", None)
        if call_sid is not None:
            line["call_sid"] = call_sid
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
