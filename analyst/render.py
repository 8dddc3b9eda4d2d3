"""What the commands print (rich): the call list, one call as a person reads it, the daily figures."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from rich import box
from rich.console import Group, JustifyMethod, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from analyst.queries import DayFigures
from callcore.masking import mask_phone
from callcore.models import CallRecord, TranscriptTurn, TurnRole


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _seconds(value: int | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(value, 60)
    return f"{minutes}:{seconds:02d}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _usd(value: object) -> str:
    return "-" if value is None else f"${float(str(value)):.4f}"


def calls_table(records: Iterable[CallRecord]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, collapse_padding=True)
    columns: list[tuple[str, JustifyMethod]] = [
        ("started (UTC)", "left"), ("call", "left"), ("dir", "left"), ("caller", "left"), ("outcome", "left"),
        ("length", "right"), ("turns", "right"), ("greet ms", "right"), ("cost", "right"), ("resolution", "left"),
    ]  # fmt: skip
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name == "call")
    for record in records:
        table.add_row(
            record.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            record.call_sid,
            "in" if record.direction.value == "inbound" else "out",
            mask_phone(record.caller_number),
            (record.outcome.value if record.outcome else record.status.value)
            + (" ↪" if record.transfer_target else ""),
            _seconds(record.duration_seconds),
            str(record.turn_count),
            _ms(record.latencies.greeting_ms),
            _usd(record.estimated_cost_usd),
            record.analysis.resolution.value if record.analysis else "",
        )
    return table


def call_header(record: CallRecord) -> RenderableType:
    lines = Table.grid(padding=(0, 2))
    lines.add_column(style="bold")
    lines.add_column()
    lines.add_row("call", f"{record.call_sid} ({record.direction.value})")
    lines.add_row("caller", f"{mask_phone(record.caller_number)} → {mask_phone(record.business_number)}")
    lines.add_row("when", f"{_when(record.created_at)} UTC, {_seconds(record.duration_seconds)} long")
    outcome = record.outcome.value if record.outcome else "-"
    lines.add_row("outcome", f"{outcome} (Twilio status {record.status.value})")
    latencies = record.latencies
    tools = f"; tools p50 {_ms(_median(latencies.tool_ms))} ms" if latencies.tool_ms else ""
    lines.add_row(
        "latency",
        f"greeting {_ms(latencies.greeting_ms)} ms; turns p50 {_ms(latencies.turn_p50_ms)} ms,"
        f" p95 {_ms(latencies.turn_p95_ms)} ms{tools}",
    )
    lines.add_row(
        "activity", f"{record.turn_count} turns, {record.barge_in_count} barge-ins, {record.tool_call_count} tool calls"
    )
    usage = record.usage
    tokens_in, tokens_out = (
        usage.input_audio_tokens + usage.input_text_tokens,
        usage.output_audio_tokens + usage.output_text_tokens,
    )
    analysis_cost = f" (analysis {_usd(record.analysis.cost_usd)})" if record.analysis else ""
    lines.add_row(
        "cost",
        f"{_usd(record.estimated_cost_usd)}{analysis_cost}; tokens in {tokens_in}, out {tokens_out}",
    )
    if record.transfer_reason or record.transfer_target:
        lines.add_row("transfer", f"to {mask_phone(record.transfer_target)}: {record.transfer_reason or '-'}")
        lines.add_row("", f"summary: {record.transfer_summary or '-'}")
    if record.recording is not None:
        recording = record.recording
        where = recording.key or "(still with Twilio)"
        lines.add_row("recording", f"{recording.state.value}: {where} ({_seconds(recording.duration_seconds)})")
    if record.error:
        lines.add_row("error", record.error)
    return lines


def _median(values: list[int]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


TOOL_TEXT_CHARS = 90  # tool arguments and results in full: `calls export --per turn`


def _clip(text: str) -> str:
    return text if len(text) <= TOOL_TEXT_CHARS else text[: TOOL_TEXT_CHARS - 1] + "…"


def conversation(record: CallRecord, turns: list[TranscriptTurn]) -> Table:
    """Who spoke, when (from the call's start), interrupted turns marked, each tool call with its result."""
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1), expand=False)
    table.add_column("at", justify="right", no_wrap=True)
    table.add_column("who", no_wrap=True)
    table.add_column("what")
    origin = record.answered_at or record.created_at
    for turn in sorted(turns, key=lambda t: t.index):
        offset = max(0.0, (turn.started_at - origin).total_seconds())
        text = Text(turn.text or "")
        if turn.interrupted:
            heard = f" after {turn.heard_ms / 1000:.1f} s" if turn.heard_ms is not None else ""
            text.append(f"  [interrupted{heard}]", style="yellow")
        for tool in turn.tool_calls:
            status = "" if tool.ok else " FAILED"
            arguments, result = _clip(tool.arguments), _clip(tool.result)
            text.append(f"\n  ↳ {tool.name}({arguments}) → {result} ({tool.duration_ms} ms{status})", style="cyan")
        who = Text(turn.role.value, style="green" if turn.role is TurnRole.AGENT else "magenta")
        table.add_row(f"{int(offset // 60)}:{offset % 60:04.1f}", who, text)
    return table


def analysis_panel(record: CallRecord) -> RenderableType | None:
    analysis = record.analysis
    if analysis is None:
        return None
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("summary", analysis.summary)
    grid.add_row("intent", analysis.intent)
    grid.add_row("resolution", analysis.resolution.value)
    grid.add_row("sentiment", f"{analysis.sentiment:+.2f}")
    grid.add_row("lead score", f"{analysis.lead_score}/100: {analysis.lead_reason}")
    for number, item in enumerate(analysis.action_items, start=1):
        grid.add_row("action" if number == 1 else "", f"{number}. {item}")
    title = f"analysis ({analysis.model}, schema v{analysis.schema_version}, {_when(analysis.analyzed_at)} UTC)"
    return Panel(grid, title=title, title_align="left")


def call_view(record: CallRecord, turns: list[TranscriptTurn]) -> RenderableType:
    parts: list[RenderableType] = [call_header(record), Text(""), conversation(record, turns)]
    panel = analysis_panel(record)
    if panel is not None:
        parts.extend([Text(""), panel])
    return Group(*parts)


# Short names in the daily table, so a day's outcomes fit on one line (`calls list --outcome` takes the full ones).
OUTCOME_LABELS = {
    "completed_by_agent": "agent",
    "caller_hung_up": "hung up",
    "transferred": "transferred",
    "overflow_to_human": "overflow",
    "max_duration": "max length",
    "not_answered": "unanswered",
    "voicemail": "voicemail",
    "error": "error",
}


def figures_table(figures: list[DayFigures]) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=False,
        collapse_padding=True,
        caption="UTC days; min: call minutes; xfer: transferred to a person; latencies in ms; cost: estimated USD",
        caption_justify="left",
    )
    for name in ("day", "calls", "min", "outcomes", "xfer %", "greet p50/p95", "turn p50/p95", "barge-ins",
                 "cost"):  # fmt: skip
        justify: JustifyMethod = "left" if name in {"day", "outcomes"} else "right"
        table.add_column(name, justify=justify, no_wrap=True)
    for day in figures:
        outcomes = ", ".join(f"{OUTCOME_LABELS.get(name, name)} {count}" for name, count in day.outcomes.items())
        table.add_row(
            day.day,
            str(day.calls),
            f"{day.minutes:.1f}",
            outcomes,
            f"{day.transfer_rate_pct:.1f}",
            f"{_ms(day.greeting_p50_ms)}/{_ms(day.greeting_p95_ms)}",
            f"{_ms(day.turn_p50_ms)}/{_ms(day.turn_p95_ms)}",
            str(day.barge_ins),
            f"${day.cost_usd:.2f}",
        )
    if len(figures) > 1:
        calls = sum(d.calls for d in figures)
        table.add_section()
        table.add_row(
            "all",
            str(calls),
            f"{sum(d.minutes for d in figures):.1f}",
            "",
            f"{sum(d.transfer_rate_pct * d.calls for d in figures) / calls:.1f}",
            "",
            "",
            str(sum(d.barge_ins for d in figures)),
            f"${sum(d.cost_usd for d in figures):.2f}",
        )
    return table
