"""The `calls` command against a generated history in moto: list (each filter, across pages), show, export (read
back equal to the source rows), stats (equal to figures computed here from what was generated), the plot, errors."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from analyst.cli import main
from analyst.queries import CALL_COLUMNS, TURN_COLUMNS, call_row, turn_row
from callcore.masking import mask_phone
from callcore.models import CallDirection, CallOutcome
from callcore.store import CallStore
from tests.unit.analyst.call_history import BUSINESS_NUMBERS, GeneratedCall
from tests.unit.analyst.conftest import History
from tests.unit.lambdas.events import BUCKET, TABLE

CALL_SID = re.compile(r"CA[0-9a-f]{32}")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def within(history: History, days: int) -> list[GeneratedCall]:
    since = history.now - timedelta(days=days)
    return sorted((c for c in history.calls if c.created_at >= since), key=lambda c: c.created_at, reverse=True)


def listed(output: str) -> list[str]:
    return CALL_SID.findall(output)


def test_list_pages_through_the_by_day_index_newest_first(analyst_env, capsys, monkeypatch):
    pages: list[int] = []
    original = CallStore.list_calls_by_day

    def counted(self, day, **kwargs):
        page = original(self, day, **kwargs)
        pages.append(len(page.calls))
        return page

    monkeypatch.setattr(CallStore, "list_calls_by_day", counted)
    code, out, err = run(capsys, "list", "--since", "8d", "--page-size", "7", "--limit", "1000")

    assert code == 0, err
    expected = within(analyst_env, 8)
    assert listed(out) == [c.call_sid for c in expected]
    assert len(pages) > len({c.day for c in expected}), "several pages per day"
    assert max(pages) == 7
    assert f"{len(expected)} call(s)" in err


def test_list_stops_at_the_limit_and_says_there_is_more(analyst_env, capsys):
    code, out, err = run(capsys, "list", "--since", "8d", "--limit", "5")
    assert code == 0
    assert listed(out) == [c.call_sid for c in within(analyst_env, 8)[:5]]
    assert "more" in err


def test_list_by_whole_days(analyst_env, capsys):
    day = within(analyst_env, 8)[-1].created_at.date() + timedelta(days=1)
    code, out, _ = run(capsys, "list", "--from", day.isoformat(), "--to", day.isoformat(), "--limit", "1000")
    assert code == 0
    expected = [c.call_sid for c in within(analyst_env, 8) if c.created_at.date() == day]
    assert expected
    assert listed(out) == expected


FILTERS = {
    "outcome": (["--outcome", "transferred"], lambda c: c.outcome is CallOutcome.TRANSFERRED),
    "direction": (["--direction", "outbound"], lambda c: c.direction is CallDirection.OUTBOUND),
    "transferred": (["--transferred"], lambda c: c.transferred),
    "not transferred": (["--not-transferred"], lambda c: not c.transferred),
    "minimum duration": (["--min-duration", "20"], lambda c: (c.duration_seconds or 0) >= 20),
    "number": (["--number", "+15550100231"], lambda c: c.caller == "+15550100231"),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_list_filters(analyst_env, capsys, name):
    args, keep = FILTERS[name]
    code, out, _ = run(capsys, "list", "--since", "8d", "--page-size", "25", "--limit", "1000", *args)
    assert code == 0
    expected = [c.call_sid for c in within(analyst_env, 8) if keep(c)]
    assert 0 < len(expected) < len(within(analyst_env, 8))
    assert listed(out) == expected


def test_list_by_business_profile(analyst_env, capsys, tmp_path):
    profile = tmp_path / "harbor.toml"
    profile.write_text(f'business_name = "Harbor"\nnumbers = ["{BUSINESS_NUMBERS[1]}"]\ntimezone = "UTC"\n')
    code, out, _ = run(capsys, "list", "--since", "8d", "--limit", "1000", "--profile", str(profile))
    assert code == 0
    expected = [c.call_sid for c in within(analyst_env, 8) if c.business == BUSINESS_NUMBERS[1]]
    assert expected
    assert listed(out) == expected


def test_list_shows_numbers_masked_only(analyst_env, capsys):
    code, out, _ = run(capsys, "list", "--since", "8d", "--limit", "1000")
    assert code == 0
    for call in within(analyst_env, 8):
        assert call.caller not in out
    assert mask_phone(within(analyst_env, 8)[0].caller) in out


def test_show_reads_the_call_as_a_person_would(analyst_env, capsys):
    call = next(
        c
        for c in analyst_env.calls
        if c.transferred and any(t.tool_calls for t in c.turns) and any(t.interrupted for t in c.turns)
    )
    code, out, err = run(capsys, "show", call.call_sid)
    assert code == 0, err
    for turn in call.turns:
        assert turn.text in out
    assert "[interrupted after" in out
    assert "get_business_hours({})" in out
    assert '{"open":"08:00","close":"20:00"}' in out
    assert "caller asked for a person" in out
    assert "Wants a refund." in out
    assert f"${float(call.cost):.4f}" in out
    assert f"greeting {call.greeting_ms} ms" in out
    assert call.caller not in out


def test_export_csv_reads_back_equal_to_the_records(analyst_env, capsys, tmp_path):
    path = tmp_path / "calls.csv"
    code, _, err = run(capsys, "export", "--since", "8d", "--format", "csv", "--output", str(path))
    assert code == 0, err
    expected = [call_row(analyst_env.store.require_call(c.call_sid)) for c in within(analyst_env, 8)]
    options = pa_csv.ConvertOptions(column_types=CALL_COLUMNS, strings_can_be_null=True)
    assert pa_csv.read_csv(path, convert_options=options).to_pylist() == expected
    assert f"exported {len(expected)} row(s)" in err


def test_export_csv_to_stdout(analyst_env, capsys):
    code, out, _ = run(capsys, "export", "--since", "8d", "--format", "csv")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].replace('"', "").split(",") == CALL_COLUMNS.names
    assert len(lines) == 1 + len(within(analyst_env, 8))


def test_export_parquet_reads_back_equal_to_the_records(analyst_env, capsys, tmp_path):
    path = tmp_path / "calls.parquet"
    code, _, err = run(capsys, "export", "--since", "8d", "--format", "parquet", "-o", str(path))
    assert code == 0, err
    expected = [call_row(analyst_env.store.require_call(c.call_sid)) for c in within(analyst_env, 8)]
    table = pq.read_table(path)
    assert table.schema.names == CALL_COLUMNS.names
    assert table.to_pylist() == expected


def test_export_per_turn_as_json_lines(analyst_env, capsys, tmp_path):
    path = tmp_path / "turns.jsonl"
    code, _, err = run(capsys, "export", "--since", "2d", "--per", "turn", "--format", "jsonl", "-o", str(path))
    assert code == 0, err
    expected = [turn_row(turn) for call in within(analyst_env, 2) for turn in call.turns]
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == expected
    assert set(rows[0]) == set(TURN_COLUMNS.names)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (Hyndman & Fan type 7)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def expected_figures(calls: list[GeneratedCall]) -> dict[str, dict[str, Any]]:
    days: dict[str, dict[str, Any]] = {}
    for day in sorted({c.day for c in calls}):
        of_day = [c for c in calls if c.day == day]
        greetings = [c.greeting_ms for c in of_day if c.greeting_ms is not None]
        turns = [ms for c in of_day for ms in c.turn_ms]
        days[day] = {
            "calls": len(of_day),
            "minutes": sum(c.duration_seconds or 0 for c in of_day) / 60,
            "outcomes": Counter(c.outcome.value for c in of_day),
            "transfer_rate_pct": 100 * sum(c.transferred for c in of_day) / len(of_day),
            "greeting_p50_ms": percentile(greetings, 0.5),
            "greeting_p95_ms": percentile(greetings, 0.95),
            "turn_p50_ms": percentile(turns, 0.5),
            "turn_p95_ms": percentile(turns, 0.95),
            "barge_ins": sum(c.barge_ins for c in of_day),
            "cost_usd": float(sum((c.cost for c in of_day if c.cost is not None), start=0)),
        }
    return days


def test_daily_figures_equal_those_computed_from_the_generated_calls(analyst_env):
    from analyst.queries import daily_figures

    records = [analyst_env.store.require_call(c.call_sid) for c in within(analyst_env, 8)]
    figures = {f.day: f for f in daily_figures(records)}
    expected = expected_figures(within(analyst_env, 8))
    assert list(figures) == list(expected)
    for day, want in expected.items():
        got = figures[day]
        assert got.calls == want["calls"]
        assert got.minutes == pytest.approx(want["minutes"])
        assert got.outcomes == dict(want["outcomes"])
        assert got.transfer_rate_pct == pytest.approx(want["transfer_rate_pct"])
        for name in ("greeting_p50_ms", "greeting_p95_ms", "turn_p50_ms", "turn_p95_ms"):
            assert getattr(got, name) == pytest.approx(want[name]), (day, name)
        assert got.barge_ins == want["barge_ins"]
        assert got.cost_usd == pytest.approx(want["cost_usd"])


def test_stats_prints_a_row_per_day_and_draws_a_png(analyst_env, capsys, tmp_path):
    plot = tmp_path / "calls.png"
    code, out, err = run(capsys, "stats", "--since", "8d", "--plot", str(plot))
    assert code == 0, err
    for day, want in expected_figures(within(analyst_env, 8)).items():
        row = next(line for line in out.splitlines() if line.strip().startswith(day))
        cells = re.split(r"\s{2,}", row.strip())
        assert cells[1] == str(want["calls"])
        assert cells[2] == f"{want['minutes']:.1f}"
        assert cells[4] == f"{want['transfer_rate_pct']:.1f}"
        assert cells[7] == str(want["barge_ins"])
        assert cells[8] == f"${want['cost_usd']:.2f}"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(plot) as image:
        assert image.size[0] >= 800
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None
        assert len(colours) > 20, "the picture has drawn content, not a blank canvas"


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("calls: error: "), err
    for needle in needles:
        assert needle in err


def test_an_unknown_call_is_a_one_line_error(analyst_env, capsys):
    code, _, err = run(capsys, "show", "CA" + "0" * 32)
    assert_one_line_error(code, err, "no call CA" + "0" * 32)


def test_a_missing_table_is_a_one_line_error(analyst_env, capsys):
    code, _, err = run(capsys, "list", "--table", "no-such-table")
    assert_one_line_error(code, err, "no-such-table does not exist")


def test_a_missing_bucket_is_a_one_line_error(analyst_env, capsys):
    code, _, err = run(capsys, "show", analyst_env.calls[-1].call_sid, "--bucket", "no-such-bucket")
    assert_one_line_error(code, err, "no-such-bucket does not exist")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["list", "--from", "2026-13-01"], "bad --from"),
        (["list", "--since", "7x"], "bad --since"),
        (["list", "--since", "7d", "--from", "2026-11-01"], "either --since or --from"),
        (["stats", "--from", "2026-11-20", "--to", "2026-11-10"], "after --to"),
        (["list", "--outcome", "happy"], "--outcome"),
        (["show", "CA123"], "bad call SID"),
        (["export", "--format", "parquet"], "--output"),
        (["list", "--number", "555-0100"], "bad --number"),
    ],
)
def test_bad_input_is_a_one_line_error(analyst_env, capsys, args, needle):
    code, _, err = run(capsys, *args)
    assert_one_line_error(code, err, needle)


def test_no_table_configured_is_a_one_line_error(analyst_env, capsys, monkeypatch):
    monkeypatch.delenv("CALLS_TABLE")
    code, _, err = run(capsys, "list")
    assert_one_line_error(code, err, "CALLS_TABLE")


def test_no_credentials_is_a_one_line_error(analyst_env, capsys, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _, err = run(capsys, "list")
    assert_one_line_error(code, err, "no AWS credentials")


def test_python_m_analyst_is_the_calls_command():
    result = subprocess.run(
        [sys.executable, "-m", "analyst", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    for command in ("list", "show", "export", "stats"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE)
    pyproject = (Path(__file__).parents[3] / "pyproject.toml").read_text()
    assert 'calls = "analyst.cli:main"' in pyproject


def test_the_table_and_bucket_come_from_a_stacks_outputs(analyst_env, capsys, monkeypatch):
    import boto3

    from infra.constants import Output

    template = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {
            Output.CALLS_TABLE_NAME.value: {"Value": TABLE},
            Output.TRANSCRIPTS_BUCKET_NAME.value: {"Value": BUCKET},
        },
    }
    boto3.client("cloudformation").create_stack(StackName="VoiceAgentTest", TemplateBody=json.dumps(template))
    monkeypatch.delenv("CALLS_TABLE")
    monkeypatch.delenv("TRANSCRIPTS_BUCKET")

    code, out, err = run(capsys, "list", "--stack", "VoiceAgentTest", "--since", "8d", "--limit", "1000")
    assert code == 0, err
    assert listed(out) == [c.call_sid for c in within(analyst_env, 8)]

    code, _, err = run(capsys, "list", "--stack", "NoSuchStack")
    assert_one_line_error(code, err, "NoSuchStack")


def test_a_number_finds_its_calls_after_it_was_masked_given_the_hash_secret(analyst_env, capsys, monkeypatch):
    from pydantic import SecretStr

    from callcore.masking import caller_hash, mask_phone
    from callcore.settings import caller_hash_key

    monkeypatch.delenv("CALLER_HASH_SECRET", raising=False)
    secret = "test-caller-hash-secret"
    number = "+15550100231"
    calls = [c for c in within(analyst_env, 8) if c.caller == number]
    assert calls
    masked = calls[0].call_sid
    key = caller_hash_key(SecretStr(secret), None)
    # What the sweep leaves after RAW_NUMBER_RETENTION_HOURS: the masked number and the keyed hash.
    record = analyst_env.store.require_call(masked)
    field = "from_number" if record.direction.value == "inbound" else "to_number"
    analyst_env.store.update_call(masked, {field: mask_phone(number), "caller_hash": caller_hash(key, number)})
    try:
        code, out, _ = run(capsys, "list", "--since", "8d", "--limit", "1000", "--number", number)
        assert code == 0
        assert masked not in listed(out), "without the hash secret a masked record cannot be matched"
        monkeypatch.setenv("CALLER_HASH_SECRET", secret)
        code, out, _ = run(capsys, "list", "--since", "8d", "--limit", "1000", "--number", number)
        assert listed(out) == [c.call_sid for c in calls]
    finally:
        analyst_env.store.update_call(masked, {field: number, "caller_hash": None})
