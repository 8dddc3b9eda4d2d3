import json
import math

import pytest

from bench.load_rows import cpu_ratio, row_from_summary, summary_from_output

pytestmark = pytest.mark.unit


def summary(cpu: float | None, c2m_p99: float = 1.5, m2c_max: float = 9.0) -> dict[str, object]:
    return {
        "calls_connected": 20,
        "relay": {"cpu_ms_per_call_s": cpu},
        "c2m": {"p99": c2m_p99, "max": 4.0, "loss_pct": 0.0},
        "m2c": {"p99": 2.5, "max": m2c_max, "loss_pct": 0.1},
    }


def test_the_summary_is_the_last_json_line_after_the_human_table():
    stdout = "calls 20 requested\n| c2m | p99 1.5 |\n" + json.dumps(summary(8.0)) + "\n"
    assert summary_from_output(stdout)["relay"] == {"cpu_ms_per_call_s": 8.0}


def test_output_without_a_summary_line_is_refused():
    with pytest.raises(ValueError, match="no JSON summary"):
        summary_from_output("calls 0 connected\n")


def test_the_row_carries_cpu_latency_each_way_and_loss():
    row = row_from_summary("ours", summary(8.3, c2m_p99=13.0, m2c_max=30.0))
    assert (row.calls, row.cpu_ms_per_call_s, row.c2m_p99_ms, row.m2c_max_ms) == (20, 8.3, 13.0, 30.0)
    assert row.line() == "| ours | 20 | 8.3 | 13.0 / 4.0 ms | 2.5 / 30.0 ms | 0.00 % / 0.10 % |"


def test_an_unmeasured_figure_shows_as_nan():
    assert math.isnan(row_from_summary("ours", summary(None)).cpu_ms_per_call_s)


def test_the_ratio_is_ours_over_the_baseline():
    assert cpu_ratio(row_from_summary("ours", summary(8.0)), row_from_summary("node", summary(4.0))) == 2.0
    with pytest.raises(ValueError, match="measured nothing"):
        cpu_ratio(row_from_summary("ours", summary(8.0)), row_from_summary("node", summary(0.0)))
