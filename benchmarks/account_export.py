"""Scenario 6, account export: every campaign of an account, ``exotel-async export --all``.

Against a generated account of 200 campaigns (0 to 20k records each, 500k in all) served
by a sandbox in its own process, the issue's targets:

* exactness: the CLI exports every campaign completely, each file holding its campaign's
  records once, and the manifest says so;
* crashes: SIGKILL at random points, then ``--resume``, several times: the pages fetched
  again after each kill, counted from the sandbox's log of pages served, are at most one
  per campaign that was under way;
* memory: peak RSS at 500k records over that at 50k (20 campaigns) stays under 1.25;
* throughput: with 40 ms latency and no rate limit, the account export (200 campaigns,
  100k records) reaches at least 0.9 of one 100k-record campaign's stream (the median of
  5 alternating pairs) at the same
  concurrency: 8 requests in flight (the client's ``max_in_flight``, shared by 32 campaigns
  at once, as ``export --all`` runs), against one stream of 8 pages in flight. Small
  campaigns must not serialise the run.

``--quick`` uses small accounts and runs each part once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
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
    Result,
    SandboxProcess,
    cli_command,
    client_env,
    runs_for,
    script_main,
)
from exotel_async import ExotelClient
from exotel_async.export import (
    AccountExportRequest,
    load_manifest,
    manifest_path,
    run_account_export,
)
from exotel_async.testing import make_account

#: Requests in flight: across the account's campaigns, or one campaign's pages.
CONCURRENCY = 8
#: Campaigns at once per request in flight, as ``export --all`` runs them.
CAMPAIGNS_PER_SLOT = 4
LATENCY = 0.040


def _plan(quick: bool) -> dict[str, tuple[int, int, int]]:
    """(campaigns, records, largest campaign) of each account measured."""
    if quick:
        return {"large": (30, 20_000, 3_000), "small": (6, 2_000, 1_000), "speed": (30, 6_000, 600)}
    return {
        "large": (200, 500_000, 20_000),
        "small": (20, 50_000, 20_000),
        # The large account's shape, scaled to 100k records.
        "speed": (200, 100_000, 4_000),
    }


def expected_sizes(account: tuple[int, int, int]) -> dict[str, int]:
    """Records of each campaign the launcher serves for ``account`` (seed 0), and its own."""
    size, total, largest = account
    campaigns = {c.campaign_id: c.records for c in make_account(size, total, max_records=largest)}
    return {"bench": 0, **campaigns}


def export_all(sandbox: SandboxProcess, out: Path, *extra: str) -> dict[str, Any]:
    """Run ``exotel-async export --all`` to completion; its exit code, wall time, peak RSS."""
    argv = [*cli_command(), "export", "--all", "--output-dir", str(out), *extra]
    completed = subprocess.run(
        [sys.executable, "-c", MEASURE_WRAPPER, *argv],
        env={**client_env(), **sandbox.env},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the measuring wrapper failed: {completed.stderr.strip()}")
    report: dict[str, Any] = json.loads(completed.stdout)
    report["stderr"] = completed.stderr
    return report


def check_exact(out: Path, expected: dict[str, int]) -> None:
    """Raise unless every campaign is complete, each file holding its records once."""
    manifest = load_manifest(manifest_path(out))
    found = {e.campaign_id: e for e in manifest.campaigns}
    if not manifest.complete or set(found) != set(expected):
        raise RuntimeError(f"incomplete: {len(found)} of {len(expected)} campaigns listed")
    for campaign_id, records in expected.items():
        entry = found[campaign_id]
        path = out / (entry.file or "")
        sids = [json.loads(line)["sid"] for line in path.read_text().splitlines()]
        if not entry.complete or len(sids) != records or len(set(sids)) != records:
            raise RuntimeError(f"{campaign_id}: {len(sids)} lines for {records} records")


def exact_export(
    sandbox: SandboxProcess, out: Path, expected: dict[str, int]
) -> tuple[float, float]:
    """One complete export checked record by record; (wall seconds, peak RSS in MB)."""
    report = export_all(sandbox, out)
    if report["code"] != 0:
        raise RuntimeError(f"export --all exited {report['code']}: {report['stderr'].strip()}")
    check_exact(out, expected)
    return float(report["elapsed"]), report["maxrss_kb"] / 1024


def _details_pages(served: list[list[Any]]) -> set[tuple[str, int]]:
    """The (campaign path, offset) of each sms-details page in a log of pages served."""
    return {(path, offset) for path, offset in served if path.endswith("/sms-details")}


def kill_and_resume(
    sandbox: SandboxProcess, out: Path, kills: int, duration: float, seed: int
) -> tuple[list[int], list[int]]:
    """SIGKILL the export ``kills`` times at random points, resuming after each; then finish.

    Returns, per kill, the most pages any one campaign fetched again, and how many
    campaigns fetched any page again.
    """
    rng = random.Random(seed)
    argv = [*cli_command(), "export", "--all", "--output-dir", str(out)]
    env = {**client_env(), **sandbox.env}
    sandbox.stats()  # start the log afresh
    segments: list[set[tuple[str, int]]] = []
    for kill in range(kills):
        resume = ["--resume"] if kill else []
        process = subprocess.Popen([*argv, *resume], env=env, stderr=subprocess.DEVNULL)
        # Start-up, then a random share of this run's part of the export.
        time.sleep(0.8 + rng.uniform(0.05, 1.0) * duration / (kills + 1))
        process.kill()
        process.wait()
        time.sleep(0.3)  # answers already on their way land in this segment's log
        segments.append(_details_pages(sandbox.stats()["served"]))
    finish = subprocess.run([*argv, "--resume"], env=env, capture_output=True, check=False)
    if finish.returncode != 0:
        raise RuntimeError(f"the final --resume exited {finish.returncode}")
    segments.append(_details_pages(sandbox.stats()["served"]))
    worst, campaigns = [], []
    for before, after in itertools.pairwise(segments):
        again = Counter(path for path, _ in before & after)
        worst.append(max(again.values(), default=0))
        campaigns.append(len(again))
    return worst, campaigns


async def stream_rate(sandbox: SandboxProcess) -> float:
    """Records per second of one campaign's stream at CONCURRENCY pages in flight."""
    async with ExotelClient(*sandbox.credentials, base_url=sandbox.base_url) as client:
        started, records = time.perf_counter(), 0
        stream = client.sms_details(sandbox.campaign, concurrency=CONCURRENCY)
        async for page in stream.pages():
            records += len(page.records)
        return records / (time.perf_counter() - started)


async def account_rate(sandbox: SandboxProcess, out: Path) -> float:
    """Records per second of the account export, CONCURRENCY requests in flight."""
    async with ExotelClient(
        *sandbox.credentials, base_url=sandbox.base_url, max_in_flight=CONCURRENCY
    ) as client:
        at_once = CONCURRENCY * CAMPAIGNS_PER_SLOT
        request = AccountExportRequest(out, campaigns_at_once=at_once, force=True)
        started = time.perf_counter()
        progress = await run_account_export(client, request)
        if not progress.complete:
            raise RuntimeError("the account export did not complete")
        return progress.records / (time.perf_counter() - started)


def run(*, quick: bool = False, runs: int | None = None) -> Result:
    """Measure exactness, crash recovery, memory and throughput of the account export."""
    pairs = runs_for(quick, runs, default=5)
    plan = _plan(quick)
    result = Result("account_export", "every campaign of an account, export --all", quick=quick)
    with tempfile.TemporaryDirectory(prefix="exotel-bench-") as tmp:
        work = Path(tmp)
        peaks = {}
        for name in ("small", "large"):
            size, total, _ = account = plan[name]
            with SandboxProcess(records=0, account=account) as sandbox:
                wall, peak = exact_export(sandbox, work / f"exact-{name}", expected_sizes(account))
                label = f"{size} campaigns, {total:,} records"
                result.add(f"{label}: wall", [wall], "s")
                result.add(f"{label}: rate", [total / wall], "rec/s")
                peaks[name] = result.add(f"{label}: peak RSS", [peak], "MB")
                if name == "large":
                    worst, campaigns = kill_and_resume(
                        sandbox, work / "killed", 1 if quick else 3, wall, seed=13
                    )
                    check_exact(work / "killed", expected_sizes(account))
        result.add("SIGKILLs, each then --resume", [len(worst)], "")
        result.add("campaigns that fetched a page again, per kill", campaigns, "")
        result.add("most pages one campaign fetched again, per kill", worst, "")
        result.notes.append(f"pages fetched again per campaign at each kill: {worst}")
        result.notes.append("both exports, and the killed one after resuming, are exact")
        growth = peaks["large"] / peaks["small"]
        result.add("peak RSS large / small", [growth], "x")

        size, total, _ = account = plan["speed"]
        with (
            SandboxProcess(records=total, latency=LATENCY) as one,
            SandboxProcess(records=0, latency=LATENCY, account=account) as many,
        ):
            # Alternating pairs: a shared machine's load drifts, a pair sees the same load.
            single, whole = [], []
            for _ in range(pairs):
                single.append(asyncio.run(stream_rate(one)))
                whole.append(asyncio.run(account_rate(many, work / "speed")))
        result.add(f"one campaign of {total:,}, stream: rate", single, "rec/s")
        result.add(f"{size} campaigns, {total:,} in all: rate", whole, "rec/s")
        ratios = [w / s for w, s in zip(whole, single, strict=True)]
        ratio = result.add("account / stream, paired runs", ratios, "x")

    result.target("exact exports (every campaign complete)", 1.0, 1.0, at_least=True)
    result.target("pages fetched again per campaign after SIGKILL", max(worst), 1, at_least=False)
    result.target("peak RSS large / small", growth, 1.25, at_least=False)
    result.target(
        f"account / one campaign rate at {CONCURRENCY} in flight, {LATENCY * 1000:.0f} ms",
        ratio,
        0.9,
        at_least=True,
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
