"""Scenario 5, scaling: the real ``exotel-async export`` CLI, wall time and peak RSS by size.

For each size a sandbox runs as ``python -m exotel_async.testing --records N`` and the CLI
runs with ``EXOTEL_*`` pointing at it, started by a small fresh wrapper process that times
it and reads its peak RSS with ``getrusage(RUSAGE_CHILDREN)`` once it has exited (the figure
``/usr/bin/time -v`` prints as "Maximum resident set size").

By default JSONL runs at 10k, 100k and 1M records and CSV at 100k, the 1M and CSV runs
once: a 1M run takes most of a minute and the whole suite must fit in five. ``--full`` adds
CSV at 1M and repeats every run. The export target is 25,000 JSONL records/s at the largest
size.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `python benchmarks/x.py`

from benchmarks._common import (
    MEASURE_WRAPPER,
    CliSandbox,
    Result,
    cli_command,
    client_env,
    runs_for,
    script_main,
)

CAMPAIGN = "491dd6c97d64475ba0ce346a18530ce5"
_EXPORTED = re.compile(r"exported (\d+) records")


def export_once(sandbox: CliSandbox, records: int, fmt: str, workdir: Path) -> tuple[float, float]:
    """Run one export to a fresh file; return (wall seconds, peak RSS in MB)."""
    output = workdir / f"export-{records}.{fmt}"
    argv = [*cli_command(), "export", sandbox.campaign, "--output", str(output)]
    # --force: a repeat's output was unlinked, but its completed checkpoint remains.
    argv += ["--format", fmt, "--force"]
    env = {**client_env(), **sandbox.env}
    completed = subprocess.run(
        [sys.executable, "-c", MEASURE_WRAPPER, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output.unlink(missing_ok=True)
    match = _EXPORTED.search(completed.stderr)
    report: dict[str, Any] = json.loads(completed.stdout) if completed.returncode == 0 else {}
    # A run that exported the wrong number of records measured nothing.
    if report.get("code") != 0 or match is None or int(match.group(1)) != records:
        raise RuntimeError(f"export of {records} records failed: {completed.stderr.strip()}")
    # Linux reports ru_maxrss in kilobytes.
    return float(report["elapsed"]), report["maxrss_kb"] / 1024


def _plan(quick: bool, full: bool) -> list[tuple[str, int]]:
    """(format, records) pairs to measure, smallest first."""
    if quick:
        return [("jsonl", 2_000), ("jsonl", 5_000), ("csv", 5_000)]
    plan = [("jsonl", 10_000), ("jsonl", 100_000), ("jsonl", 1_000_000), ("csv", 100_000)]
    return [*plan, ("csv", 1_000_000)] if full else plan


def run(*, quick: bool = False, runs: int | None = None, full: bool = False) -> Result:
    """Export each size in each format and report time, throughput and peak RSS."""
    n = runs_for(quick, runs, default=3)
    result = Result("scaling", "exotel-async export via the CLI, by size", quick=quick)
    times: dict[tuple[str, int], float] = {}
    peaks: dict[tuple[str, int], float] = {}
    plan = _plan(quick, full)
    with tempfile.TemporaryDirectory(prefix="exotel-bench-") as tmp:
        for size in sorted({records for _, records in plan}):
            with CliSandbox(records=size, campaign=CAMPAIGN) as sandbox:
                for fmt in ("jsonl", "csv"):
                    if (fmt, size) not in plan:
                        continue
                    # A 1M run takes minutes and CSV tracks JSONL closely: to keep the whole
                    # suite under five minutes those run once unless asked for more.
                    once = size >= 1_000_000 or fmt == "csv"
                    repeat = n if not once or full or runs is not None else 1
                    samples = [export_once(sandbox, size, fmt, Path(tmp)) for _ in range(repeat)]
                    label = f"{fmt} {size:,}"
                    times[fmt, size] = result.add(f"{label}: wall", [s[0] for s in samples], "s")
                    result.add(f"{label}: rate", [size / s[0] for s in samples], "rec/s")
                    peaks[fmt, size] = result.add(
                        f"{label}: peak RSS", [s[1] for s in samples], "MB"
                    )
    result.series["peak RSS by records"] = [
        {"format": fmt, "records": size, "peak_rss_mb": peak, "wall_s": times[fmt, size]}
        for (fmt, size), peak in sorted(peaks.items())
    ]
    small, large = sorted({records for fmt, records in plan if fmt == "jsonl"})[-2:]
    result.add(
        f"jsonl wall {large:,} / {small:,} (linear = {large // small})",
        [times["jsonl", large] / times["jsonl", small]],
        "x",
    )
    # The slope between two sizes leaves out the fixed cost of starting the CLI; at quick
    # mode's tiny sizes that cost is all there is, and noise can make the slope negative.
    extra_time = times["jsonl", large] - times["jsonl", small]
    if quick:
        result.notes.append("no marginal rate in quick mode: start-up dominates tiny exports")
    else:
        result.add(
            f"jsonl marginal rate {small:,} to {large:,}", [(large - small) / extra_time], "rec/s"
        )
    growth = peaks["jsonl", large] / peaks["jsonl", small]
    result.add(f"jsonl peak RSS {large:,} / {small:,}", [growth], "x")
    result.target(
        f"jsonl {large:,} export rate (rec/s)", large / times["jsonl", large], 25_000, at_least=True
    )
    result.target("largest peak RSS (MB)", max(peaks.values()), 150.0, at_least=False)
    result.target(f"peak RSS {large:,} / {small:,}", growth, 1.25, at_least=False)
    return result


def _extra(parser: argparse.ArgumentParser) -> None:
    """This scenario's own option."""
    parser.add_argument("--full", action="store_true", help="also CSV at 1M; repeat every run")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv, extra=_extra, options=("full",))


if __name__ == "__main__":
    sys.exit(main())
