"""The `calls` command (also `python -m analyst`): list, show, export and stats over the calls the agent took.

    calls list --since 7d --outcome transferred
    calls show CA0123...  [--audio [FILE]]
    calls export --from 2026-11-01 --to 2026-11-30 --per turn --format parquet --output turns.parquet
    calls stats --since 30d --plot calls.png

A user error (no credentials, no such table, bucket or call, a bad date or option) prints one line on stderr and
exits with code 2; the data goes to stdout, progress and counts to stderr.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from analyst.export import ExportFormat, write_rows
from analyst.plot import plot_figures
from analyst.queries import (
    CALL_COLUMNS,
    DEFAULT_PAGE_SIZE,
    TURN_COLUMNS,
    CallFilter,
    call_row,
    check_number,
    daily_figures,
    date_range,
    iter_calls,
    number_hash,
    profile_numbers,
    read_turns,
    turn_row,
)
from analyst.render import call_view, calls_table, figures_table
from analyst.source import DataSource, UserError, aws_errors, resolve_source
from callcore.models import CALL_SID_PATTERN, CallDirection, CallOutcome, RecordingState
from callcore.store import CallNotFound

USER_ERROR_EXIT = 2
F = TypeVar("F", bound=Callable[..., Any])


def _stdout() -> Console:
    return Console(soft_wrap=False)


def _stderr() -> Console:
    return Console(stderr=True)


def source_options(command: F) -> F:
    """--table / --bucket / --stack on every command; resolved into a DataSource before the command runs."""

    @click.option("--stack", metavar="NAME", help="read the table and bucket names from this stack's outputs")
    @click.option("--bucket", metavar="NAME", help="transcripts bucket (default: $TRANSCRIPTS_BUCKET)")
    @click.option("--table", metavar="NAME", help="call table (default: $CALLS_TABLE)")
    @functools.wraps(command)
    def wrapper(*args: Any, table: str | None, bucket: str | None, stack: str | None, **kwargs: Any) -> Any:
        return command(*args, source=resolve_source(table=table, bucket=bucket, stack=stack), **kwargs)

    return wrapper  # type: ignore[return-value]


def range_options(command: F) -> F:
    @click.option("--to", "to_day", metavar="YYYY-MM-DD", help="last UTC day (with --from; default today)")
    @click.option("--from", "from_day", metavar="YYYY-MM-DD", help="first UTC day")
    @click.option("--since", metavar="AGE", help="calls started within this age: 30m, 12h, 7d (default), 2w")
    @functools.wraps(command)
    def wrapper(*args: Any, since: str | None, from_day: str | None, to_day: str | None, **kwargs: Any) -> Any:
        return command(*args, span=date_range(since=since, from_day=from_day, to_day=to_day), **kwargs)

    return wrapper  # type: ignore[return-value]


def filter_options(command: F) -> F:
    @click.option("--profile", metavar="ID|FILE", help="calls to the numbers of a business profile (profiles/ID.toml)")
    @click.option(
        "--number",
        metavar="E164",
        help="calls from or to this number (also once masked, with CALLER_HASH_SECRET in the environment)",
    )
    @click.option("--min-duration", type=click.IntRange(min=0), metavar="SECONDS", help="calls at least this long")
    @click.option("--transferred/--not-transferred", default=None, help="calls handed (or not) to a person")
    @click.option("--direction", type=click.Choice([d.value for d in CallDirection]))
    @click.option("--outcome", type=click.Choice([o.value for o in CallOutcome]))
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        outcome: str | None,
        direction: str | None,
        transferred: bool | None,
        min_duration: int | None,
        number: str | None,
        profile: str | None,
        **kwargs: Any,
    ) -> Any:
        call_filter = CallFilter(
            outcome=CallOutcome(outcome) if outcome else None,
            direction=CallDirection(direction) if direction else None,
            transferred=transferred,
            min_duration_seconds=min_duration,
            number=check_number(number) if number else None,
            number_hash=number_hash(check_number(number), os.environ) if number else None,
            business_numbers=profile_numbers(profile) if profile else frozenset(),
        )
        return command(*args, call_filter=call_filter, **kwargs)

    return wrapper  # type: ignore[return-value]


page_size_option = click.option(
    "--page-size",
    type=click.IntRange(1, 1000),
    default=DEFAULT_PAGE_SIZE,
    show_default=True,
    help="calls per request to the by-day index",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def calls() -> None:
    """List, read, export and summarize the calls the phone agent took (AWS, or AWS_ENDPOINT_URL)."""


@calls.command("list")
@source_options
@range_options
@filter_options
@page_size_option
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="most calls shown")
def list_calls(source: DataSource, span: Any, call_filter: CallFilter, page_size: int, limit: int) -> None:
    """Calls in a date range, newest first."""
    with aws_errors(f"table {source.table}"):
        found = _take(iter_calls(source.store, span, call_filter, page_size=page_size), limit + 1)
    shown = found[:limit]
    _stdout().print(calls_table(shown))
    more = " (more: raise --limit or narrow the range)" if len(found) > limit else ""
    _stderr().print(f"{len(shown)} call(s){more}", highlight=False)


def _take(records: Iterator[Any], count: int) -> list[Any]:
    taken = []
    for record in records:
        taken.append(record)
        if len(taken) >= count:
            break
    return taken


@calls.command("show")
@source_options
@click.argument("call_sid")
@click.option(
    "--audio",
    "audio",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[FILE]",
    help="download the recording (default file: CALLSID.wav)",
)
def show_call(source: DataSource, call_sid: str, audio: str | None) -> None:
    """One call as a person reads it: who said what and when, tools, transfer, latencies, cost, analysis."""
    if not CALL_SID_PATTERN.match(call_sid):
        raise UserError(f"bad call SID {call_sid!r}: CA followed by 32 hex digits")
    store = source.store
    with aws_errors(f"table {source.table}"):
        try:
            record = store.require_call(call_sid)
        except CallNotFound:
            raise UserError(f"no call {call_sid} in table {source.table}") from None
    archive = source.archive
    with aws_errors(f"bucket {source.bucket}"):
        turns = read_turns(store, archive, record)
    _stdout().print(call_view(record, turns))
    if audio is None:
        return
    recording = record.recording
    if recording is None or recording.state is not RecordingState.STORED or not recording.key:
        raise UserError(f"call {call_sid} has no stored recording")
    destination = Path(audio or f"{call_sid}.wav")
    partial = destination.with_name(f".{destination.name}.partial")
    with aws_errors(f"bucket {source.bucket}"), partial.open("wb") as file:
        archive.download(recording.key, file)
    partial.replace(destination)
    _stderr().print(f"audio: {destination} (left: caller, right: agent)", highlight=False)


@calls.command("export")
@source_options
@range_options
@filter_options
@page_size_option
@click.option("--format", "fmt", type=click.Choice([f.value for f in ExportFormat]), default="csv", show_default=True)
@click.option("--per", type=click.Choice(["call", "turn"]), default="call", show_default=True, help="one row per")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="file (default: stdout)")
def export_calls(  # noqa: PLR0917 - click passes every option as an argument
    source: DataSource, span: Any, call_filter: CallFilter, page_size: int, fmt: str, per: str, output: Path | None
) -> None:
    """Calls in a date range as CSV, JSON Lines or Parquet, one row per call or per turn."""
    export_format = ExportFormat(fmt)
    if export_format is ExportFormat.PARQUET and output is None:
        raise UserError("Parquet is binary: give --output FILE.parquet")
    store = source.store
    archive = source.archive if per == "turn" else None
    columns = TURN_COLUMNS if per == "turn" else CALL_COLUMNS
    progress = Progress(
        SpinnerColumn(),
        TextColumn("reading calls"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_stderr(),
        transient=True,
    )
    task = progress.add_task("calls", total=None)

    def rows() -> Iterator[dict[str, Any]]:
        for seen, record in enumerate(iter_calls(store, span, call_filter, page_size=page_size), start=1):
            progress.update(task, completed=seen)
            if archive is None:
                yield call_row(record)
            else:
                yield from (turn_row(turn) for turn in read_turns(store, archive, record))

    what = f"table {source.table}" + (f" / bucket {source.bucket}" if archive else "")
    with aws_errors(what), progress:
        count = write_rows(rows(), fmt=export_format, schema=columns, output=output, stdout=sys.stdout.buffer)
    sys.stdout.flush()
    where = f" to {output}" if output else ""
    _stderr().print(f"exported {count} row(s), one per {per}{where}", highlight=False)


@calls.command("stats")
@source_options
@range_options
@filter_options
@page_size_option
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="also draw the figures into FILE.png")
def stats(source: DataSource, span: Any, call_filter: CallFilter, page_size: int, plot: Path | None) -> None:
    """Daily figures: calls, minutes, outcomes, transfer rate, latency p50/p95, barge-ins, cost."""
    if plot is not None and plot.suffix.lower() != ".png":
        raise UserError(f"--plot {plot}: the picture is a PNG, name it FILE.png")
    with aws_errors(f"table {source.table}"):
        records = list(iter_calls(source.store, span, call_filter, page_size=page_size))
    figures = daily_figures(records)
    _stdout().print(figures_table(figures))
    if plot is not None:
        plot_figures(figures, plot)
        _stderr().print(f"plot: {plot}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Run the command; every user error (ours or click's) is one line on stderr and exit code 2."""
    try:
        calls.main(args=argv, prog_name="calls", standalone_mode=False)
    except UserError as error:
        print(f"calls: error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT
    except click.UsageError as error:
        print(f"calls: error: {error.format_message()}", file=sys.stderr)
        return USER_ERROR_EXIT
    except click.ClickException as error:
        print(f"calls: error: {error.format_message()}", file=sys.stderr)
        return error.exit_code
    except click.Abort:
        print("calls: aborted", file=sys.stderr)
        return 130
    return 0
