"""``exotel-async sync``, run as a real subprocess against the sandbox over loopback."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exotel_async._sync_cli import _sync_all, duration
from exotel_async.cli import build_parser, main
from exotel_async.sync import Database, open_database
from exotel_async.testing import Sandbox, SandboxCampaign, StatusProgress
from tests._clients import fast_client
from tests.test_cli import env_for, run


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A 20-record campaign whose statuses advance half a second per page served."""
    ticks = itertools.count()
    progress = StatusProgress(start=0.0, stage=2.0, gap=0.01)
    async with Sandbox(
        campaigns={"c1": 20}, clock=lambda: next(ticks) * 0.5, progress=progress
    ) as sb:
        yield sb


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """The rows of a query on a SQLite file."""
    with sqlite3.connect(path) as connection:
        found = connection.execute(sql).fetchall()
    connection.close()
    return found


async def test_sync_stores_the_campaign(sandbox: Sandbox, tmp_path: Path) -> None:
    """``sync CAMPAIGN --db sqlite:///FILE`` upserts every SMS and says so on stderr."""
    db = tmp_path / "sms.db"
    result = await run("sync", "c1", "--db", f"sqlite:///{db}", env=env_for(sandbox))
    assert result.code == 0, result.stderr
    assert rows(db, "SELECT count(*) FROM exotel_sms") == [(20,)]
    assert "synced c1: 20 SMS read in 1 walk" in result.stderr


async def test_follow_prints_each_transition_once_until_final(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--follow --until-final`` prints every change of state once and stops when final."""
    from exotel_async import _sync_cli

    db = tmp_path / "sms.db"
    argv = ["sync", "c1", "--db", f"sqlite:///{db}", "--follow", "--interval", "1s"]
    args = build_parser().parse_args([*argv, "--until-final"])
    # In this process, so that the follow waits out its intervals on the client's fake clock.
    monkeypatch.setattr(_sync_cli, "_connect", lambda args: fast_client(sandbox))
    code = await _sync_cli.run(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == len(set(lines)) == 60  # queued->submitted->sent->final, 20 SMS
    assert "every SMS final" in err
    assert rows(db, "SELECT count(*) FROM exotel_status_history") == [(60,)]


async def test_deadline_before_final_exits_3(tmp_path: Path) -> None:
    """A follow whose deadline passes with SMS pending exits 3, saying how many."""
    async with Sandbox(campaigns={"c1": 200}) as still:  # some SMS stay queued forever
        args = ["--follow", "--until-final", "--deadline", "0.001"]
        db = f"sqlite:///{tmp_path / 'sms.db'}"
        result = await run("sync", "c1", "--db", db, *args, env=env_for(still))
    assert result.code == 3
    assert "SMS not final" in result.stderr


async def test_unsupported_database_is_a_usage_error(sandbox: Sandbox) -> None:
    """A --db that is neither SQLite nor PostgreSQL is one line, exit 2, no password shown."""
    result = await run("sync", "c1", "--db", "mysql://u:secret@h/db", env=env_for(sandbox))
    assert result.code == 2
    assert result.stderr.count("\n") == 1
    assert "secret" not in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("48h", 172800)]
)
def test_durations_take_units(text: str, seconds: float) -> None:
    """--interval and --deadline read seconds, minutes, hours and days."""
    assert duration(text) == seconds


async def test_bad_duration_is_a_usage_error(sandbox: Sandbox, tmp_path: Path) -> None:
    """An --interval that is not a duration is one line naming the expected form."""
    db = f"sqlite:///{tmp_path / 'sms.db'}"
    result = await run("sync", "c1", "--db", db, "--interval", "soon", env=env_for(sandbox))
    assert result.code == 2
    assert "expected a duration like 30s, 5m or 48h" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--interval", "0", "at least 1s"),
        ("--interval", "0.5s", "at least 1s"),
        ("--deadline", "0", "more than 0"),
    ],
)
async def test_too_short_interval_or_deadline_is_a_usage_error(
    sandbox: Sandbox, tmp_path: Path, flag: str, value: str, message: str
) -> None:
    """An --interval under a second or a --deadline of 0 is one line, exit 2."""
    db = f"sqlite:///{tmp_path / 'sms.db'}"
    result = await run("sync", "c1", "--db", db, "--follow", flag, value, env=env_for(sandbox))
    assert result.code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


async def test_unreachable_postgres_is_one_line_without_password(sandbox: Sandbox) -> None:
    """A PostgreSQL server that refuses the connection is one line, exit 1, no password."""
    url = "postgresql://app:secret@127.0.0.1:1/sms"
    result = await run("sync", "c1", "--db", url, env=env_for(sandbox))
    assert result.code == 1
    assert result.stderr.startswith("exotel-async: error: database: cannot connect")
    assert result.stderr.count("\n") == 1
    assert "secret" not in result.stderr


@pytest.fixture
async def account() -> AsyncIterator[Sandbox]:
    """Three completed campaigns, one paused, and one archived (its SMS gone: 404)."""
    campaigns = [
        SandboxCampaign("done-1", 30),
        SandboxCampaign("done-2", 40),
        SandboxCampaign("done-3", 0),
        SandboxCampaign("paused", 25, status="paused"),
        SandboxCampaign("gone", 10, status="archived"),
    ]
    async with Sandbox(campaigns=campaigns) as sb:
        yield sb


async def test_sync_all_stores_every_campaign_and_reports_the_archived(
    account: Sandbox, tmp_path: Path
) -> None:
    """``sync --all`` syncs each listed campaign; an archived one fails alone, exit 1."""
    db = tmp_path / "sms.db"
    result = await run("sync", "--all", "--db", f"sqlite:///{db}", env=env_for(account))
    counts = rows(db, "SELECT campaign_id, count(*) FROM exotel_sms GROUP BY campaign_id")
    assert dict(counts) == {"done-1": 30, "done-2": 40, "paused": 25}  # type: ignore[arg-type]
    assert result.code == 1
    assert "gone: NotFoundError" in result.stderr
    assert "synced 4 of 5 campaigns" in result.stderr


async def test_sync_all_takes_the_status_filter(account: Sandbox, tmp_path: Path) -> None:
    """``--all --status paused`` syncs only the paused campaign."""
    db = tmp_path / "sms.db"
    args = ["--all", "--status", "paused", "--db", f"sqlite:///{db}"]
    result = await run("sync", *args, env=env_for(account))
    assert result.code == 0, result.stderr
    assert rows(db, "SELECT DISTINCT campaign_id FROM exotel_sms") == [("paused",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["c1", "--all"], "drop CAMPAIGN_ID"),
        ([], "give a CAMPAIGN_ID, or --all"),
        (["--all", "--follow"], "--follow follows one campaign"),
        (["c1", "--status", "completed"], "--status applies to --all"),
        (["c1", "--skip-status", "archived"], "--skip-status applies to --all"),
    ],
)
async def test_sync_all_mistakes_are_usage_errors(
    account: Sandbox, tmp_path: Path, args: list[str], message: str
) -> None:
    """Mixing one campaign with --all, or --all with --follow, is one line, exit 2."""
    db = f"sqlite:///{tmp_path / 'sms.db'}"
    result = await run("sync", *args, "--db", db, env=env_for(account))
    assert result.code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


async def test_sync_all_skips_a_status(account: Sandbox, tmp_path: Path) -> None:
    """``--all --skip-status archived`` leaves the archived campaign out: nothing fails."""
    db = tmp_path / "sms.db"
    args = ["--all", "--skip-status", "archived", "--db", f"sqlite:///{db}"]
    result = await run("sync", *args, env=env_for(account))
    assert result.code == 0, result.stderr
    assert "synced 4 of 4 campaigns" in result.stderr


class FailsOn:
    """A database whose writes for one campaign raise an error no sync expects."""

    def __init__(self, db: Database, campaign_id: str) -> None:
        self._db = db
        self._campaign_id = campaign_id

    async def observe(self, campaign_id: str, *args: Any, **kwargs: Any) -> Any:
        if campaign_id == self._campaign_id:
            raise RuntimeError("disk on fire")
        return await self._db.observe(campaign_id, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


async def test_sync_all_goes_on_past_a_campaign_failing_with_any_error(
    account: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A campaign whose sync raises something other than an ExotelError fails alone, exit 1."""
    url = f"sqlite:///{tmp_path / 'sms.db'}"
    args = build_parser().parse_args(["sync", "--all", "--skip-status", "archived", "--db", url])
    async with fast_client(account) as client, open_database(url) as db:
        code = await _sync_all(args, client, FailsOn(db, "done-1"))  # type: ignore[arg-type]
    counts = rows(tmp_path / "sms.db", "SELECT campaign_id, count(*) FROM exotel_sms GROUP BY 1")
    assert dict(counts) == {"done-2": 40, "paused": 25}  # type: ignore[arg-type]
    assert code == 1
    stderr = capsys.readouterr().err
    assert "done-1: RuntimeError: disk on fire" in stderr
    assert "synced 3 of 4 campaigns" in stderr


def test_an_encoding_error_while_syncing_is_not_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A UnicodeError (a ValueError) raised by a sync's data exits 1, not 2, in one line."""
    from exotel_async import _sync_cli

    async def fails(args: Any) -> int:
        raise UnicodeEncodeError("utf-8", "\ud83d", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(_sync_cli, "run", fails)
    assert main(["sync", "c1", "--db", "sqlite:///sms.db"]) == 1
    assert capsys.readouterr().err.startswith("exotel-async: error: UnicodeEncodeError:")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:secret@127.0.0.1:99999/sms",
        "postgresql://app:secret@127.0.0.1:abc/sms",
        "postgresql://app:secret@127.0.0.1:1/sms?target_session_attrs=x",
    ],
)
async def test_bad_postgres_url_is_one_line_naming_scheme_and_host(
    sandbox: Sandbox, url: str
) -> None:
    """A PostgreSQL URL that cannot be used is one line naming scheme and host, exit 1."""
    result = await run("sync", "c1", "--db", url, env=env_for(sandbox))
    assert result.code == 1, result.stderr
    assert "(postgresql, host 127.0.0.1)" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "secret" not in result.stderr


async def test_sqlite_file_in_a_missing_directory_is_named(sandbox: Sandbox) -> None:
    """A SQLite file that cannot be opened is one line naming the file, exit 1."""
    result = await run("sync", "c1", "--db", "sqlite:////no/such/dir/sms.db", env=env_for(sandbox))
    assert result.code == 1
    assert "/no/such/dir/sms.db" in result.stderr
    assert result.stderr.count("\n") == 1


async def test_sqlite_in_memory_is_refused() -> None:
    """sqlite:///:memory: would keep nothing after the run: a ValueError at the call."""
    with pytest.raises(ValueError, match="keeps nothing"):
        async with open_database("sqlite:///:memory:"):
            pass
