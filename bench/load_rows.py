"""The rows `make bench-load` prints, from the shared load harness's one-line JSON summary (pure: no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoadRow:
    relay: str
    calls: int
    cpu_ms_per_call_s: float
    c2m_p99_ms: float
    c2m_max_ms: float
    m2c_p99_ms: float
    m2c_max_ms: float
    c2m_loss_pct: float
    m2c_loss_pct: float

    def line(self) -> str:
        return (
            f"| {self.relay} | {self.calls} | {self.cpu_ms_per_call_s:.1f} | "
            f"{self.c2m_p99_ms:.1f} / {self.c2m_max_ms:.1f} ms | {self.m2c_p99_ms:.1f} / {self.m2c_max_ms:.1f} ms | "
            f"{self.c2m_loss_pct:.2f} % / {self.m2c_loss_pct:.2f} % |"
        )


HEADER = (
    "| relay | calls | CPU-ms per call-second | p99 / max caller->model | p99 / max model->caller "
    "| loss c2m / m2c |\n| --- | --- | --- | --- | --- | --- |"
)


def summary_from_output(stdout: str) -> dict[str, Any]:
    """The harness prints a human table, then one JSON object on a line of its own: the last such line."""
    for line in reversed(stdout.splitlines()):
        text = line.strip()
        if text.startswith("{") and text.endswith("}"):
            summary: dict[str, Any] = json.loads(text)
            return summary
    raise ValueError("the harness printed no JSON summary line")


def _number(value: Any) -> float:
    """The harness writes null for a figure it could not measure (no frames, no CPU ticks): shown as nan."""
    return float("nan") if value is None else float(value)


def row_from_summary(relay: str, summary: dict[str, Any]) -> LoadRow:
    c2m, m2c = summary["c2m"], summary["m2c"]
    return LoadRow(
        relay=relay,
        calls=int(summary.get("calls_connected", 0)),
        cpu_ms_per_call_s=_number(summary["relay"]["cpu_ms_per_call_s"]),
        c2m_p99_ms=_number(c2m["p99"]),
        c2m_max_ms=_number(c2m["max"]),
        m2c_p99_ms=_number(m2c["p99"]),
        m2c_max_ms=_number(m2c["max"]),
        c2m_loss_pct=_number(c2m["loss_pct"]),
        m2c_loss_pct=_number(m2c["loss_pct"]),
    )


def cpu_ratio(ours: LoadRow, baseline: LoadRow) -> float:
    """Our CPU per call-second over the baseline's (1.0 = as cheap; below 1 = cheaper)."""
    if baseline.cpu_ms_per_call_s <= 0:
        raise ValueError("the baseline's CPU per call-second is zero: its run measured nothing")
    return ours.cpu_ms_per_call_s / baseline.cpu_ms_per_call_s
