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
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from ._client import ExotelClient, MissingCredentials, Region
from ._database import database_errors
from ._errors import AuthenticationError, ExotelError, ExportRefused, PermissionDeniedError
from ._export import FORMATS, ExportProgress, ExportRequest, run_export
from ._report import CampaignSummary, render_html

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: The campaign the embedded sandbox serves for ``--sandbox``.
DEMO_CAMPAIGN = "demo"
DEMO_RECORDS = 5000
#: The format an output's extension implies when ``--format`` is not given.
EXTENSION_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
#: What to check after an error Exotel's answer alone does not explain.
_HINTS: dict[type[ExotelError], str] = {
    AuthenticationError: "check EXOTEL_API_KEY and EXOTEL_API_TOKEN, and that the account "
    "is on this cluster (EXOTEL_REGION=singapore|mumbai, or EXOTEL_BASE_URL)",
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


def _positive(text: str) -> int:
    return _whole_number(text, 1)


def _non_negative(text: str) -> int:
    return _whole_number(text, 0)


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


def _add_walk(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "campaign_id",
        metavar="CAMPAIGN_ID",
        help="the campaign's sid from Exotel's dashboard (with --sandbox: demo)",
    )
    parser.add_argument(
        "--page-size",
        type=_positive,
        default=50,
        help="records per request; Exotel accepts 1 to 50 (50)",
    )
    parser.add_argument("--concurrency", type=_positive, default=4, help="pages in flight (4)")
    parser.add_argument("--number", help="only SMS to this phone number")
    parser.add_argument("--sort-by", help="e.g. schedule_time:asc or date_created:desc")
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

    export = commands.add_parser("export", help="stream a campaign to a file, resumably")
    _add_walk(export)
    export.add_argument("--output", "-o", required=True, help="file to write, or - for stdout")
    export.add_argument(
        "--format",
        choices=FORMATS,
        help="default: from the extension of --output (.jsonl, .csv, .parquet), else jsonl",
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

    from . import _sync_cli
    from .testing.__main__ import add_options

    _sync_cli.add_parser(commands)
    add_options(commands.add_parser("sandbox", help="serve the bundled fake Exotel server"))
    return parser


def _client_from(args: argparse.Namespace) -> ExotelClient:
    """A client from the environment, with flags overriding everything but the token."""
    flags = {
        "api_key": args.api_key,
        "account_sid": args.account_sid,
        "region": args.region,
        "base_url": args.base_url,
    }
    overrides: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
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
async def _connect(args: argparse.Namespace) -> AsyncIterator[ExotelClient]:
    """A client for the command: against the embedded sandbox with ``--sandbox``."""
    if not args.sandbox:
        async with _client_from(args) as client:
            yield client
        return
    from .testing import Sandbox, StatusProgress

    campaigns = {DEMO_CAMPAIGN: DEMO_RECORDS}
    # A sync follows statuses that move: queued to final in under two minutes.
    progress = StatusProgress(time.time(), stage=10.0) if args.command == "sync" else None
    async with Sandbox(campaigns=campaigns, progress=progress) as sandbox:
        client = ExotelClient(
            sandbox.api_key, sandbox.api_token, sandbox.account_sid, base_url=sandbox.base_url
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
    implied = None if output == "-" else EXTENSION_FORMATS.get(Path(output).suffix.lower())
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


async def _export(args: argparse.Namespace, argv: Sequence[str]) -> int:
    output = None if args.output == "-" else Path(args.output)
    fmt = _format(args.output, args.format)
    request = ExportRequest(
        campaign_id=args.campaign_id,
        output=output,
        format=fmt,
        resume=args.resume,
        force=args.force,
        page_size=args.page_size,
        concurrency=args.concurrency,
        number=args.number,
        sort_by=args.sort_by,
        max_items=args.max_items,
        skip_item_errors=args.skip_item_errors,
    )
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

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, request_stop)
    on_page, finish = _progress_printer(sys.stderr)
    try:
        async with _connect(args) as client:
            progress = await run_export(
                client, request, on_page=on_page, should_stop=lambda: stop_requested
            )
    finally:
        # The handler stays until the loop closes: a Ctrl-C while shutting down is then
        # still a KeyboardInterrupt that main() turns into status 130, not a traceback.
        finish()
    where = "stdout" if output is None else str(output)
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
        if fmt == "parquet" or output is None:
            print(f"interrupted: {where} holds the records so far", file=sys.stderr)
        else:
            print(f"checkpoint saved; resume with: {_resume_hint(argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


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
            concurrency=args.concurrency,
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
    except (ValueError, TypeError) as exc:
        print(f"exotel-async: error: {exc}", file=sys.stderr)
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
        where = getattr(args, "output", None) or getattr(args, "html", None) or "the output"
        print(f"exotel-async: error: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_API
    except KeyboardInterrupt:
        print("exotel-async: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
