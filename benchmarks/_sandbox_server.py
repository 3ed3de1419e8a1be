"""A sandbox in its own process for the benchmarks: JSON lines out, commands in on stdin.

``python -m exotel_async.testing`` serves but cannot report what it saw; the benchmarks
need the server's own counts (requests, 429s, pages in flight) to judge the client, so this
launcher prints ``{"base_url": ...}`` once, answers each ``stats`` line on stdin with the
sandbox's counters and request log (then clears them), takes
``set {"faults": {...}, "records": N}`` lines (new fault knobs and campaign size, answered
with ``{}``), and exits when stdin closes. ``--account N`` adds a generated account of N
campaigns; ``stats`` then also lists each page served (path and offset) for the refetch count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from exotel_async.testing import Faults, Sandbox, SandboxCampaign, make_account
from exotel_async.testing.__main__ import rate_limit_from


def _parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaign", default="bench")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument(
        "--campaigns", type=int, default=1, help="campaigns CAMPAIGN, CAMPAIGN-1, ..."
    )
    parser.add_argument("--rate-limit", type=int, default=None)
    parser.add_argument("--rate-window", type=float, default=60.0)
    parser.add_argument("--rate-kind", default="sliding", help="fixed, sliding or token_bucket")
    parser.add_argument("--rate-reset", default="epoch_ms", help="epoch_ms, epoch_s, delta_s, none")
    parser.add_argument("--rate-status", type=int, default=429)
    parser.add_argument("--no-retry-after", action="store_true")
    parser.add_argument("--cache-pages", type=int, default=1024)
    parser.add_argument("--account", type=int, default=0, help="generated campaigns to add")
    parser.add_argument("--account-records", type=int, default=0)
    parser.add_argument("--max-records", type=int, default=20_000)
    parser.add_argument("--log-size", type=int, default=10_000)
    return parser


def _stats(sandbox: Sandbox) -> dict[str, Any]:
    """The sandbox's counters as JSON-ready data."""
    stats = sandbox.stats
    return {
        "requests": stats.requests,
        "by_status": {str(k): v for k, v in stats.by_status.items()},
        "by_fault": dict(stats.by_fault),
        "max_in_flight": stats.max_in_flight,
        # (arrival in epoch seconds, status), for plots of the rate over time.
        "log": [[round(r.time, 4), r.status] for r in sandbox.request_log],
        # (path, offset) of each page served, for counting pages fetched twice.
        "served": [
            [r.path, int(r.query.get("offset", 0))] for r in sandbox.request_log if r.status == 200
        ],
    }


async def _serve(args: argparse.Namespace) -> None:
    """Serve until stdin closes, answering ``stats`` commands."""
    names = [args.campaign, *(f"{args.campaign}-{i}" for i in range(1, args.campaigns))]
    campaigns = [SandboxCampaign(name, args.records) for name in names]
    if args.account:
        campaigns += make_account(args.account, args.account_records, max_records=args.max_records)
    sandbox = Sandbox(
        campaigns=campaigns,
        faults=Faults(latency=args.latency, rate_limit=rate_limit_from(args)),
        cache_pages=args.cache_pages,
        log_size=args.log_size,
        # Every campaign answers, so that a complete export is every campaign complete.
        archived_gone=False,
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        async with sandbox:
            info = {
                "base_url": sandbox.base_url,
                "api_key": sandbox.api_key,
                "api_token": sandbox.api_token,
                "account_sid": sandbox.account_sid,
                "campaign": args.campaign,
            }
            print(json.dumps(info), flush=True)
            while line := await reader.readline():
                command, _, argument = line.strip().partition(b" ")
                if command == b"stats":
                    print(json.dumps(_stats(sandbox)), flush=True)
                    sandbox.reset_stats()
                elif command == b"set":
                    settings = json.loads(argument)
                    sandbox.faults = Faults(**settings.get("faults", {}))
                    if "records" in settings:
                        sandbox.add_campaign(args.campaign, settings["records"])
                    print("{}", flush=True)
    finally:
        transport.close()


def main() -> int:
    """Parse the arguments and serve."""
    asyncio.run(_serve(_parser().parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
