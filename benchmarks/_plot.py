"""Charts of what the benchmarks measured, one SVG per scenario, drawn with matplotlib.

Only ``--plot`` imports this module, so the benchmarks run without matplotlib otherwise.
The SVGs are written reproducibly (no date, fixed ids): rerunning on the same figures gives
the same file, so the copies under ``docs/img/`` change only when the figures do.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("svg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks._common import Result

plt.rcParams.update(
    {
        "svg.hashsalt": "exotel-async",
        "svg.fonttype": "none",  # text stays text: smaller files, searchable, themable
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)
_BLUE, _RED, _GREY, _ORANGE = "#1565c0", "#c62828", "#616161", "#ef6c00"
_STEP = 0.1  # seconds between points of a rate-over-time line


def _rate_limit(result: Result) -> Figure:
    """Accepted requests per second over time against the allowed rate, throttles marked."""
    traces = result.series
    fig, axes = plt.subplots(
        len(traces), 1, figsize=(8, 0.6 + 2.2 * len(traces)), sharex=True, squeeze=False
    )
    for ax, (name, trace) in zip(axes[:, 0], traces.items(), strict=True):
        requests, window = trace["requests"], trace["window"]
        accepted = sorted(t for t, status in requests if status not in (429, 503))
        throttled = [t for t, status in requests if status in (429, 503)]
        end = max((t for t, _ in requests), default=0.0)
        # Requests in the trailing window, as the server counts them, from the first full one.
        times = [window + i * _STEP for i in range(int((end - window) / _STEP) + 2)]
        rates = [
            (bisect.bisect_right(accepted, t) - bisect.bisect_right(accepted, t - window)) / window
            for t in times
        ]
        ax.plot(times, rates, color=_BLUE, label=f"accepted requests/s, trailing {window:g} s")
        ax.axhline(trace["allowed"], color=_GREY, linestyle="--", label="allowed rate")
        ax.plot(
            throttled,
            [0] * len(throttled),
            "x",
            color=_RED,
            markersize=8,
            clip_on=False,
            zorder=3,
            label="a throttled request (429)",
        )
        ax.set_title(f"{name}: {len(throttled)} throttled of {len(requests)}", loc="left")
        ax.set_ylabel("requests/s")
        ax.set_ylim(0, max([*rates, trace["allowed"]]) * 1.25)
    # Shared, so that the panels' seconds line up; the longest run sets the span.
    longest = max(t for trace in traces.values() for t, _ in trace["requests"])
    axes[-1, 0].set_xlim(0, longest)
    axes[-1, 0].set_xlabel("seconds since the first request")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.06),
    )
    fig.suptitle(result.title, fontsize=10)
    return fig


def _label_points(
    ax: Axes, points: Iterable[tuple[float, float]], template: str, *, below: bool = False
) -> None:
    """Write each point's value just above it (or below)."""
    for x, y in points:
        ax.annotate(
            template.format(y),
            (x, y),
            textcoords="offset points",
            xytext=(0, -14 if below else 7),
            ha="center",
            fontsize=8,
        )


def _latency_hiding(result: Result) -> Figure:
    """Records per second against pages in flight, with the sequential loop as baseline."""
    sweep = result.series["records/s by concurrency"]
    client = {int(c): rate for c, rate in sweep["client"].items()}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    pages, latency = sweep["pages"], sweep["latency"]
    # The first page goes alone (it tells the total), then full rounds of ``c`` pages.
    ideal = [pages * sweep["page_size"] / ((1 + -(-(pages - 1) // c)) * latency) for c in client]
    ax.plot(list(client), ideal, ":", color=_GREY, label="ideal: latency alone")
    ax.plot(list(client), list(client.values()), "o-", color=_BLUE, label="client.sms_details")
    _label_points(ax, client.items(), "{:,.0f}")
    ax.axhline(
        sweep["baseline"],
        color=_GREY,
        linestyle="--",
        label=f"product page's loop ({sweep['baseline']:,.0f})",
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(client), [str(c) for c in client])
    ax.set_xlabel("concurrency (pages in flight)")
    ax.set_ylabel("records/s")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{result.title}", loc="left", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _scaling(result: Result) -> Figure:
    """Peak RSS of the export CLI against records exported, per format."""
    rows = result.series["peak RSS by records"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    # CSV hollow and labelled below, so that it does not hide JSONL at the same size.
    for fmt, colour, fill, below in (
        ("jsonl", _BLUE, _BLUE, False),
        ("csv", _ORANGE, "none", True),
    ):
        points = [(r["records"], r["peak_rss_mb"]) for r in rows if r["format"] == fmt]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(
                xs, ys, "o-", color=colour, markerfacecolor=fill, markersize=8, label=fmt.upper()
            )
            _label_points(
                ax, points, f"{fmt.upper()} {{:.1f}} MB" if below else "{:.1f} MB", below=below
            )
    ax.set_xscale("log")
    sizes = sorted({r["records"] for r in rows})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("records exported")
    ax.set_ylabel("peak RSS (MB)")
    ax.set_ylim(0, max(r["peak_rss_mb"] for r in rows) * 1.3)
    ax.set_title("exotel-async export: peak memory by size", loc="left", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _cpu_per_record(result: Result) -> Figure:
    """Client CPU per record, split into stages, for the typed stream and the raw loop."""
    stages: dict[str, dict[str, float]] = result.series["CPU per record by stage (us)"]
    colours = {
        "JSON decode": _BLUE,
        "building records": _ORANGE,
        "HTTP, event loop, walk, dedupe": _GREY,
    }
    fig, ax = plt.subplots(figsize=(7, 2.6))
    for row, parts in enumerate(reversed(stages.values())):
        left = 0.0
        for stage, value in parts.items():
            ax.barh(row, value, left=left, color=colours[stage], label=stage, height=0.5)
            if value >= 0.3:
                ax.text(
                    left + value / 2,
                    row,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    color="white",
                    fontsize=8,
                )
            left += value
        ax.text(left + 0.05, row, f"{left:.2f} µs", va="center", fontsize=9)
    ax.set_yticks(range(len(stages)), list(reversed(stages)))
    ax.set_xlabel("client CPU per record (µs)")
    ax.set_title(result.title, loc="left", fontsize=10)
    handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    ax.legend(
        [handles[stage] for stage in colours],
        list(colours),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    ax.grid(axis="y", visible=False)
    return fig


PLOTTERS: dict[str, Callable[[Result], Figure]] = {
    "rate_limit": _rate_limit,
    "latency_hiding": _latency_hiding,
    "scaling": _scaling,
    "cpu_per_record": _cpu_per_record,
}


def write_plots(results: Sequence[Result], directory: Path) -> list[Path]:
    """Draw every result that has a plotter into ``directory``/SCENARIO.svg."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for result in results:
        plotter = PLOTTERS.get(result.scenario)
        if plotter is None or not result.series:
            continue
        fig = plotter(result)
        path = directory / f"{result.scenario}.svg"
        fig.savefig(path, format="svg", bbox_inches="tight", metadata=_METADATA)
        plt.close(fig)
        written.append(path)
    return written


_METADATA: dict[str, Any] = {"Date": None, "Creator": "exotel-async benchmarks"}
