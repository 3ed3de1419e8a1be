"""Scenario 3, rate limit: the account's ceiling held under every way a server may count it.

Exotel documents a per-account limit but not how it is counted or announced. The sandbox
(its own process) plays each plausible server: a fixed window, a sliding window or a token
bucket; ``X-RateLimit-Reset`` in epoch milliseconds, whole epoch seconds rounded down, whole
seconds from now, or no rate headers at all; throttles answered 429 or 503 with
``Retry-After``. At 20 requests per 2 s (10 requests/s), a default client streams 240 pages
with ``concurrency=8``. The server counts requests and throttles; the rate achieved is the
accepted requests over the client's elapsed time, as a share of the allowed 10 per second.

Then the same limit shared: one client streaming 10 campaigns at once, and two export
processes (``exotel-async export``) on one account, each checked record for record.

Last, Exotel's own scale, without rate headers: 30 and 200 requests a minute, one client or
two, with and without ``Retry-After``. A minute's window takes minutes to cross on the wall
clock, so these cells run the client's rate controller against the sandbox's own counters
in virtual time (``tests/_virtual_time.py``), over eight windows' worth of pages per
client. Their rate is the share of what the server could accept in the time: the allowed
rate over the span, plus the one window's burst it allows at the start.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `python benchmarks/x.py`

from benchmarks._common import REPO, Result, SandboxProcess, client_env, script_main
from exotel_async import ExotelClient
from exotel_async._ratelimit import RateController
from exotel_async.testing import RateLimit
from tests._virtual_time import VirtualTime, walk

WINDOWS = ("fixed", "sliding", "token_bucket")
RESETS = ("epoch_ms", "epoch_s", "delta_s", "none")
STATUSES = (429, 503)
PAGE_SIZE, PAGES, CONCURRENCY = 20, 240, 8
LIMIT, WINDOW = 20, 2.0
#: Quick mode keeps the rate (10 requests/s) but shrinks the window and the walk.
QUICK_LIMIT, QUICK_WINDOW, QUICK_PAGES = 5, 0.5, 12
#: Exotel's documented limits (requests a minute), for the cells in virtual time.
PER_MINUTE = (30, 200)
#: Cells whose requests ``--plot`` draws over time (with the two processes, epoch_ms).
PLOTTED = {("sliding", "epoch_ms", 429), ("token_bucket", "none", 429)}


async def _stream(sandbox: SandboxProcess, campaigns: Sequence[str], pages: int) -> float:
    """Stream every campaign at once through one default client; return seconds taken."""
    started = time.perf_counter()
    async with ExotelClient(*sandbox.credentials, base_url=sandbox.base_url) as client:

        async def one(campaign: str) -> None:
            sids = [r.sid async for r in client.sms_details(campaign, page_size=PAGE_SIZE)]
            if len(sids) != len(set(sids)) or len(sids) != pages * PAGE_SIZE:
                raise RuntimeError(f"{campaign}: {len(sids)} records, expected {pages * PAGE_SIZE}")

        await asyncio.gather(*(one(c) for c in campaigns))
    return time.perf_counter() - started


Cell = tuple[float, float, list[list[Any]]]


def _figures(stats: dict[str, Any], elapsed: float, allowed: float) -> Cell:
    """(throttled share of requests %, accepted requests/s as a share of the allowed %, log).

    The log is the server's (arrival time, status) of each request, for ``--plot``.
    """
    throttled = sum(stats["by_status"].get(str(s), 0) for s in STATUSES)
    accepted = stats["requests"] - throttled
    return throttled / stats["requests"] * 100, accepted / elapsed / allowed * 100, stats["log"]


def _cell(semantics: dict[str, Any], *, limit: int, window: float, pages: int) -> Cell:
    """One client, one campaign, one way of counting: (throttled %, rate %, log)."""
    with SandboxProcess(
        records=pages * PAGE_SIZE, rate_limit=(limit, window), rate_semantics=semantics
    ) as sandbox:
        elapsed = asyncio.run(_stream(sandbox, [sandbox.campaign], pages))
        return _figures(sandbox.stats(), elapsed, limit / window)


def _many_streams(semantics: dict[str, Any], *, limit: int, window: float, pages: int) -> Cell:
    """One client streaming 10 campaigns at once under one limit: (throttled %, rate %, log)."""
    per = max(pages // 10, 1)
    with SandboxProcess(
        records=per * PAGE_SIZE, rate_limit=(limit, window), rate_semantics=semantics, campaigns=10
    ) as sandbox:
        names = [sandbox.campaign, *(f"{sandbox.campaign}-{i}" for i in range(1, 10))]
        elapsed = asyncio.run(_stream(sandbox, names, per))
        return _figures(sandbox.stats(), elapsed, limit / window)


def _two_processes(semantics: dict[str, Any], *, limit: int, window: float, pages: int) -> Cell:
    """Two ``exotel-async export`` processes on one account: (throttled %, rate %, log)."""
    records = pages * PAGE_SIZE
    with (
        SandboxProcess(
            records=records, rate_limit=(limit, window), rate_semantics=semantics
        ) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        key, token, sid = sandbox.credentials
        env = {
            **client_env(),
            "EXOTEL_API_KEY": key,
            "EXOTEL_API_TOKEN": token,
            "EXOTEL_ACCOUNT_SID": sid,
            "EXOTEL_BASE_URL": sandbox.base_url,
        }
        outputs = [Path(tmp) / f"export-{i}.jsonl" for i in range(2)]
        command = [
            sys.executable,
            "-m",
            "exotel_async.cli",
            "export",
            sandbox.campaign,
            f"--page-size={PAGE_SIZE}",
        ]
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [*command, f"--output={out}"],
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for out in outputs
        ]
        for process in processes:
            _, err = process.communicate(timeout=600)
            if process.returncode != 0:
                raise RuntimeError(f"export failed: {err.decode(errors='replace')[-500:]}")
        elapsed = time.perf_counter() - started
        for out in outputs:
            sids = [json.loads(line)["sid"] for line in out.read_text().splitlines()]
            if len(sids) != records or len(set(sids)) != records:
                raise RuntimeError(f"{out.name}: {len(sids)} records, expected {records} once each")
        return _figures(sandbox.stats(), elapsed, limit / window)


def _per_minute(
    kind: str, per_minute: int, clients: int, retry_after: bool, *, quick: bool
) -> Cell:
    """Clients on a minute's window without rate headers, in virtual time: (throttled %,
    share of what the server could accept %, no log)."""
    limit = RateLimit(per_minute, 60.0, window=kind, reset="none", retry_after=retry_after)  # type: ignore[arg-type]
    time = VirtualTime()
    controllers = [RateController(clock=time.clock, sleep=time.sleep) for _ in range(clients)]
    pages = per_minute * (1 if quick else 8)
    outcome = asyncio.run(walk(time, controllers, limit, pages=pages, concurrency=CONCURRENCY))
    most = per_minute / 60.0 * (outcome.last - outcome.first) + per_minute
    return outcome.throttled_share * 100, outcome.accepted / most * 100, []


def _trace(log: list[list[Any]], limit: int, window: float) -> dict[str, Any]:
    """A cell's requests for the plot: seconds from the first, status, and the limit."""
    start = min((t for t, _ in log), default=0.0)
    requests = [[round(t - start, 4), status] for t, status in log]
    return {"allowed": limit / window, "window": window, "requests": requests}


def run(*, quick: bool = False, runs: int | None = None) -> Result:
    """Every cell of the matrix once, then the shared-limit cases."""
    limit, window, pages = (
        (QUICK_LIMIT, QUICK_WINDOW, QUICK_PAGES) if quick else (LIMIT, WINDOW, PAGES)
    )
    title = (
        f"{pages} pages, {limit} requests per {window:g} s ({limit / window:g}/s), "
        f"concurrency {CONCURRENCY}"
    )
    result = Result("rate_limit", title, quick=quick)
    resets = ("epoch_ms",) if quick else RESETS
    statuses = (429,) if quick else STATUSES
    for kind in WINDOWS:
        for reset in resets:
            for status in statuses:
                semantics = {"window": kind, "reset": reset, "status": status}
                throttled, rate, log = _cell(semantics, limit=limit, window=window, pages=pages)
                name = f"{kind} / {reset} / {status}"
                if (kind, reset, status) in PLOTTED:
                    result.series[name] = _trace(log, limit, window)
                result.add(f"{name}: throttled", [throttled], "%")
                result.add(f"{name}: rate", [rate], "%")
                headers = reset != "none"
                result.target(
                    f"{name}: throttled (%)", throttled, 1.0 if headers else 3.0, at_least=False
                )
                result.target(f"{name}: rate (%)", rate, 92.0 if headers else 80.0, at_least=True)
    shared = {"window": "sliding", "reset": "epoch_s", "status": 429}
    throttled, rate, _ = _many_streams(shared, limit=limit, window=window, pages=pages)
    result.add("10 streams, one client (sliding / epoch_s): throttled", [throttled], "%")
    result.add("10 streams, one client (sliding / epoch_s): rate", [rate], "%")
    result.target("10 streams: throttled (%)", throttled, 1.0, at_least=False)
    result.target("10 streams: rate (%)", rate, 92.0, at_least=True)
    for reset in ("epoch_ms",) if quick else ("epoch_ms", "none"):
        semantics = {"window": "sliding", "reset": reset, "status": 429}
        throttled, rate, log = _two_processes(semantics, limit=limit, window=window, pages=pages)
        if reset == "epoch_ms":
            result.series[f"2 export processes (sliding / {reset})"] = _trace(log, limit, window)
        result.add(f"2 export processes (sliding / {reset}): throttled", [throttled], "%")
        result.add(f"2 export processes (sliding / {reset}): rate", [rate], "%")
        result.target(f"2 processes, {reset}: throttled (%)", throttled, 3.0, at_least=False)
        result.target(f"2 processes, {reset}: rate (%)", rate, 85.0, at_least=True)
    for per_minute in PER_MINUTE[:1] if quick else PER_MINUTE:
        for kind in WINDOWS:
            for clients in (1, 2):
                for retry_after in (True, False):
                    throttled, rate, _ = _per_minute(
                        kind, per_minute, clients, retry_after, quick=quick
                    )
                    answer = "Retry-After" if retry_after else "no Retry-After"
                    name = f"{per_minute}/min {kind} / none, {clients} client(s), {answer}"
                    result.add(f"{name}: throttled", [throttled], "%")
                    result.add(f"{name}: rate", [rate], "%")
                    result.target(f"{name}: throttled (%)", throttled, 3.0, at_least=False)
                    result.target(f"{name}: rate (%)", rate, 80.0, at_least=True)
    result.notes.append("each cell runs once (about 25 s each); rerun for spread")
    result.notes.append("per-minute cells: virtual time, the sandbox's counters, 4 ms round trips")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
