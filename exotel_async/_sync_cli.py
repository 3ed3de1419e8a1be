"""``exotel-async sync``: a campaign into a database, once or following it until final."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

from ._account_export import campaign_wanted, list_campaigns
from ._database import Database
from ._errors import ExotelError
from ._follow import DEFAULT_DEADLINE, MIN_INTERVAL, FollowSummary
from ._sync import follow_campaign, open_database, sync_campaign
from .cli import (
    EXIT_API,
    EXIT_OK,
    _add_connection,
    _connect,
    _error_line,
    _positive,
    add_campaign_filters,
)

if TYPE_CHECKING:
    from ._client import ExotelClient

#: A follow that reached its deadline with SMS still pending.
EXIT_NOT_FINAL = 3
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


def duration(text: str) -> float:
    """Seconds from ``90``, ``30s``, ``5m``, ``48h`` or ``2d``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 30s, 5m or 48h, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _interval(text: str) -> float:
    """A duration of at least MIN_INTERVAL."""
    value = duration(text)
    if value < MIN_INTERVAL:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL:g}s, got {text!r}")
    return value


def _deadline(text: str) -> float:
    """A duration of more than 0."""
    value = duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def add_parser(commands: Any) -> None:
    """The ``sync`` subcommand's options."""
    sync = commands.add_parser(
        "sync", help="upsert a campaign's SMS into SQLite or PostgreSQL; --follow until final"
    )
    sync.add_argument(
        "campaign_id", metavar="CAMPAIGN_ID", nargs="?", help="the campaign's sid (or --all)"
    )
    sync.add_argument(
        "--db",
        required=True,
        metavar="URL",
        help="sqlite:///sms.db (a file) or postgresql://user@host/db",
    )
    sync.add_argument(
        "--page-size", type=_positive, default=50, metavar="N", help="records per request (50)"
    )
    sync.add_argument(
        "--concurrency", type=_positive, default=4, metavar="N", help="pages in flight (4)"
    )
    follow = sync.add_argument_group("follow mode")
    follow.add_argument(
        "--follow", action="store_true", help="sync again every --interval, printing transitions"
    )
    follow.add_argument(
        "--interval",
        type=_interval,
        default=300.0,
        metavar="DURATION",
        help="from one walk's start to the next's: 30s, 5m, 2h, 1d (5m)",
    )
    follow.add_argument(
        "--until-final", action="store_true", help="stop once every SMS is delivered or failed"
    )
    follow.add_argument(
        "--deadline",
        type=_deadline,
        metavar="DURATION",
        help="stop after a last walk this long after the start (48h)",
    )
    follow.add_argument(
        "--skip-final-pages",
        action="store_true",
        help="walk in schedule_time order; re-read only pages holding SMS not yet final",
    )
    account = sync.add_argument_group("every campaign of the account (--all)")
    account.add_argument("--all", action="store_true", help="sync every campaign, one by one")
    add_campaign_filters(account)
    _add_connection(sync)


def _check(args: argparse.Namespace) -> None:
    """One campaign, or --all with its filters; --follow for one campaign only.

    ValueError, not cli's UsageError: run as ``python -m exotel_async.cli``, the module
    that catches is ``__main__``, whose UsageError is another class. Both exit 2.
    """
    if args.all and args.campaign_id:
        raise ValueError("--all syncs every campaign: drop CAMPAIGN_ID")
    if not args.all and not args.campaign_id:
        raise ValueError("give a CAMPAIGN_ID, or --all for every campaign")
    if args.all and args.follow:
        raise ValueError("--follow follows one campaign: give its CAMPAIGN_ID instead of --all")
    given = (
        ("--status", args.status),
        ("--skip-status", args.skip_status),
        ("--since", args.since),
    )
    filters = [flag for flag, value in given if value]
    if filters and not args.all:
        raise ValueError(f"{filters[0]} applies to --all, not to one campaign")


def _walk_line(summary: FollowSummary) -> str:
    """``walk 3: 5000 SMS read; delivered 4000, pending 800, failed 200, unknown 0``."""
    counts = ", ".join(f"{name} {n}" for name, n in summary.outcomes.items())
    return f"walk {summary.walks}: {summary.records} SMS read in all; {counts}"


async def run(args: argparse.Namespace) -> int:
    """Sync once, or follow; print the outcome on stderr."""
    _check(args)
    if not args.follow and (args.until_final or args.deadline is not None):
        print("exotel-async: warning: --until-final and --deadline need --follow", file=sys.stderr)
    async with _connect(args) as client, open_database(args.db) as db:
        if args.all:
            return await _sync_all(args, client, db)
        if not args.follow:
            summary = await sync_campaign(
                client, db, args.campaign_id, page_size=args.page_size, concurrency=args.concurrency
            )
            print(_final_line(summary), file=sys.stderr)
            return EXIT_OK
        run = follow_campaign(
            client,
            db,
            args.campaign_id,
            interval=args.interval,
            until_final=args.until_final,
            deadline=DEFAULT_DEADLINE if args.deadline is None else args.deadline,
            skip_final_pages=args.skip_final_pages,
            page_size=args.page_size,
            concurrency=args.concurrency,
            on_walk=lambda summary: print(_walk_line(summary), file=sys.stderr, flush=True),
        )
        async for transition in run:
            print(transition, flush=True)
    summary = run.summary
    print(_final_line(summary), file=sys.stderr)
    if args.until_final and not summary.final:
        pending = summary.outcomes.get("pending", 0) + summary.outcomes.get("unknown", 0)
        print(f"exotel-async: deadline reached with {pending} SMS not final", file=sys.stderr)
        return EXIT_NOT_FINAL
    return EXIT_OK


async def _sync_all(args: argparse.Namespace, client: ExotelClient, db: Database) -> int:
    """Every campaign the filters pass, one after another; one failing stops no other."""
    status = frozenset(args.status) if args.status else None
    skip = frozenset(args.skip_status) if args.skip_status else None
    chosen = [
        campaign.campaign_id
        async for campaign in list_campaigns(client, status)
        if campaign_wanted(campaign, status, args.since, skip)
    ]
    failed = 0
    for campaign_id in chosen:
        try:
            summary = await sync_campaign(
                client, db, campaign_id, page_size=args.page_size, concurrency=args.concurrency
            )
        except Exception as exc:  # archived (404), the database: the others go on
            failed += 1
            print(f"exotel-async: error: {campaign_id}: {_failure(exc)}", file=sys.stderr)
            continue
        print(_final_line(summary), file=sys.stderr)
    print(f"synced {len(chosen) - failed} of {len(chosen)} campaigns", file=sys.stderr)
    return EXIT_API if failed else EXIT_OK


def _failure(exc: Exception) -> str:
    """What one campaign's sync failed on, as a line."""
    return _error_line(exc) if isinstance(exc, ExotelError) else f"{type(exc).__name__}: {exc}"


def _final_line(summary: FollowSummary) -> str:
    """The one-line outcome of a sync or a follow."""
    state = "every SMS final" if summary.final else "not all final"
    walks = f"{summary.walks} walk{'s' if summary.walks != 1 else ''}"
    return (
        f"synced {summary.campaign_id}: {summary.records} SMS read in {walks}, "
        f"{summary.transitions} status changes, {state} ({summary.elapsed:.1f}s)"
    )
