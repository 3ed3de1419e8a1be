"""Scenario 2, CPU per record: the typed ``SmsRecord`` stream vs a raw aiohttp loop.

No latency, one page in flight (``concurrency=1``), pages of 50. The raw loop is the least a
client can do: GET, ``json.loads``, keep the ``data`` dicts. The sandbox runs in its own
process with a cache large enough for the whole campaign, warmed before timing, so both
contenders get the same cheap answers and the figures are the client's own cost. Both walks
run in this one process, interleaved in pairs (7 by default); figures are medians, and the
ratio is the median of each pair's own ratio.
``--profile`` adds a cProfile of one typed walk (client process only). For ``--plot``, the
warm-up's page bodies are decoded again alone, to split the CPU per record into stages.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import io
import json
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `python benchmarks/x.py`

from benchmarks._common import Result, SandboxProcess, median, runs_for, script_main
from exotel_async import ExotelClient, SmsRecord
from exotel_async._protocol import parse_page

PAGE_SIZE = 50


async def typed_walk(sandbox: SandboxProcess, expected: int) -> tuple[float, float]:
    """Read every record as ``SmsRecord``; return (wall seconds, CPU seconds)."""
    async with ExotelClient(*sandbox.credentials, base_url=sandbox.base_url) as client:
        wall, cpu = time.perf_counter(), time.process_time()
        records = 0
        async for _ in client.sms_details(sandbox.campaign, page_size=PAGE_SIZE, concurrency=1):
            records += 1
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _check(records, expected)
    return wall, cpu


async def raw_walk(
    sandbox: SandboxProcess, expected: int, keep: list[bytes] | None = None
) -> tuple[float, float]:
    """Read every record as a plain dict with aiohttp and json.loads; return (wall, CPU).

    ``keep`` collects the page bodies (the untimed warm-up's, for ``stage_costs``).
    """
    api_key, api_token, account_sid = sandbox.credentials
    url = f"{sandbox.base_url}/v2/accounts/{account_sid}/sms-campaigns/{sandbox.campaign}"
    url += "/sms-details"
    # A header built by hand: aiohttp 3.14 deprecates BasicAuth, older releases lack its successor.
    token = base64.b64encode(f"{api_key}:{api_token}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        wall, cpu = time.perf_counter(), time.process_time()
        offset, total, records = 0, None, 0
        while total is None or offset < total:
            params = {"offset": str(offset), "limit": str(PAGE_SIZE)}
            async with session.get(url, params=params) as response:
                body = await response.read()
            if keep is not None:
                keep.append(body)
            page = json.loads(body)
            total = page["metadata"]["total"]
            data = [item["data"] for item in page["response"]]
            records += len(data)
            offset += PAGE_SIZE
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _check(records, expected)
    return wall, cpu


def _check(records: int, expected: int) -> None:
    """A benchmark that read the wrong number of records measured nothing."""
    if records != expected:
        raise RuntimeError(f"read {records} records, expected {expected}")


def stage_costs(bodies: list[bytes], records: int, repeats: int) -> dict[str, float]:
    """CPU per record (µs) of each decoder, and of ``parse_page``, on the pages alone."""

    def per_record(step: Callable[[bytes], object]) -> float:
        samples = []
        for _ in range(repeats):
            cpu = time.process_time()
            for body in bodies:
                step(body)
            samples.append((time.process_time() - cpu) / records * 1e6)
        return median(samples)

    return {
        "orjson": per_record(orjson.loads),
        "json": per_record(json.loads),
        "parse_page": per_record(lambda body: parse_page(SmsRecord, 200, {}, body)),
    }


def _breakdown(costs: dict[str, float], typed_cpu: float, raw_cpu: float) -> dict[str, Any]:
    """Each walk's CPU per record split into stages; the walk's rest is its total minus them."""
    return {
        "typed SmsRecord stream": {
            "JSON decode": costs["orjson"],
            "building records": costs["parse_page"] - costs["orjson"],
            "HTTP, event loop, walk, dedupe": typed_cpu - costs["parse_page"],
        },
        "raw aiohttp + json.loads": {
            "JSON decode": costs["json"],
            "HTTP, event loop, walk, dedupe": raw_cpu - costs["json"],
        },
    }


def profile_typed(sandbox: SandboxProcess, expected: int, top: int = 20) -> str:
    """cProfile one typed walk; return the top functions by own time and by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(typed_walk(sandbox, expected))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    # Cumulative time restricted to the library shows which of its steps carries the cost.
    stats.sort_stats("cumulative").print_stats(r"exotel_async|cattrs|converter", top)
    return out.getvalue()


def run(*, quick: bool = False, runs: int | None = None, profile: bool = False) -> Result:
    """Time both walks, paired and interleaved, over the same cached campaign."""
    records = 2_000 if quick else 100_000
    n = runs_for(quick, runs, default=7)
    pages = -(-records // PAGE_SIZE)
    title = f"{records:,} records, pages of {PAGE_SIZE}, concurrency=1, no latency"
    result = Result("cpu_per_record", title, quick=quick)
    typed: list[tuple[float, float]] = []
    raw: list[tuple[float, float]] = []
    # Room for every page, so that after the warm-up no answer is generated afresh.
    with SandboxProcess(records=records, cache_pages=pages + 64) as sandbox:
        # One untimed walk of each warms the server's cache and the client's imports.
        bodies: list[bytes] = []
        asyncio.run(raw_walk(sandbox, records, keep=bodies))
        asyncio.run(typed_walk(sandbox, records))
        for i in range(n):
            # Pairs alternate which walk goes first, so that neither always inherits the
            # other's heap or the machine's drift in the same direction.
            if i % 2:
                typed.append(asyncio.run(typed_walk(sandbox, records)))
                raw.append(asyncio.run(raw_walk(sandbox, records)))
            else:
                raw.append(asyncio.run(raw_walk(sandbox, records)))
                typed.append(asyncio.run(typed_walk(sandbox, records)))
        hotspots = profile_typed(sandbox, records) if profile else None
    result.add("typed SmsRecord stream", [records / w for w, _ in typed], "rec/s")
    result.add("raw aiohttp + json.loads", [records / w for w, _ in raw], "rec/s")
    typed_cpu = result.add(
        "typed: client CPU per record", [c / records * 1e6 for _, c in typed], "us"
    )
    raw_cpu = result.add("raw: client CPU per record", [c / records * 1e6 for _, c in raw], "us")
    costs = stage_costs(bodies, records, n)
    result.series["CPU per record by stage (us)"] = _breakdown(costs, typed_cpu, raw_cpu)
    # Ratios within each pair, then their median: drift on a shared machine moves both
    # members of a pair alike, so it cancels out of each ratio.
    wall_ratio = result.add(
        "ratio typed / raw (wall)", [r[0] / t[0] for t, r in zip(typed, raw, strict=True)], "x"
    )
    result.add(
        "ratio typed / raw (records per CPU second)",
        [r[1] / t[1] for t, r in zip(typed, raw, strict=True)],
        "x",
    )
    result.target("typed / raw records per second", wall_ratio, 0.85, at_least=True)
    if hotspots is not None:
        result.notes.append("cProfile of one typed walk (client process):\n" + hotspots)
    return result


def _extra(parser: argparse.ArgumentParser) -> None:
    """This scenario's own option."""
    parser.add_argument("--profile", action="store_true", help="cProfile one typed walk")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv, extra=_extra, options=("profile",))


if __name__ == "__main__":
    sys.exit(main())
