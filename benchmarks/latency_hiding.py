"""Scenario 1, latency hiding: the client's concurrent walk vs the product page's loop.

The sandbox (its own process) delays every answer by 40 ms and serves 80 pages of 50
records. The baseline is the Python sample from Exotel's product page, fixed to send a GET
with working Basic auth, looped over offsets with ``limit=50``: one request at a time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `python benchmarks/x.py`

from benchmarks._common import Result, SandboxProcess, median, runs_for, script_main
from exotel_async import ExotelClient

LATENCY = 0.04
PAGE_SIZE = 50
#: The plot's sweep of pages in flight; 4 and 8 are the figures' own runs.
SWEEP = (1, 2, 16)


def product_page_loop(sandbox: SandboxProcess, expected: int) -> float:
    """Walk the campaign as the product page's sample would, sequentially; return seconds."""
    api_key, api_token, account_sid = sandbox.credentials
    # The sample base64-encodes a str (a TypeError on Python 3) and sends DELETE: fixed here.
    encoding = base64.b64encode(f"{api_key}:{api_token}".encode()).decode()
    headers = {"Authorization": "Basic " + encoding}
    base = f"{sandbox.base_url}/v2/accounts/{account_sid}/sms-campaigns/{sandbox.campaign}"
    payload = ""
    started = time.perf_counter()
    offset, total, records = 0, None, 0
    while total is None or offset < total:
        url = f"{base}/sms-details?limit={PAGE_SIZE}&offset={offset}"
        response = requests.request("GET", url, data=payload, headers=headers)
        page = json.loads(response.text)
        total = page["metadata"]["total"]
        records += len(page["response"])
        offset += PAGE_SIZE
    elapsed = time.perf_counter() - started
    _check(records, expected)
    return elapsed


async def client_walk(sandbox: SandboxProcess, expected: int, concurrency: int) -> float:
    """Walk the campaign with ``client.sms_details``; return seconds."""
    started = time.perf_counter()
    async with ExotelClient(*sandbox.credentials, base_url=sandbox.base_url) as client:
        stream = client.sms_details(sandbox.campaign, page_size=PAGE_SIZE, concurrency=concurrency)
        records = 0
        async for _ in stream:
            records += 1
    elapsed = time.perf_counter() - started
    _check(records, expected)
    return elapsed


def _check(records: int, expected: int) -> None:
    """A benchmark that read the wrong number of records measured nothing."""
    if records != expected:
        raise RuntimeError(f"read {records} records, expected {expected}")


def run(*, quick: bool = False, runs: int | None = None) -> Result:
    """Measure both walks ``runs`` times each and compare the medians."""
    pages = 4 if quick else 80
    records = pages * PAGE_SIZE
    n = runs_for(quick, runs, default=3)
    title = f"{pages} pages of {PAGE_SIZE}, {LATENCY * 1000:.0f} ms latency"
    result = Result("latency_hiding", title, quick=quick)
    loop_times: list[float] = []
    c8_times: list[float] = []
    c4_times: list[float] = []
    in_flight: list[int] = []
    sweep: dict[int, list[float]] = {c: [] for c in SWEEP}
    with SandboxProcess(records=records, latency=LATENCY) as sandbox:
        # Interleaved, so drift on the machine touches every contender alike.
        for _ in range(n):
            loop_times.append(product_page_loop(sandbox, records))
            sandbox.stats()
            c8_times.append(asyncio.run(client_walk(sandbox, records, 8)))
            in_flight.append(sandbox.stats()["max_in_flight"])
            c4_times.append(asyncio.run(client_walk(sandbox, records, 4)))
            for concurrency, times in sweep.items():
                times.append(asyncio.run(client_walk(sandbox, records, concurrency)))
    result.add("product-page requests loop", loop_times, "s")
    result.add("client, concurrency=8", c8_times, "s")
    result.add("client, concurrency=4 (default)", c4_times, "s")
    # A lower bound: the first page alone (it tells the total), then full rounds of pages.
    rounds = 1 + -(-(pages - 1) // 8)
    result.add("ideal at concurrency=8", [rounds * LATENCY], "s")
    # The median of each run's own ratio: the walks of a run share the machine's mood.
    speed_up = result.add(
        "speed-up at concurrency=8", [a / b for a, b in zip(loop_times, c8_times, strict=True)], "x"
    )
    result.add(
        "speed-up at concurrency=4", [a / b for a, b in zip(loop_times, c4_times, strict=True)], "x"
    )
    result.add("pages in flight at concurrency=8 (server)", in_flight, "")
    result.target("speed-up at concurrency=8", speed_up, 6.0, at_least=True)
    sweep |= {4: c4_times, 8: c8_times}
    result.series["records/s by concurrency"] = {
        "latency": LATENCY,
        "pages": pages,
        "page_size": PAGE_SIZE,
        "baseline": records / median(loop_times),
        "client": {c: records / median(times) for c, times in sorted(sweep.items())},
    }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
