"""Scenario 4, time to first record: the stream's start-up cost over one round trip.

The sandbox (its own process) delays every answer by 100 ms. A fresh client's stream is
timed from its start to its first record; the yardstick is one GET of the same page with a
fresh aiohttp session (connect, request, read, ``json.loads``). Both open a new connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `python benchmarks/x.py`

from benchmarks._common import Result, SandboxProcess, runs_for, script_main
from exotel_async import ExotelClient

LATENCY = 0.1
PAGE_SIZE = 50


async def first_record(sandbox: SandboxProcess) -> float:
    """Seconds from starting a default stream to its first record."""
    async with ExotelClient(*sandbox.credentials, base_url=sandbox.base_url) as client:
        started = time.perf_counter()
        async with client.sms_details(sandbox.campaign, page_size=PAGE_SIZE) as stream:
            async for _ in stream:
                elapsed = time.perf_counter() - started
                break
            else:
                raise RuntimeError("the stream yielded no record")
    return elapsed


async def round_trip(sandbox: SandboxProcess) -> float:
    """Seconds for one raw GET of the first page, parsed, on a fresh session."""
    api_key, api_token, account_sid = sandbox.credentials
    url = f"{sandbox.base_url}/v2/accounts/{account_sid}/sms-campaigns/{sandbox.campaign}"
    token = base64.b64encode(f"{api_key}:{api_token}".encode()).decode()
    params = {"offset": "0", "limit": str(PAGE_SIZE)}
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        started = time.perf_counter()
        async with session.get(url + "/sms-details", params=params) as response:
            page = json.loads(await response.read())
        elapsed = time.perf_counter() - started
    if not page["response"]:
        raise RuntimeError("the raw GET returned no record")
    return elapsed


def run(*, quick: bool = False, runs: int | None = None) -> Result:
    """Time both ``runs`` times, alternating which goes first, and compare the medians."""
    n = runs_for(quick, runs, default=7)
    title = f"first record vs one round trip, {LATENCY * 1000:.0f} ms latency"
    result = Result("first_record", title, quick=quick)
    streams: list[float] = []
    trips: list[float] = []
    with SandboxProcess(records=1_000, latency=LATENCY) as sandbox:
        # The page is cached by the sandbox after the first GET: warm it so neither pays that.
        asyncio.run(round_trip(sandbox))
        for i in range(n):
            pair = [first_record, round_trip] if i % 2 else [round_trip, first_record]
            for measure in pair:
                target = streams if measure is first_record else trips
                target.append(asyncio.run(measure(sandbox)))
    result.add("stream start to first record", [s * 1000 for s in streams], "ms")
    result.add("one raw aiohttp GET", [t * 1000 for t in trips], "ms")
    # The median of each run's own ratio: the two of a run share the machine's mood.
    pairs = zip(streams, trips, strict=True)
    ratio = result.add("ratio", [s / t for s, t in pairs], "x")
    result.target("first record / round trip", ratio, 1.2, at_least=False)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
