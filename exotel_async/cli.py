"""The ``exotel-async`` command: export a campaign, summarise it, or serve the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from ._account_export import AccountExportRequest, AccountProgress, run_account_export
from ._client import ExotelClient, MissingCredentials, Region, check_ceiling
from ._converter import converter, parse_datetime
from ._database import database_errors
from ._errors import AuthenticationError, ExotelError, ExportRefused, PermissionDeniedError
from ._export import FORMATS, ExportProgress, ExportRequest, run_export
from ._models import Campaign, CampaignStatus
from ._protocol import check_sort_by
from ._report import CampaignSummary, render_html

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Requests in flight for ``export --all``, shared by the campaigns exported at once.
ACCOUNT_CONCURRENCY = 8
#: Campaigns exported at once per request in flight: each waits on its own checkpoint
#: between pages, and the big ones should not all start last.
CAMPAIGNS_PER_SLOT = 4
#: What to check after an error Exotel's answer alone does not explain.
_HINTS: dict[type[ExotelError], str] = {
    AuthenticationError: "check EXOTEL_API_KEY and EXOTEL_API_TOKEN, and that the account "
    f"is on this cluster (EXOTEL_REGION={'|'.join(r.value for r in Region)}, or EXOTEL_BASE_URL)",
    PermissionDeniedError: "check EXOTEL_ACCOUNT_SID: the key and token belong to another account",
}


class UsageError(Exception):
    """A mistake in the command line or environment: exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with every usage error as one line and a pointer to ``--help``."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage block and exiting."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def _since(text: str) -> datetime:
    """A date or time; without an offset it is India time, as Exotel's timestamps are."""
    try:
        return parse_datetime(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2026-11-01 or a time like 2026-11-01T18:30, got {text!r}"
        ) from None


def _status(text: str) -> CampaignStatus:
    """A campaign state in any casing."""
    states = [s for s in CampaignStatus if s is not CampaignStatus.UNKNOWN]
    try:
        state = CampaignStatus(text)
    except ValueError:
        state = CampaignStatus.UNKNOWN
    if state is CampaignStatus.UNKNOWN:
        names = ", ".join(s.value for s in states)
        raise argparse.ArgumentTypeError(f"expected one of {names}, got {text!r}")
    return state


def _positive(text: str) -> int:
    return _whole_number(text, 1)


def _per_minute(text: str) -> float:
    """A ceiling in requests a minute, as the client checks it."""
    try:
        return check_ceiling(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of requests, at least 1, got {text!r}"
        ) from None


def _page_size(text: str) -> int:
    """Records per request: Exotel's documents allow 1 to 50, and it answers 400 above."""
    value = _whole_number(text, 1)
    if value > 50:
        raise argparse.ArgumentTypeError(f"Exotel accepts 1 to 50, got {value}")
    return value


def _sort_by(text: str) -> str:
    """A sort order as the library checks it, named in the command line's terms."""
    try:
        check_sort_by(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected FIELD:asc or FIELD:desc (e.g. schedule_time:asc), got {text!r}"
        ) from None
    return text


def _name(text: str) -> str:
    """A campaign name search: Exotel searches by 3 characters or more."""
    if len(text) < 3:
        raise argparse.ArgumentTypeError(f"expected at least 3 characters, got {text!r}")
    return text


def _non_negative(text: str) -> int:
    return _whole_number(text, 0)


def add_campaign_filters(group: argparse._ArgumentGroup) -> None:
    """``--status``, ``--skip-status`` and ``--since``: which campaigns ``--all`` takes."""
    group.add_argument(
        "--status", type=_status, action="append", help="only campaigns in this state; repeatable"
    )
    group.add_argument(
        "--skip-status",
        type=_status,
        action="append",
        metavar="STATUS",
        help="leave out campaigns in this state (e.g. archived); repeatable",
    )
    group.add_argument(
        "--since",
        type=_since,
        metavar="DATE",
        help="only campaigns created at or after DATE (India time unless an offset is given)",
    )


def _add_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "connection",
        "Credentials come from EXOTEL_API_KEY, EXOTEL_API_TOKEN and EXOTEL_ACCOUNT_SID, with "
        "EXOTEL_REGION or EXOTEL_BASE_URL; the flags below override all but the token.",
    )
    group.add_argument("--sandbox", action="store_true", help="use the bundled fake server")
    group.add_argument("--api-key", help="overrides EXOTEL_API_KEY")
    group.add_argument("--account-sid", help="overrides EXOTEL_ACCOUNT_SID")
    regions = [region.value for region in Region]
    group.add_argument("--region", choices=regions, help="overrides EXOTEL_REGION")
    group.add_argument("--base-url", help="overrides EXOTEL_BASE_URL")
    group.add_argument(
        "--max-requests-per-minute",
        type=_per_minute,
        metavar="N",
        help="at most N requests a minute from this process, whatever the server says",
    )


def _add_walk(parser: argparse.ArgumentParser, *, optional_id: bool = False) -> None:
    parser.add_argument(
        "campaign_id",
        metavar="CAMPAIGN_ID",
        nargs="?" if optional_id else None,
        help="the campaign's sid from Exotel's dashboard (with --sandbox: demo)",
    )
    parser.add_argument(
        "--page-size",
        type=_page_size,
        default=50,
        help="records per request; Exotel accepts 1 to 50 (50)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        help=f"pages in flight (4; with --all, across all campaigns: {ACCOUNT_CONCURRENCY})",
    )
    parser.add_argument("--number", help="only SMS to this phone number")
    parser.add_argument(
        "--sort-by", type=_sort_by, help="e.g. schedule_time:asc or date_created:desc"
    )
    parser.add_argument(
        "--skip-item-errors",
        action="store_true",
        help="pass over items Exotel reports as failed instead of stopping",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = _Parser(prog="exotel-async", description="Pull SMS campaign data out of Exotel.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export", help="stream a campaign to a file, or every campaign to a folder, resumably"
    )
    _add_walk(export, optional_id=True)
    export.add_argument("--output", "-o", help="file to write, or - for stdout")
    account = export.add_argument_group(
        "every campaign of the account (--all)",
        "One file per campaign in --output-dir, and manifest.json saying which are complete.",
    )
    account.add_argument("--all", action="store_true", help="export every campaign")
    account.add_argument("--output-dir", metavar="DIR", help="folder for the files (--all)")
    add_campaign_filters(account)
    export.add_argument(
        "--format",
        choices=FORMATS,
        help="default: from the extension of --output ("
        + ", ".join(ext for f in FORMATS.values() for ext in f.extensions)
        + "), else jsonl",
    )
    export.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint; starts afresh when there is none",
    )
    export.add_argument("--force", action="store_true", help="overwrite an existing output")
    export.add_argument("--max-items", type=_non_negative, help="stop after N records")
    _add_connection(export)

    summary = commands.add_parser("summary", help="count a campaign's SMS by status")
    _add_walk(summary)
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    summary.add_argument(
        "--html",
        metavar="PATH",
        help="write a self-contained HTML report with charts to PATH, instead of the table",
    )
    _add_connection(summary)

    campaigns = commands.add_parser("campaigns", help="list the account's SMS campaigns")
    campaigns.add_argument("--json", action="store_true", help="print JSON instead of a table")
    campaigns.add_argument("--status", type=_status, help="only campaigns in this state")
    campaigns.add_argument(
        "--name", type=_name, help="only campaigns whose name contains this (3+ chars)"
    )
    campaigns.add_argument("--sort-by", type=_sort_by, help="e.g. date_created:desc or name:asc")
    _add_connection(campaigns)

    from . import _sync_cli
    from .testing.__main__ import add_options

    _sync_cli.add_parser(commands)
    add_options(commands.add_parser("sandbox", help="serve the bundled fake Exotel server"))
    return parser


def _client_from(args: argparse.Namespace, **options: Any) -> ExotelClient:
    """A client from the environment, with flags overriding everything but the token."""
    flags = {
        "api_key": args.api_key,
        "account_sid": args.account_sid,
        "region": args.region,
        "base_url": args.base_url,
    }
    overrides: dict[str, Any] = {k: v for k, v in flags.items() if v is not None} | options
    if args.region and not args.base_url:
        overrides["base_url"] = None  # --region beats EXOTEL_BASE_URL, as flags beat variables
    try:
        return ExotelClient.from_env(**overrides)
    except MissingCredentials as exc:
        raise UsageError(
            f"{exc}: set {'it' if len(exc.variables) == 1 else 'them'} "
            "from your Exotel dashboard's API settings, "
            "or pass --sandbox to try exotel-async on the bundled fake server"
        ) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


@contextlib.asynccontextmanager
async def _connect(args: argparse.Namespace, **options: Any) -> AsyncIterator[ExotelClient]:
    """A client for the command (``options`` for its constructor): against the embedded
    sandbox with ``--sandbox``."""
    if args.max_requests_per_minute is not None:
        options = {"max_requests_per_minute": args.max_requests_per_minute, **options}
    if not args.sandbox:
        async with _client_from(args, **options) as client:
            yield client
        return
    from .testing import Sandbox, StatusProgress
    from .testing._account import demo_account

    # A sync follows statuses that move: queued to final in under two minutes.
    progress = StatusProgress(time.time(), stage=10.0) if args.command == "sync" else None
    async with Sandbox(campaigns=demo_account(), progress=progress) as sandbox:
        client = ExotelClient(
            sandbox.api_key,
            sandbox.api_token,
            sandbox.account_sid,
            base_url=sandbox.base_url,
            **options,
        )
        async with client:
            yield client


def _progress_printer(
    stream: TextIO,
) -> tuple[Callable[[ExportProgress], None], Callable[[], None]]:
    """A live progress bar on a terminal; nothing animated elsewhere."""
    if not stream.isatty():
        return (lambda progress: None), (lambda: None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.0f} rec/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("retries {task.fields[retries]}"),
        console=Console(file=stream),
        transient=True,
    )
    task = bar.add_task("export", total=None, rate=0.0, retries=0)
    bar.start()

    def update(progress: ExportProgress) -> None:
        done = progress.records - progress.started_at_record
        rate = done / progress.elapsed if progress.elapsed > 0 else 0.0
        bar.update(
            task,
            completed=progress.records,
            total=progress.total,
            rate=rate,
            retries=progress.retries,
        )

    return update, bar.stop


def _resume_hint(argv: Sequence[str]) -> str:
    args = [a for a in argv if a not in ("--resume", "--force")]
    return shlex.join(["exotel-async", *args, "--resume"])


def _format(output: str, asked: str | None) -> str:
    """The format ``--format`` names, else the one the output's extension implies, else jsonl."""
    suffix = Path(output).suffix.lower()
    implied = next((f.name for f in FORMATS.values() if suffix in f.extensions), None)
    if asked and implied and asked != implied:
        raise UsageError(
            f"--format {asked} contradicts the extension of {output}: "
            f"drop --format, or name the file *.{asked}"
        )
    return asked or implied or "jsonl"


def _final_line(progress: ExportProgress, where: str) -> str:
    """The one-line summary of a run; the details count this run only."""
    details = [f"{progress.pages} pages", f"{progress.retries} retries"]
    if progress.throttled or progress.rate_wait >= 0.05:
        details.append(
            f"{progress.throttled} throttled, requests waited {progress.rate_wait:.1f}s in all "
            "for the rate limit"
        )
    if progress.item_errors:
        details.append(f"{progress.item_errors} failed items skipped")
    details.append(f"{progress.elapsed:.1f}s")
    if progress.started_at_record:  # resumed: say what this run added to the earlier ones
        details.insert(0, f"this run: {progress.records - progress.started_at_record} records")
    verb = "exported" if progress.completed else "stopped after"
    return f"{verb} {progress.records} records to {where} ({', '.join(details)})"


def _check_export_target(args: argparse.Namespace) -> None:
    """One campaign to --output, or --all to --output-dir; nothing in between."""
    if args.all:
        if args.output:
            raise UsageError("with --all, give --output-dir DIR instead of --output")
        if args.campaign_id:
            raise UsageError("--all exports every campaign: drop CAMPAIGN_ID")
        if not args.output_dir:
            raise UsageError("--all needs --output-dir DIR for the campaign files")
        single_only = {"--number": args.number, "--max-items": args.max_items}
        single_only["--sort-by"] = args.sort_by
        given = [flag for flag, value in single_only.items() if value is not None]
        if given:
            raise UsageError(f"{given[0]} applies to one campaign, not to --all")
        return
    if not args.campaign_id:
        raise UsageError("give a CAMPAIGN_ID, or --all for every campaign")
    if not args.output:
        raise UsageError("give --output PATH, or - for stdout")
    all_only = (("--output-dir", args.output_dir), ("--status", args.status))
    given = [f for f, v in (*all_only, ("--skip-status", args.skip_status)) if v]
    given += ["--since"] if args.since else []
    if given:
        raise UsageError(f"{given[0]} applies to --all, not to one campaign")


def _stop_on_ctrl_c() -> Callable[[], bool]:
    """Make the first Ctrl-C ask for a stop after the page in hand; return ``should_stop``."""
    stop_requested = False

    def request_stop() -> None:
        nonlocal stop_requested
        if stop_requested:  # a second Ctrl-C: stop waiting for the page in hand
            raise KeyboardInterrupt
        stop_requested = True
        print(
            "exotel-async: stopping after the page in hand; Ctrl-C again to stop at once",
            file=sys.stderr,
            flush=True,
        )

    # The handler stays until the loop closes: a Ctrl-C while shutting down is then still
    # a KeyboardInterrupt that main() turns into status 130, not a traceback.
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, request_stop)
    return lambda: stop_requested


async def _export(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _check_export_target(args)
    if args.all:
        return await _export_all(args, argv)
    output = None if args.output == "-" else Path(args.output)
    request = ExportRequest(
        campaign_id=args.campaign_id,
        output=output,
        format=_format(args.output, args.format),
        resume=args.resume,
        force=args.force,
        page_size=args.page_size,
        concurrency=args.concurrency or 4,
        number=args.number,
        sort_by=args.sort_by,
        max_items=args.max_items,
        skip_item_errors=args.skip_item_errors,
    )
    should_stop = _stop_on_ctrl_c()
    on_page, finish = _progress_printer(sys.stderr)
    try:
        async with _connect(args) as client:
            progress = await run_export(client, request, on_page=on_page, should_stop=should_stop)
    finally:
        finish()
    return _export_status(progress, request, argv)


def _export_status(progress: ExportProgress, request: ExportRequest, argv: Sequence[str]) -> int:
    """Say how the export ended, on stderr; return the exit status that says it too."""
    where = "stdout" if request.output is None else str(request.output)
    if progress.already_complete:
        print(
            f"already complete, {progress.records} records in {where}; "
            "pass --force to export again",
            file=sys.stderr,
        )
        return EXIT_OK
    print(_final_line(progress, where), file=sys.stderr)
    if progress.ended_early:
        print(
            f"exotel-async: error: Exotel served an empty page below its total of "
            f"{progress.total}; the checkpoint is kept: {_resume_hint(argv)}",
            file=sys.stderr,
        )
        return EXIT_API
    if progress.interrupted:
        if not FORMATS[request.format].resumable or request.output is None:
            print(f"interrupted: {where} holds the records so far", file=sys.stderr)
        else:
            print(f"checkpoint saved; resume with: {_resume_hint(argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


async def _export_all(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``export --all``: every campaign to --output-dir, with a manifest."""
    fmt = _format(args.output_dir, args.format)
    statuses = frozenset(args.status) if args.status else None
    in_flight = args.concurrency or ACCOUNT_CONCURRENCY
    request = AccountExportRequest(
        output_dir=Path(args.output_dir),
        format=fmt,
        resume=args.resume,
        force=args.force,
        status=statuses,
        skip_status=frozenset(args.skip_status) if args.skip_status else None,
        since=args.since,
        campaigns_at_once=min(in_flight * CAMPAIGNS_PER_SLOT, 64),
        page_size=args.page_size,
        skip_item_errors=args.skip_item_errors,
    )
    should_stop = _stop_on_ctrl_c()
    on_progress, finish = _account_progress_printer(sys.stderr)
    try:
        async with _connect(args, max_in_flight=in_flight) as client:
            progress = await run_account_export(
                client,
                request,
                on_progress=on_progress,
                should_stop=should_stop,
            )
    finally:
        finish()
    print(_account_final_line(progress, args.output_dir), file=sys.stderr)
    for entry in [e for e in progress.entries if e.error][:5]:
        print(f"  {entry.campaign_id}: {entry.error}", file=sys.stderr)
    if progress.interrupted:
        print(f"stopped; finish with: {_resume_hint(argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if progress.complete else EXIT_API


def _account_final_line(progress: AccountProgress, where: str) -> str:
    """The one-line summary of an account export."""
    listed = len(progress.entries)
    done = sum(1 for e in progress.entries if e.complete)
    failed = sum(1 for e in progress.entries if e.error)
    details = [f"{done} of {listed} campaigns complete"]
    if failed:
        details.append(f"{failed} failed, see {Path(where) / 'manifest.json'}")
    details.append(f"{progress.elapsed:.1f}s")
    records = sum(e.records for e in progress.entries)
    return f"exported {records} records to {where} ({', '.join(details)})"


#: Active campaigns given a bar of their own; the overall line counts them all.
_ACTIVE_SHOWN = 8


def _account_progress_printer(
    stream: TextIO,
) -> tuple[Callable[[AccountProgress], None], Callable[[], None]]:
    """On a terminal: campaigns and records done overall, and a line per active campaign."""
    if not stream.isatty():
        return (lambda progress: None), (lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    bar = Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(bar_width=20),
        TextColumn("{task.fields[note]}"),
        console=Console(file=stream),
        transient=True,
    )
    overall = bar.add_task("campaigns", total=None, note="")
    shown: dict[str, Any] = {}
    bar.start()

    def update(progress: AccountProgress) -> None:
        rate = progress.records / progress.elapsed if progress.elapsed > 0 else 0.0
        finished = progress.completed + progress.failed
        note = (
            f"{finished}/{progress.campaigns} done, {progress.failed} failed, "
            f"{len(progress.active)} active; {progress.records:,} records, {rate:,.0f}/s"
        )
        bar.update(overall, completed=finished, total=progress.campaigns, note=note)
        for campaign_id in [c for c in shown if c not in progress.active]:
            bar.remove_task(shown.pop(campaign_id))
        for campaign_id, one in progress.active.items():
            if campaign_id not in shown and len(shown) >= _ACTIVE_SHOWN:
                continue
            if campaign_id not in shown:
                label = f"  {campaign_id[:12]}{'…' if len(campaign_id) > 12 else ''}"
                shown[campaign_id] = bar.add_task(label, total=None, note="")
            of = "?" if one.total is None else f"{one.total:,}"
            note = f"{one.records:,}/{of} records"
            bar.update(shown[campaign_id], completed=one.records, total=one.total, note=note)

    return update, bar.stop


async def _campaigns(args: argparse.Namespace) -> int:
    """``campaigns``: the account's SMS campaigns as a table or JSON."""
    async with _connect(args) as client:
        listing = client.campaigns(status=args.status, name=args.name, sort_by=args.sort_by)
        found = [campaign async for campaign in listing]
    if args.json:
        rows = [converter.unstructure(c) for c in found]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        _print_campaigns(found)
    return EXIT_OK


def _print_campaigns(campaigns: list[Campaign]) -> None:
    """A table: id, name, status as Exotel wrote it, creation time.

    On a terminal, a table that fits it; piped, one tab-separated line per campaign,
    nothing wrapped or cut, for ``cut`` and ``grep``.
    """
    columns = ("id", "name", "status", "created")
    rows = [
        (
            c.campaign_id,
            c.name or "",
            c.status or "",
            c.date_created.isoformat(sep=" ") if c.date_created else "",
        )
        for c in campaigns
    ]
    if not sys.stdout.isatty():
        for row in (columns, *rows):
            print("\t".join(" ".join(cell.split()) for cell in row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(campaigns)} SMS campaigns", title_justify="left")
    table.add_column("id", no_wrap=True)  # whole, to be copied into the next command
    for column in columns[1:]:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _print_tables(summary: CampaignSummary, campaign_id: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"campaign [bold]{campaign_id}[/]: {summary.records} SMS, "
        f"delivery rate {summary.delivery_rate:.1%}"
    )
    sections = [
        ("status", summary.by_status),
        ("detailed status", summary.by_detailed_status),
        ("top failure reasons", Counter(dict(summary.failure_reasons.most_common(5)))),
    ]
    for title, counts in sections:
        table = Table(title=title, title_justify="left")
        table.add_column(title)
        table.add_column("count", justify="right")
        table.add_column("share", justify="right")
        table.add_column("")
        for key, n in counts.most_common():
            share = n / summary.records if summary.records else 0.0
            table.add_row(key, str(n), f"{share:.1%}", "█" * max(1, round(share * 30)))
        console.print(table)


async def _summary(args: argparse.Namespace) -> int:
    summary = CampaignSummary()
    async with _connect(args) as client:
        stream = client.sms_details(
            args.campaign_id,
            page_size=args.page_size,
            concurrency=args.concurrency or 4,
            number=args.number,
            sort_by=args.sort_by,
            skip_item_errors=args.skip_item_errors,
        )
        async for record in stream:
            summary.add(record)
    if args.html:
        report = render_html(summary, args.campaign_id)
        await asyncio.to_thread(Path(args.html).write_text, report, encoding="utf-8")
        print(f"wrote the report on {summary.records} SMS to {args.html}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.as_dict(args.campaign_id), indent=2, ensure_ascii=False))
    elif not args.html:
        _print_tables(summary, args.campaign_id)
    return EXIT_OK


async def _main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.command == "export":
        return await _export(args, argv)
    if args.command == "campaigns":
        return await _campaigns(args)
    if args.command == "sync":
        from . import _sync_cli

        return await _sync_cli.run(args)
    return await _summary(args)


def _error_line(exc: ExotelError) -> str:
    """The error's class and text, and what to check when Exotel's text does not say."""
    hint = next((h for cls, h in _HINTS.items() if isinstance(exc, cls)), None)
    return f"{type(exc).__name__}: {exc}" + (f"; {hint}" if hint else "")


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that exiting does not flush into a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status instead of raising."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except UsageError as exc:
        print(f"exotel-async: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(argv: list[str]) -> int:
    """Parse ``argv`` and run its command; usage errors propagate as ``UsageError``."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # named against the subcommand, whose --help lists what it takes
        where = f"exotel-async {args.command}"
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (see '{where} --help')")
    # Retries and short pages are worth a line on stderr; per-request detail is not.
    logging.basicConfig(level=logging.WARNING, format="exotel-async: warning: %(message)s")
    if args.command == "sandbox":
        from .testing.__main__ import serve

        return serve(args, "exotel-async")
    try:
        return asyncio.run(_main(args, argv))
    except ExportRefused as exc:
        print(f"exotel-async: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnicodeError as exc:  # a ValueError, but from the data, never the command line
        print(f"exotel-async: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_API
    except (ValueError, TypeError) as exc:
        print(
            f"exotel-async: error: {exc} (see 'exotel-async {args.command} --help')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except ExotelError as exc:
        print(f"exotel-async: error: {_error_line(exc)}", file=sys.stderr)
        return EXIT_API
    except database_errors() as exc:
        print(f"exotel-async: error: database: {exc}", file=sys.stderr)
        return EXIT_API
    except BrokenPipeError:  # the reader of stdout is gone (| head): stop quietly
        _silence_stdout()
        return EXIT_OK
    except OSError as exc:  # the output cannot be written: a full disk, no permission
        where = next(
            (w for w in (getattr(args, n, None) for n in ("output", "output_dir", "html")) if w),
            "the output",
        )
        print(f"exotel-async: error: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_API
    except KeyboardInterrupt:
        print("exotel-async: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
