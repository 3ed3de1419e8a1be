"""Scenario 3, rate limit: how much of an advertised budget a default client spends.

The sandbox (its own process) allows 20 requests per sliding 2 s window (10 requests/s),
sends ``X-RateLimit-*`` headers on every answer and answers 429 with ``Retry-After`` past
the limit. A default ``ExotelClient`` reads 120 pages of 50 with the default stream.
The server counts the requests and the 429s; a fresh sandbox per run gives a fresh window.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `python benchmarks/x.py`

from benchmarks._common import Result, SandboxProcess, runs_for, script_main
from exotel_async import ExotelClient

PAGE_SIZE = 50
LIMIT, WINDOW = 20, 2.0
#: Quick mode keeps the rate (10 requests/s) but shrinks the window, so a run takes ~0.5 s.
QUICK_LIMIT, QUICK_WINDOW = 5, 0.5


async def default_walk(sandbox: SandboxProcess, expected: int) -> float:
    """Read the campaign with a default client and stream; return seconds."""
    started = time.perf_counter()
    async with ExotelClient(*sandbox.credentials, base_url=sandbox.base_url) as client:
        records = 0
        async for _ in client.sms_details(sandbox.campaign):
            records += 1
    elapsed = time.perf_counter() - started
    if records != expected:
        raise RuntimeError(f"read {records} records, expected {expected}")
    return elapsed


def run(*, quick: bool = False, runs: int | None = None) -> Result:
    """Walk a rate-limited campaign ``runs`` times and report the rate achieved."""
    pages = 8 if quick else 120
    limit, window = (QUICK_LIMIT, QUICK_WINDOW) if quick else (LIMIT, WINDOW)
    records = pages * PAGE_SIZE
    n = runs_for(quick, runs, default=3)
    allowed = limit / window
    title = f"{pages} pages, limit {limit} per {window:g} s window ({allowed:g} req/s)"
    result = Result("rate_limit", title, quick=quick)
    elapsed: list[float] = []
    requests: list[int] = []
    throttled: list[int] = []
    for _ in range(n):
        with SandboxProcess(records=records, rate_limit=(limit, window)) as sandbox:
            elapsed.append(asyncio.run(default_walk(sandbox, records)))
            stats = sandbox.stats()
        requests.append(stats["requests"])
        throttled.append(stats["by_status"].get("429", 0))
    result.add("elapsed", elapsed, "s")
    result.add("requests (server count)", requests, "")
    result.add("429 answers (server count)", throttled, "")
    # The first window's burst is free, so requests/elapsed can beat the rate; the second
    # figure leaves the burst out and is the steady-state share of the budget spent.
    gross = [r / e / allowed * 100 for r, e in zip(requests, elapsed, strict=True)]
    steady = [(r - limit) / e / allowed * 100 for r, e in zip(requests, elapsed, strict=True)]
    shares = [t / r * 100 for t, r in zip(throttled, requests, strict=True)]
    result.add("requests/elapsed over allowed rate", gross, "%")
    steady_share = result.add("(requests - burst)/elapsed over allowed rate", steady, "%")
    share_429 = result.add("429s among requests", shares, "%")
    result.target("steady share of allowed rate (%)", steady_share, 90.0, at_least=True)
    result.target("429s among requests (%)", share_429, 1.0, at_least=False)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
