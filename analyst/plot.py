"""`calls stats --plot FILE.png`: the daily figures as one picture (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt

from analyst.queries import DayFigures


def plot_figures(figures: list[DayFigures], path: Path) -> None:
    days = [d.day[5:] for d in figures]  # MM-DD: the year is in the title
    title_year = figures[0].day[:4] if figures else ""
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), constrained_layout=True)
    fig.suptitle(f"Calls per day (UTC) {title_year}")
    calls_ax, latency_ax, transfer_ax, cost_ax = axes.flat

    calls_ax.bar(days, [d.calls for d in figures], color="#4C72B0", label="calls")
    minutes_ax = calls_ax.twinx()
    minutes_ax.plot(days, [d.minutes for d in figures], color="#DD8452", marker="o", label="minutes")
    calls_ax.set_title("calls and minutes")
    calls_ax.set_ylabel("calls")
    minutes_ax.set_ylabel("minutes")

    for values, label, style in [
        ([d.greeting_p50_ms for d in figures], "greeting p50", "-o"),
        ([d.greeting_p95_ms for d in figures], "greeting p95", "--o"),
        ([d.turn_p50_ms for d in figures], "turn p50", "-s"),
        ([d.turn_p95_ms for d in figures], "turn p95", "--s"),
    ]:
        latency_ax.plot(days, [float("nan") if v is None else v for v in values], style, label=label)
    latency_ax.set_title("latency (ms)")
    latency_ax.legend(loc="upper left", fontsize="small")

    transfer_ax.bar(days, [d.transfer_rate_pct for d in figures], color="#55A868", label="transfer rate %")
    barge_ax = transfer_ax.twinx()
    barge_ax.plot(days, [d.barge_ins for d in figures], color="#C44E52", marker="o", label="barge-ins")
    transfer_ax.set_title("transfer rate (%) and barge-ins")

    cost_ax.bar(days, [d.cost_usd for d in figures], color="#8172B3")
    cost_ax.set_title("estimated cost (USD)")

    for ax in axes.flat:
        ax.tick_params(axis="x", labelrotation=45)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
