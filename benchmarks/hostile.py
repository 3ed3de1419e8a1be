"""Hostile servers: the client's peak memory and request count against each one.

The sandbox (its own process) plays one hostile server per case: a 500 MB body announced by
its Content-Length, an endless chunked body, a server that ignores ``offset`` but echoes it
(with a total of 10^9, the sandbox's largest, and with a finite 500), a record with a field
nested 1,000 levels deep, and a proxy page that quotes the request's Authorization header.
A well-behaved page is the yardstick. The client runs each case in a fresh child process,
so the peak RSS (``ru_maxrss``) it reports is that case's alone; the figure is the growth
over the child's footprint before its first request. The server counts the requests.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import resource
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `python benchmarks/x.py`

from benchmarks._common import Result, SandboxProcess, runs_for, script_main
from exotel_async import ExotelClient, ExotelError

PAGE_SIZE = 50
#: Each case must end on its own well before this; it guards the benchmark, not the client.
CASE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Case:
    """One hostile server, and whether the client walks the campaign or fetches a page."""

    label: str
    faults: dict[str, Any] = field(default_factory=dict)
    records: int = 1_000
    walk: bool = False
    #: What the case is judged on: "memory", "requests" or "secrets".
    bound: str = "memory"


def cases(quick: bool) -> list[Case]:
    """The hostile servers; quick mode shrinks the big body (the client's cap shrinks too)."""
    oversized = 5_000_000 if quick else 500_000_000
    return [
        Case("well-behaved page"),
        Case(f"oversized body, {oversized / 1e6:g} MB announced", {"oversized_body": oversized}),
        Case("endless chunked body", {"endless_body": True}),
        Case(
            "offset ignored, total 10^9",
            {"ignore_offset": True},
            records=10**9,
            walk=True,
            bound="requests",
        ),
        Case(
            "offset ignored, total 500",
            {"ignore_offset": True},
            records=500,
            walk=True,
            bound="requests",
        ),
        Case("field nested 1,000 deep", {"nesting_depth": 1000}, bound="requests"),
        Case("proxy echoes Authorization", {"reflect_headers": True}, bound="secrets"),
    ]


def _peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e6 if sys.platform == "darwin" else 1e3)


def _secrets(info: dict[str, str]) -> list[str]:
    """Every form of the sandbox's credentials that must never reach an error."""
    pair = f"{info['api_key']}:{info['api_token']}"
    return [info["api_token"], pair, base64.b64encode(pair.encode()).decode()]


async def _drive(case: Case, info: dict[str, str], max_response_bytes: int | None) -> str:
    """Run the case's request(s) and describe how they ended."""
    options: dict[str, Any] = {"base_url": info["base_url"], "backoff_base": 0.01}
    if max_response_bytes is not None:
        options["max_response_bytes"] = max_response_bytes
    client = ExotelClient(info["api_key"], info["api_token"], info["account_sid"], **options)
    try:
        async with client:
            if case.walk:
                records = 0
                async for _ in client.sms_details(info["campaign"], page_size=PAGE_SIZE):
                    records += 1
            else:
                page = await client.sms_details_page(info["campaign"], limit=PAGE_SIZE)
                records = len(page.records)
    except ExotelError as exc:
        text = f"{exc} {exc.args}"
        leaks = sum(secret in text for secret in _secrets(info))
        return f"{type(exc).__name__} ({leaks} credential forms in it): {str(exc)[:240]}"
    return f"{records} records, no error"


def measure(case: Case, info: dict[str, str], max_response_bytes: int | None) -> dict[str, Any]:
    """In a fresh child: run the case, return its outcome and the RSS before and at peak."""
    before = _peak_rss_mb()
    started = time.perf_counter()
    outcome = asyncio.run(asyncio.wait_for(_drive(case, info, max_response_bytes), CASE_TIMEOUT))
    return {
        "outcome": outcome,
        "seconds": time.perf_counter() - started,
        "rss_growth_mb": _peak_rss_mb() - before,
        "rss_peak_mb": _peak_rss_mb(),
    }


def _in_child(case: Case, info: dict[str, str], max_response_bytes: int | None) -> dict[str, Any]:
    """``measure`` in a new process, so that no earlier case's peak is counted."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(measure, case, info, max_response_bytes).result()


def run(*, quick: bool = False, runs: int | None = None) -> Result:
    """Run every case ``runs`` times against one sandbox, reconfigured between cases."""
    n = runs_for(quick, runs, default=3)
    # Quick mode keeps the default cap's ratio to the body: 1 MiB against 5 MB.
    cap = 1024 * 1024 if quick else None
    cap_text = "1 MiB" if quick else "16 MiB (default)"
    result = Result("hostile", f"hostile servers, max_response_bytes {cap_text}", quick=quick)
    with SandboxProcess(records=1_000) as sandbox:
        for case in cases(quick):
            peaks, growth, requests, outcome = [], [], [], ""
            for _ in range(n):
                sandbox.configure(faults=case.faults, records=case.records)
                sandbox.stats()  # clears the counters
                measured = _in_child(case, sandbox.info, cap)
                requests.append(sandbox.stats()["requests"])
                peaks.append(measured["rss_peak_mb"])
                growth.append(measured["rss_growth_mb"])
                outcome = measured["outcome"]
            result.add(f"{case.label}: peak RSS", peaks, "MB")
            peak = result.add(f"{case.label}: peak RSS growth", growth, "MB")
            sent = result.add(f"{case.label}: requests", requests, "")
            result.notes.append(f"{case.label}: {outcome}")
            if case.bound == "memory" and case.faults:
                result.target(f"{case.label}: RSS growth in MB", peak, 64, at_least=False)
            if case.bound == "requests":
                result.target(f"{case.label}: requests", sent, 10, at_least=False)
            if case.bound == "secrets":
                leaked = float("(0 credential forms" not in outcome)
                result.target(
                    f"{case.label}: errors quoting a credential", leaked, 0, at_least=False
                )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario from the command line."""
    return script_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
