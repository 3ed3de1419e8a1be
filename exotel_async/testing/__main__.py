"""Run the sandbox from a shell: ``python -m exotel_async.testing --port 8080 --records 10000``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import shlex
import signal
import sys
import time
from collections.abc import Sequence

from exotel_async.testing._account import (
    CAMPAIGN_SHAPES,
    DEMO_RECORDS,
    SandboxCampaign,
    demo_account,
    make_account,
)
from exotel_async.testing._data import StatusProgress
from exotel_async.testing._ratelimits import RESET_FORMATS, WINDOW_KINDS, RateLimit
from exotel_async.testing._server import Faults, Sandbox


def _port(text: str) -> int:
    """A TCP port number, 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {value}")
    return value


def add_options(parser: argparse.ArgumentParser) -> None:
    """The sandbox's options, shared by this module and ``exotel-async sandbox``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8080, help="TCP port, 0 for any (8080)")
    parser.add_argument(
        "--records", type=int, default=DEMO_RECORDS, help=f"records per campaign ({DEMO_RECORDS})"
    )
    parser.add_argument(
        "--campaign",
        action="append",
        dest="campaigns",
        metavar="ID",
        help="campaign id to serve; repeatable (default: demo, and nine generated campaigns)",
    )
    parser.add_argument(
        "--account",
        type=int,
        metavar="N",
        help="serve an account of N generated campaigns of varied states and sizes",
    )
    parser.add_argument(
        "--account-records",
        type=int,
        metavar="TOTAL",
        help="records in all the --account campaigns (default: 2500 per campaign)",
    )
    parser.add_argument(
        "--max-records", type=int, default=20_000, help="the largest --account campaign (20000)"
    )
    parser.add_argument(
        "--campaign-shape",
        choices=CAMPAIGN_SHAPES,
        default="flat",
        help="one campaign as sid + flat counters, id + stats, or mixed (flat)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data and fault seed (0)")
    parser.add_argument("--max-limit", type=int, default=50, help="largest page size (50)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="throttle past N requests per --rate-window seconds",
    )
    parser.add_argument("--rate-window", type=float, default=60.0, help="seconds (60)")
    parser.add_argument(
        "--rate-kind", choices=WINDOW_KINDS, default="sliding", help="how it counts (sliding)"
    )
    parser.add_argument(
        "--rate-reset",
        choices=RESET_FORMATS,
        default="epoch_ms",
        help="how X-RateLimit-Reset is written, or none for no rate headers (epoch_ms)",
    )
    parser.add_argument(
        "--rate-status", type=int, choices=(429, 503), default=429, help="throttle status (429)"
    )
    parser.add_argument(
        "--no-retry-after", action="store_true", help="throttle without Retry-After"
    )
    parser.add_argument(
        "--advance-statuses",
        type=float,
        metavar="SECONDS",
        help="statuses advance from queued to final from start-up, each stage about SECONDS",
    )


def _parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m exotel_async.testing",
        description="Serve a fake Exotel 'SMS details of a campaign' API until Ctrl-C.",
    )
    add_options(parser)
    return parser


def _banner(sandbox: Sandbox) -> str:
    """What to tell the user, as lines a shell accepts: exports, and comments for the rest."""
    campaigns = sandbox.campaigns
    first = next(iter(campaigns))
    url = f"{sandbox.base_url}/v2/accounts/{sandbox.account_sid}/sms-campaigns/{first}/sms-details"
    variables = {
        "EXOTEL_BASE_URL": sandbox.base_url,
        "EXOTEL_API_KEY": sandbox.api_key,
        "EXOTEL_API_TOKEN": sandbox.api_token,
        "EXOTEL_ACCOUNT_SID": sandbox.account_sid,
    }
    credentials = shlex.quote(f"{sandbox.api_key}:{sandbox.api_token}")
    listed = [f"# campaign {cid}: {total} records" for cid, total in campaigns.items()]
    if len(listed) > 5:
        listed = [f"# {len(campaigns)} campaigns, {sum(campaigns.values())} records in all"]
    lines = [
        f"# Exotel sandbox listening on {sandbox.base_url}; paste these lines into a shell:",
        *(f"export {name}={shlex.quote(value)}" for name, value in variables.items()),
        *listed,
        f"# try: exotel-async summary {first}",
        *(["#  or: exotel-async campaigns"] if len(campaigns) > 1 else []),
        f"#  or: curl -u {credentials} {shlex.quote(url + '?limit=3')}",
        "# Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def rate_limit_from(args: argparse.Namespace) -> RateLimit | None:
    """The limit the ``--rate-*`` options describe, or None without ``--rate-limit``."""
    if args.rate_limit is None:
        return None
    return RateLimit(
        args.rate_limit,
        args.rate_window,
        window=args.rate_kind,
        reset=args.rate_reset,
        status=args.rate_status,
        retry_after=not args.no_retry_after,
    )


def progress_from(args: argparse.Namespace) -> StatusProgress | None:
    """Statuses advancing from now, as ``--advance-statuses`` asks, or None."""
    if args.advance_statuses is None:
        return None
    return StatusProgress(time.time(), stage=args.advance_statuses)


def campaigns_from(args: argparse.Namespace) -> list[SandboxCampaign]:
    """The campaigns ``--campaign``, ``--records`` and ``--account`` describe."""
    if not args.campaigns and not args.account:
        return demo_account(args.records)
    campaigns = [SandboxCampaign(cid, args.records) for cid in args.campaigns or ()]
    if args.account:
        total = args.account * 2500 if args.account_records is None else args.account_records
        campaigns += make_account(args.account, total, max_records=args.max_records, seed=args.seed)
    return campaigns


async def _serve(args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM."""
    sandbox = Sandbox(
        campaigns=campaigns_from(args),
        campaign_shape=args.campaign_shape,
        seed=args.seed,
        max_limit=args.max_limit,
        faults=Faults(latency=args.latency, rate_limit=rate_limit_from(args)),
        host=args.host,
        port=args.port,
        progress=progress_from(args),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows has no loop signal handlers; Ctrl-C then arrives as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with sandbox:
        print(_banner(sandbox), flush=True)
        await stop.wait()
    print("# Sandbox stopped.", flush=True)


def serve(args: argparse.Namespace, prog: str) -> int:
    """Serve the sandbox ``args`` describe; a port that cannot be bound is one line, status 1."""
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args))
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        if exc.errno == errno.EADDRINUSE:
            reason = f"port {args.port} is in use; pass --port 0 for a free one"
        else:
            reason = f"cannot listen on {where}: {exc.strerror or exc}"
        print(f"{prog}: error: {reason}", file=sys.stderr)
        return 1
    except ValueError as exc:  # an option the Sandbox refuses, e.g. --max-limit 0
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, serve, and return the exit status."""
    parser = _parser()
    return serve(parser.parse_args(argv), parser.prog)


if __name__ == "__main__":
    sys.exit(main())
