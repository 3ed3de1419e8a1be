"""The exotel-async command, run as a real subprocess against the sandbox over loopback."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from exotel_async import SmsRecord, converter
from exotel_async.export import checkpoint_path, load_checkpoint
from exotel_async.testing import Faults, RateLimit, Sandbox

TOTAL = 3000


@attrs.frozen
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(campaigns={"c1": TOTAL}) as sb:
        yield sb


def env_for(sandbox: Sandbox | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
    if sandbox is not None:
        env.update(
            EXOTEL_API_KEY=sandbox.api_key,
            EXOTEL_API_TOKEN=sandbox.api_token,
            EXOTEL_ACCOUNT_SID=sandbox.account_sid,
            EXOTEL_BASE_URL=sandbox.base_url,
        )
    env.update(extra)
    return env


async def start(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exotel_async.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run(*args: str, env: dict[str, str]) -> Result:
    process = await start(*args, env=env)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def stderr_line(process: asyncio.subprocess.Process) -> str:
    """The next line the command writes to stderr."""
    assert process.stderr is not None
    return (await asyncio.wait_for(process.stderr.readline(), timeout=30)).decode()


def sids(path: Path) -> list[str]:
    return [json.loads(line)["sid"] for line in path.read_text().splitlines()]


def assert_one_line_error(result: Result, code: int) -> None:
    assert result.code == code
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("exotel-async: error:")


async def test_export_with_embedded_sandbox_needs_no_credentials(tmp_path: Path) -> None:
    """``export --sandbox demo`` writes the demo campaign and prints a one-line summary."""
    out = tmp_path / "sms.jsonl"
    result = await run("export", "--sandbox", "demo", "--output", str(out), env=env_for(None))
    assert result.code == 0, result.stderr
    assert len(sids(out)) == len(set(sids(out))) == 5000
    assert "exported 5000 records" in result.stderr
    assert load_checkpoint(checkpoint_path(out)).complete


async def test_export_to_stdout_writes_jsonl(sandbox: Sandbox) -> None:
    """``--output -`` streams JSONL to stdout."""
    result = await run("export", "c1", "--output", "-", "--max-items", "120", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["sid"] for line in lines] == [
        r["sid"] for r in sandbox.records("c1")[:120]
    ]


async def test_sigkill_then_resume_writes_every_record_once_with_fewer_requests(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A killed export resumes from its checkpoint: no torn line, nothing twice or lost."""
    sandbox.add_campaign("c1", 120 * 50)
    # A checkpoint every 100 pages at the latest, then ten pages past it that the resume
    # cuts; every later request waits until the kill.
    sandbox.hold(after=110)
    out = tmp_path / "sms.jsonl"
    args = ("export", "c1", "--output", str(out), "--concurrency", "2")
    process = await start(*args, env=env_for(sandbox))
    await sandbox.held(2)
    process.kill()
    await process.wait()
    assert load_checkpoint(checkpoint_path(out)).records_written >= 500
    requests_before = sandbox.stats.requests
    sandbox.release()
    result = await run(*args, "--resume", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    assert sids(out) == [r["sid"] for r in sandbox.records("c1")]
    assert sandbox.stats.requests - requests_before < 120
    assert load_checkpoint(checkpoint_path(out)).complete


async def test_ctrl_c_saves_a_checkpoint_exits_130_and_resume_completes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """SIGINT finishes the page in hand, says how to resume, and exits 130."""
    sandbox.hold(after=6)
    out = tmp_path / "sms.csv"
    args = ("export", "c1", "--output", str(out), "--format", "csv")
    process = await start(*args, env=env_for(sandbox))
    await sandbox.held()
    process.send_signal(signal.SIGINT)
    assert "stopping after the page in hand" in await stderr_line(process)
    sandbox.release()
    _, err = await process.communicate()
    assert process.returncode == 130
    assert "--resume" in err.decode()
    assert checkpoint_path(out).exists()
    result = await run(*args, "--resume", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert [row[0] for row in rows[1:]] == [r["sid"] for r in sandbox.records("c1")]


async def test_existing_output_is_refused_with_exit_2(sandbox: Sandbox, tmp_path: Path) -> None:
    """An existing output without --resume or --force is a usage error."""
    out = tmp_path / "sms.jsonl"
    out.write_text("keep me\n")
    result = await run("export", "c1", "--output", str(out), env=env_for(sandbox))
    assert_one_line_error(result, 2)
    assert "--force" in result.stderr
    assert out.read_text() == "keep me\n"


async def test_mismatched_checkpoint_is_refused_with_exit_2(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Resuming with other filters than the checkpoint's is refused."""
    out = tmp_path / "sms.jsonl"
    out.write_text('{"sid": "s0"}\n')
    checkpoint_path(out).write_text(
        json.dumps(
            {
                "campaign_id": "c1",
                "number": None,
                "sort_by": None,
                "format": "jsonl",
                "next_offset": 1,
                "records_written": 1,
                "output_bytes": out.stat().st_size,
            }
        )
    )
    args = ("export", "c1", "-o", str(out), "--resume", "--sort-by", "date_created:desc")
    result = await run(*args, env=env_for(sandbox))
    assert_one_line_error(result, 2)
    assert "checkpoint" in result.stderr


async def test_missing_credentials_are_named_with_exit_2(tmp_path: Path) -> None:
    """Without EXOTEL_API_TOKEN the error names that variable."""
    env = env_for(None, EXOTEL_API_KEY="k", EXOTEL_ACCOUNT_SID="sid")
    result = await run("export", "c1", "--output", str(tmp_path / "o.jsonl"), env=env)
    assert_one_line_error(result, 2)
    assert "EXOTEL_API_TOKEN" in result.stderr


async def test_every_missing_credential_is_named_at_once_with_a_sandbox_hint() -> None:
    """With no credentials at all, one line names all three variables and --sandbox."""
    result = await run("summary", "c1", env=env_for(None))
    assert_one_line_error(result, 2)
    for name in ("EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_ACCOUNT_SID", "--sandbox"):
        assert name in result.stderr


async def test_unknown_campaign_exits_1_with_the_request_id(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A 404 ends as one line naming the error and Exotel's request id."""
    result = await run(
        "export", "nope", "--output", str(tmp_path / "o.jsonl"), env=env_for(sandbox)
    )
    assert_one_line_error(result, 1)
    assert "NotFoundError" in result.stderr
    assert "request id" in result.stderr


async def test_bad_request_shows_exotels_description(sandbox: Sandbox, tmp_path: Path) -> None:
    """A 400 ends as one line carrying Exotel's own explanation of the refused parameter."""
    out = tmp_path / "o.jsonl"
    result = await run(
        "export", "c1", "-o", str(out), "--sort-by", "cost:asc", env=env_for(sandbox)
    )
    assert_one_line_error(result, 1)
    assert "sort_by must be one of schedule_time:asc" in result.stderr


async def test_page_size_help_states_the_range_exotel_accepts() -> None:
    """``export --help`` says which page sizes Exotel accepts."""
    result = await run("export", "--help", env=env_for(None))
    assert result.code == 0
    assert "Exotel accepts 1 to 50" in " ".join(result.stdout.split())


async def test_wrong_token_exits_1_and_never_prints_the_token(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A 401 ends as one line, and the token appears nowhere."""
    token = "wrong-TOKEN-s3cr3t"
    env = env_for(sandbox, EXOTEL_API_TOKEN=token)
    result = await run("summary", "c1", "--json", env=env)
    assert_one_line_error(result, 1)
    assert "AuthenticationError" in result.stderr
    assert token not in result.stderr + result.stdout


async def test_wrong_token_names_the_credentials_and_region_to_check(sandbox: Sandbox) -> None:
    """A 401 says which variables to check: the key, the token and the region."""
    result = await run("summary", "c1", env=env_for(sandbox, EXOTEL_API_TOKEN="wrong"))
    assert_one_line_error(result, 1)
    for name in ("EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_REGION"):
        assert name in result.stderr


async def test_bad_argument_is_a_usage_error(sandbox: Sandbox, tmp_path: Path) -> None:
    """A campaign id that is not an id exits 2 with one line."""
    result = await run("export", "a b", "--output", str(tmp_path / "o"), env=env_for(sandbox))
    assert_one_line_error(result, 2)
    assert "campaign_id" in result.stderr


async def test_summary_json_matches_counts_from_the_sandbox_data(sandbox: Sandbox) -> None:
    """``summary --json`` counts what the sandbox holds, computed independently."""
    result = await run("summary", "c1", "--json", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    records = sandbox.records("c1")
    assert summary["records"] == TOTAL
    assert summary["by_status"] == dict(Counter(r["status"] for r in records))
    assert summary["by_detailed_status"] == dict(Counter(r["detailed_status"] for r in records))
    typed = [converter.structure(r, SmsRecord) for r in records]
    delivered = sum(r.outcome.value == "delivered" for r in typed)
    assert summary["delivery_rate"] == round(delivered / TOTAL, 6)


async def test_summary_table_shows_the_delivery_rate(sandbox: Sandbox) -> None:
    """Without --json, a table with the delivery rate is printed."""
    result = await run("summary", "c1", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    assert "delivery rate" in result.stdout
    assert "DELIVERED_TO_HANDSET" in result.stdout


async def test_second_ctrl_c_stops_without_waiting_for_the_page(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Two SIGINTs stop at once with 130; the last complete page's checkpoint still holds."""
    # The second page never comes: only the second SIGINT can end the export.
    sandbox.hold(after=1)
    out = tmp_path / "sms.jsonl"
    args = ("export", "c1", "--output", str(out), "--concurrency", "1")
    process = await start(*args, env=env_for(sandbox))
    await sandbox.held()
    process.send_signal(signal.SIGINT)
    assert "Ctrl-C again" in await stderr_line(process)
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.communicate(), timeout=30)
    # A signal landing after the event loop closed kills the process by SIGINT, which a
    # shell reports as 130 too.
    assert process.returncode in (130, -signal.SIGINT)
    assert load_checkpoint(checkpoint_path(out)).records_written == 50
    sandbox.release()
    result = await run(*args, "--resume", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    assert sids(out) == [r["sid"] for r in sandbox.records("c1")]


async def test_output_in_a_missing_folder_is_one_line_naming_it(sandbox: Sandbox) -> None:
    """An output in a folder that does not exist ends as one line naming that folder."""
    result = await run("export", "c1", "-o", "/nonexistent/dir/sms.jsonl", env=env_for(sandbox))
    assert_one_line_error(result, 2)
    assert "the folder /nonexistent/dir does not exist; create it first" in result.stderr


async def test_directory_as_output_is_one_line_and_leaves_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """``-o adir --force`` on a directory is one line; no checkpoint appears beside it."""
    folder = tmp_path / "adir"
    folder.mkdir()
    result = await run("export", "c1", "-o", str(folder), "--force", env=env_for(sandbox))
    assert_one_line_error(result, 2)
    assert f"{folder} is a directory: give a file name" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["adir"]


async def test_rerun_of_a_completed_export_says_already_complete(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The README's command run twice: the second run fetches nothing and exits 0."""
    out = tmp_path / "sms.jsonl"
    first = await run("export", "c1", "-o", str(out), env=env_for(sandbox))
    assert first.code == 0, first.stderr
    requests = sandbox.stats.requests
    again = await run("export", "c1", "-o", str(out), env=env_for(sandbox))
    assert again.code == 0
    assert (
        again.stderr
        == f"already complete, {TOTAL} records in {out}; pass --force to export again\n"
    )
    assert sandbox.stats.requests == requests


async def test_resume_can_always_be_passed(sandbox: Sandbox, tmp_path: Path) -> None:
    """A retry loop passing --resume: starts, then on a complete export exits 0 unchanged."""
    out = tmp_path / "sms.jsonl"
    args = ("export", "c1", "-o", str(out), "--resume")
    first = await run(*args, env=env_for(sandbox))
    assert first.code == 0, first.stderr
    again = await run(*args, env=env_for(sandbox))
    assert again.code == 0
    assert again.stderr.startswith("already complete, ")
    assert sids(out) == [r["sid"] for r in sandbox.records("c1")]


async def test_failed_first_request_leaves_nothing_and_the_fixed_command_runs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """After ``export nosuch`` fails with 404, ``export c1`` to the same file just works."""
    out = tmp_path / "sms.jsonl"
    failed = await run("export", "nosuch", "-o", str(out), env=env_for(sandbox))
    assert_one_line_error(failed, 1)
    assert list(tmp_path.iterdir()) == []
    fixed = await run("export", "c1", "-o", str(out), env=env_for(sandbox))
    assert fixed.code == 0, fixed.stderr


async def test_csv_to_stdout(sandbox: Sandbox) -> None:
    """``-o - --format csv`` writes CSV to stdout, header first."""
    args = ("export", "c1", "-o", "-", "--format", "csv", "--max-items", "5")
    result = await run(*args, env=env_for(sandbox))
    assert result.code == 0, result.stderr
    rows = list(csv.reader(result.stdout.splitlines()))
    assert rows[0][0] == "sid"
    assert [row[0] for row in rows[1:]] == [r["sid"] for r in sandbox.records("c1")[:5]]


async def test_second_export_of_one_output_is_refused_while_the_first_runs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A ``--resume`` started beside a running export exits 2 at once, naming the cause."""
    sandbox.hold(after=1)
    out = tmp_path / "sms.jsonl"
    first = await start(
        "export", "c1", "--output", str(out), "--concurrency", "1", env=env_for(sandbox)
    )
    await sandbox.held()
    second = await run("export", "c1", "--output", str(out), "--resume", env=env_for(sandbox))
    first.kill()
    await first.wait()
    assert_one_line_error(second, 2)
    assert "another export is writing" in second.stderr


async def test_deeply_nested_record_ends_the_export_with_one_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A record nested too deep to write back is one line naming its offset, no traceback."""
    sandbox.faults = Faults(nesting_depth=1000)
    result = await run("export", "c1", "--output", str(tmp_path / "o.jsonl"), env=env_for(sandbox))
    assert_one_line_error(result, 1)
    assert "ResponseDecodeError" in result.stderr
    assert "item at offset 0" in result.stderr


async def test_credentials_in_the_base_url_variable_are_never_printed(tmp_path: Path) -> None:
    """EXOTEL_BASE_URL with a token in it is refused without echoing the token."""
    token = "TOKEN-s3cr3t"
    env = env_for(
        None,
        EXOTEL_API_KEY="k",
        EXOTEL_API_TOKEN=token,
        EXOTEL_ACCOUNT_SID="sid",
        EXOTEL_BASE_URL=f"htps://k:{token}@api.exotel.com",
    )
    result = await run("summary", "c1", env=env)
    assert_one_line_error(result, 2)
    assert token not in result.stderr + result.stdout


def _small_disk() -> None:
    """In the child: files may not grow past 100 kB, and that is an error, not a signal."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


async def test_full_disk_is_one_line_and_resume_completes_exactly(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A write that fails for lack of space keeps a checkpoint that resumes exactly."""
    out = tmp_path / "sms.jsonl"
    args = ("-m", "exotel_async.cli", "export", "c1", "--output", str(out))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env_for(sandbox),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_small_disk,
    )
    out_bytes, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    assert_one_line_error(Result(process.returncode, out_bytes.decode(), err.decode()), 1)
    assert "File too large" in err.decode()
    assert checkpoint_path(out).exists()
    result = await run("export", "c1", "--output", str(out), "--resume", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    assert sids(out) == [r["sid"] for r in sandbox.records("c1")]


@pytest.fixture
def credentials_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials in the environment, for a server that is never asked."""
    for name, value in {
        "EXOTEL_API_KEY": "k",
        "EXOTEL_API_TOKEN": "t",
        "EXOTEL_ACCOUNT_SID": "sid",
        "EXOTEL_BASE_URL": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("credentials_in_env")
def test_region_flag_beats_base_url_variable() -> None:
    """``--region`` overrides EXOTEL_BASE_URL, as flags override the environment."""
    from exotel_async.cli import _client_from, build_parser

    args = build_parser().parse_args(["summary", "c1", "--region", "mumbai"])
    assert _client_from(args).base_url.host == "api.in.exotel.com"


@pytest.mark.usefixtures("credentials_in_env")
@pytest.mark.parametrize("sandboxed", [False, True], ids=["credentials", "sandbox"])
async def test_max_requests_per_minute_flag_is_the_clients_ceiling(sandboxed: bool) -> None:
    """``--max-requests-per-minute`` reaches the client, with credentials or ``--sandbox``."""
    from exotel_async.cli import _connect, build_parser

    flags = ["summary", "c1", "--max-requests-per-minute", "7.5"]
    args = build_parser().parse_args(flags + (["--sandbox"] if sandboxed else []))
    async with _connect(args) as client:
        assert client.max_requests_per_minute == 7.5


async def test_progress_bar_is_drawn_on_a_terminal(sandbox: Sandbox, tmp_path: Path) -> None:
    """With stderr on a terminal, a progress bar with the retries count is drawn."""
    import pty

    sandbox.hold(after=1)  # the export waits at its second page until the bar is seen
    primary, secondary = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exotel_async.cli",
        "export",
        "c1",
        "--output",
        str(tmp_path / "sms.jsonl"),
        env=env_for(sandbox, COLUMNS="120"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    screen = b""

    def read_terminal(until: bytes | None) -> None:
        # Keep reading: a full terminal buffer would block the export's writes.
        nonlocal screen
        while until is None or until not in screen:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closes when the process is gone
                return
            if not chunk:
                return
            screen += chunk

    await asyncio.wait_for(asyncio.to_thread(read_terminal, b"retries 0"), timeout=60)
    sandbox.release()
    reading = asyncio.ensure_future(asyncio.to_thread(read_terminal, None))
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    await asyncio.wait_for(reading, timeout=10)
    os.close(primary)
    text = screen.decode(errors="replace")
    assert "exporting" in text
    assert "retries 0" in text  # the bar's column; the summary says "0 retries"
    assert "exported 3000 records" in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["export", "c1", "-o", "x.jsonl", "--page-size", "abc"], "expected a whole number"),
        (["export", "c1", "-o", "x.jsonl", "--page-size", "500"], "Exotel accepts 1 to 50"),
        (["export", "c1", "-o", "x.jsonl", "--sort-by", "time"], "argument --sort-by"),
        (["campaigns", "--name", "ab"], "argument --name: expected at least 3"),
        (["summary", "c1", "--max-requests-per-minute", "0"], "requests, at least 1"),
        (["summary", "c1", "--max-requests-per-minute", "1e-323"], "got '1e-323'"),
        (["sync", "c1", "--db", "x", "--max-requests-per-minute", "inf"], "got 'inf'"),
        (["export", "c1", "-o", "x.jsonl", "--bogus"], "see 'exotel-async export --help'"),
        (["export", "c1"], "--output"),
        (["summary"], "CAMPAIGN_ID"),
        (["nosuch"], "invalid choice"),
    ],
)
async def test_usage_errors_are_one_line_naming_the_subcommands_help(
    args: list[str], says: str
) -> None:
    """Every command-line mistake is one line, no usage block, status 2."""
    result = await run(*args, env=env_for(None))
    assert_one_line_error(result, 2)
    assert says in result.stderr


async def test_version_prints_the_package_version() -> None:
    """``--version`` prints the installed version and exits 0."""
    from exotel_async import __version__

    result = await run("--version", env=env_for(None))
    assert result.code == 0
    assert result.stdout.strip() == f"exotel-async {__version__}"


async def test_campaign_id_has_help_text() -> None:
    """``summary --help`` explains CAMPAIGN_ID."""
    result = await run("summary", "--help", env=env_for(None))
    assert "the campaign's sid" in result.stdout


async def test_csv_extension_selects_csv(sandbox: Sandbox, tmp_path: Path) -> None:
    """``-o out.csv`` without --format writes CSV with its header row."""
    out = tmp_path / "out.csv"
    result = await run("export", "c1", "-o", str(out), "--max-items", "10", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    assert out.read_text(encoding="utf-8").startswith("sid,number,name,")


async def test_format_contradicting_the_extension_is_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """``-o out.csv --format jsonl`` is a usage error, and nothing is written."""
    out = tmp_path / "out.csv"
    args = ("export", "c1", "-o", str(out), "--format", "jsonl")
    result = await run(*args, env=env_for(sandbox))
    assert_one_line_error(result, 2)
    assert "contradicts the extension" in result.stderr
    assert list(tmp_path.iterdir()) == []


async def test_closed_stdout_pipe_ends_the_export_quietly(sandbox: Sandbox) -> None:
    """``export -o - | head -1``: the export stops with status 0 and nothing on stderr."""
    read_end, write_end = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exotel_async.cli",
        "export",
        "c1",
        "-o",
        "-",
        env=env_for(sandbox),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:  # like head -1: one line, then close
        first = await asyncio.to_thread(reader.readline)
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert json.loads(first)["sid"] == sandbox.records("c1")[0]["sid"]
    assert err.decode() == ""
    assert process.returncode == 0


async def start_sandbox_command(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """Start ``exotel-async sandbox`` and return it with the banner it printed."""
    process = await start("sandbox", *args, env=env_for(None))
    assert process.stdout is not None
    banner: list[str] = []
    while not banner or "Ctrl-C" not in banner[-1]:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert line, "the sandbox exited before printing its banner"
        banner.append(line.decode())
    return process, banner


async def test_readme_example_runs_against_the_sandbox_command_as_written() -> None:
    """The README's Python example, run in a shell fed the sandbox's banner, prints records."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    process, banner = await start_sandbox_command("--port", "0", "--records", "30")
    try:
        shell = await asyncio.create_subprocess_exec(
            "sh",
            "-c",
            "".join(banner) + f'exec "{sys.executable}" -c "$EXAMPLE"',
            env=env_for(None, EXAMPLE=example),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(shell.communicate(), timeout=60)
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), timeout=30)
    assert shell.returncode == 0, err.decode()
    assert len(out.decode().splitlines()) == 30


async def test_sandbox_command_takes_the_modules_options() -> None:
    """``exotel-async sandbox --campaign ID`` serves that campaign, as the module does."""
    process, banner = await start_sandbox_command("--port", "0", "--campaign", "c9")
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.communicate(), timeout=30)
    assert "# campaign c9: 5000 records\n" in banner
    assert process.returncode == 0


async def test_sandbox_on_a_busy_port_is_one_line_suggesting_port_0() -> None:
    """A port already in use ends as one line with status 1, not a traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await run("sandbox", "--port", str(port), env=env_for(None))
    assert_one_line_error(result, 1)
    assert f"port {port} is in use; pass --port 0 for a free one" in result.stderr


async def test_sandbox_port_out_of_range_is_a_usage_error() -> None:
    """``--port 99999`` is one line with status 2."""
    result = await run("sandbox", "--port", "99999", env=env_for(None))
    assert_one_line_error(result, 2)
    assert "must be from 0 to 65535" in result.stderr


async def test_final_line_after_resume_counts_this_run_apart(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A resumed export's final line gives all records, and this run's records and pages."""
    from exotel_async import ExotelClient
    from exotel_async.export import ExportRequest, run_export

    out = tmp_path / "sms.jsonl"
    client = ExotelClient(
        sandbox.api_key, sandbox.api_token, sandbox.account_sid, base_url=sandbox.base_url
    )
    async with client:
        first = await run_export(
            client, ExportRequest("c1", out, concurrency=1), should_stop=lambda: True
        )
    result = await run("export", "c1", "-o", str(out), "--resume", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    rest = TOTAL - first.records
    assert f"exported {TOTAL} records to {out} (this run: {rest} records, " in result.stderr
    assert f" {rest // 50} pages, " in result.stderr


async def test_refused_connection_is_one_line_naming_the_address_to_check(
    tmp_path: Path,
) -> None:
    """Nothing listening at EXOTEL_BASE_URL: one line naming it, status 1, no output left."""
    async with Sandbox() as gone:
        base_url = gone.base_url
    env = env_for(
        None,
        EXOTEL_API_KEY="k",
        EXOTEL_API_TOKEN="t",
        EXOTEL_ACCOUNT_SID="sid",
        EXOTEL_BASE_URL=base_url,
    )
    result = await run("export", "c1", "-o", str(tmp_path / "sms.jsonl"), env=env)
    assert_one_line_error(result, 1)
    assert f"connection refused by {base_url}" in result.stderr
    assert "EXOTEL_BASE_URL" in result.stderr
    assert list(tmp_path.iterdir()) == []


def docs_block(page: str, after: str, fence: str) -> str:
    """The first ``fence`` code block after the line ``after`` in docs/``page``."""
    text = (Path(__file__).resolve().parent.parent / "docs" / page).read_text(encoding="utf-8")
    tail = text.split(after + "\n", 1)[1]
    return tail.split(f"```{fence}\n", 1)[1].split("```", 1)[0]


async def test_docs_summary_sample_is_what_the_command_prints() -> None:
    """The JSON sample in docs/cli.md equals ``summary demo --sandbox --json``."""
    result = await run("summary", "demo", "--sandbox", "--json", env=env_for(None))
    assert result.code == 0, result.stderr
    assert json.loads(docs_block("cli.md", "## `summary`", "json")) == json.loads(result.stdout)


async def test_docs_export_sample_line_is_what_the_command_prints(tmp_path: Path) -> None:
    """The final line shown in docs/cli.md matches the README command's, but for the time."""
    out = tmp_path / "sms.jsonl"
    result = await run("export", "demo", "--sandbox", "-o", str(out), env=env_for(None))
    assert result.code == 0, result.stderr
    sample = docs_block("cli.md", "### Progress", "").strip()
    printed = result.stderr.strip().replace(str(out), "sms.jsonl")
    assert re.sub(r"\d+\.\ds", "N.Ns", printed) == re.sub(r"\d+\.\ds", "N.Ns", sample)


async def test_final_line_counts_throttles_and_time_waited_for_the_rate_limit(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Against a limit with no rate headers, the final line says how often it was throttled."""
    sandbox.faults = Faults(rate_limit=RateLimit(40, 0.5, reset="none", status=503))
    out = tmp_path / "sms.jsonl"
    result = await run("export", "c1", "-o", str(out), env=env_for(sandbox))
    assert result.code == 0, result.stderr
    throttled = sandbox.stats.by_status.get(503, 0)
    assert throttled > 0
    assert f", {throttled} throttled, requests waited " in result.stderr
    assert len(set(sids(out))) == TOTAL


def test_a_registered_formats_extension_selects_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extensions ``--format`` is inferred from come from the format registry."""
    from exotel_async import _export, cli
    from exotel_async.export import FORMATS, Format

    tsv = Format("tsv", FORMATS["jsonl"].encode, extensions=(".tsv",))
    monkeypatch.setitem(_export.FORMATS, "tsv", tsv)  # type: ignore[attr-defined]
    assert cli._format("out.TSV", None) == "tsv"
